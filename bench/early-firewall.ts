/**
 * Early firewall bench (root; `node --import tsx bench/early-firewall.ts`): what the early
 * unit costs in front of the network, measured both ways issue 13 names:
 *   (a) sh    agent/bootstrap/firewall-restore.sh from the recorded files (what the unit runs);
 *   (b) node  `node cartridge-agent.js firewall restore`: the Node path — today's unit before
 *             this change, and a lower bound for folding the restore into the agent's own
 *             process (which would start the same Node, load the same bundle, then restore,
 *             all before network-pre.target).
 * Per backend (nft, iptables-nft, iptables-legacy, as installed) and per case (a reboot with a
 * recorded ruleset; a first boot with only the baked baseline), BENCH_RUNS (default 9) paired
 * runs A B A B …, each into a fresh network namespace (an empty ruleset, as a booted kernel has),
 * on this Node and on Debian's Node 18 when present. Node runs with a clean environment (PATH
 * only: no NODE_EXTRA_CA_CERTS, NODE_OPTIONS …), as a unit does. Every run's result is checked
 * (exit 0, the expected message), so a broken path is never timed as a fast one.
 *
 * Targets: the sh restore is faster than the Node restore in every row, and takes at most
 * TARGET_MS (median) on nft.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Backend } from '../agent/src/firewall/types';
import { BUNDLE, makeImageRoot, type ImageRoot } from '../scripts/lib/fake-instance';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const TARGET_MS = 50;
const SCRIPT = 'agent/bootstrap/firewall-restore.sh';
const CLEAN_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
const BACKENDS: Array<{ backend: Backend; tool: string }> = [
  { backend: 'nft', tool: 'nft' },
  { backend: 'iptables-nft', tool: 'iptables-nft-restore' },
  { backend: 'iptables-legacy', tool: 'iptables-legacy-restore' },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Run `argv` inside a fresh namespace; wall time of the command (ip netns exec included). */
function timedInFreshNs(argv: string[], expect: RegExp): number {
  const ns = `ca-bench-early-${randomBytes(3).toString('hex')}`;
  spawnSync('ip', ['netns', 'add', ns]);
  try {
    const t = process.hrtime.bigint();
    const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', env: CLEAN_ENV });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0 || !expect.test(r.stdout)) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stdout}${r.stderr}`);
    return ms;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

/** An image whose agent enforces with `backend`, the baseline baked, and (recorded) a payload allowlist applied once. */
function imageWith(backend: Backend, recorded: boolean, node: string): ImageRoot {
  const image = makeImageRoot(null, { firewall: { mode: 'enforce', backend, guard: { enabled: false } } });
  const run = (args: string[], ns?: string) => {
    const argv = [node, BUNDLE, ...args, '--root', image.root];
    const r = ns ? spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', env: CLEAN_ENV }) : spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', env: CLEAN_ENV });
    if (r.status !== 0) throw new Error(`${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  };
  run(['firewall', 'baseline', '--write']);
  if (recorded) {
    mkdirSync(image.at('/run/cartridge-agent'), { recursive: true });
    writeFileSync(image.at('/run/cartridge-agent/payload.json'), JSON.stringify({ PORTS: '80|443|8080' }));
    const ns = `ca-bench-early-rec-${randomBytes(3).toString('hex')}`;
    spawnSync('ip', ['netns', 'add', ns]);
    try {
      run(['firewall', 'apply'], ns);
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
    }
  }
  return image;
}

interface Row {
  runtime: string;
  backend: Backend;
  case: string;
  sh: number;
  node: number;
}

function main(): number {
  if (process.getuid?.() !== 0) {
    console.log('early-firewall: needs root (network namespaces); not measured');
    return 1;
  }
  if (!existsSync(BUNDLE)) {
    console.log(`early-firewall: ${BUNDLE} missing (npm run build); not measured`);
    return 1;
  }
  const node18 = process.env.CARTRIDGE_TEST_NODE18;
  const runtimes = [{ name: `node ${process.versions.node}`, node: process.execPath }, ...(node18 && existsSync(node18) ? [{ name: 'Debian node 18', node: node18 }] : [])];
  const nsCost = median(Array.from({ length: 5 }, () => timedInFreshNs(['true'], /^$/)));
  const rows: Row[] = [];
  for (const { backend, tool } of BACKENDS) {
    if (!have(tool)) {
      console.log(`early-firewall: ${tool} not installed, ${backend} not measured`);
      continue;
    }
    for (const recorded of [true, false]) {
      const expect = recorded ? /^firewall: restored the recorded ruleset/ : /^firewall: nothing recorded \(first boot\?\); the baseline ruleset is in force/;
      for (const rt of runtimes) {
        const image = imageWith(backend, recorded, rt.node);
        try {
          const sh: number[] = [];
          const nodeMs: number[] = [];
          timedInFreshNs(['sh', SCRIPT, '--root', image.root, '--node', '/nonexistent'], expect); // warm-up
          timedInFreshNs([rt.node, BUNDLE, 'firewall', 'restore', '--root', image.root], expect);
          for (let i = 0; i < RUNS; i++) {
            sh.push(timedInFreshNs(['sh', SCRIPT, '--root', image.root, '--node', '/nonexistent'], expect));
            nodeMs.push(timedInFreshNs([rt.node, BUNDLE, 'firewall', 'restore', '--root', image.root], expect));
          }
          rows.push({ runtime: rt.name, backend, case: recorded ? 'recorded' : 'first boot', sh: median(sh), node: median(nodeMs) });
        } finally {
          image.remove();
        }
      }
    }
  }
  console.log(`early firewall restore: median of ${RUNS} paired runs (A B A B), each into a fresh netns; ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`);
  console.log(`(wall time including \`ip netns exec\`, which alone costs ${nsCost.toFixed(1)} ms)`);
  console.log('runtime          backend          case          (a) sh ms  (b) node ms  node/sh');
  const missed: string[] = [];
  for (const r of rows) {
    console.log(
      `${r.runtime.padEnd(16)} ${r.backend.padEnd(16)} ${r.case.padEnd(12)} ${r.sh.toFixed(1).padStart(10)} ${r.node.toFixed(1).padStart(12)} ${(r.node / r.sh).toFixed(1).padStart(7)}×`,
    );
    if (!(r.sh < r.node)) missed.push(`${r.runtime} ${r.backend} ${r.case}: sh ${r.sh.toFixed(1)} ms not faster than node ${r.node.toFixed(1)} ms`);
    if (r.backend === 'nft' && r.sh > TARGET_MS) missed.push(`${r.runtime} nft ${r.case}: sh ${r.sh.toFixed(1)} ms > ${TARGET_MS} ms`);
  }
  if (rows.length === 0) missed.push('nothing measured');
  for (const m of missed) console.log(`MISSED: ${m}`);
  console.log(missed.length === 0 ? `targets met: sh faster than node in every row; nft ≤ ${TARGET_MS} ms` : 'targets MISSED');
  return missed.length === 0 ? 0 : 1;
}

process.exitCode = main();
