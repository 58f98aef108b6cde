/**
 * Firewall bench (root; `node --import tsx bench/firewall.ts`). It re-runs itself inside a
 * fresh network namespace (`ip netns exec`, so no command pays that wrapper) with a clean
 * environment (`env -i PATH=…`: no NODE_EXTRA_CA_CERTS and the like), as a unit runs the agent.
 *
 * 1. Enforce as the agent runs it (changeFirewall, guard off: no controller here) with the
 *    default config and a two-port payload: "changed" alternates two payloads, so every run
 *    replaces the rules in force (a first boot replacing the baseline, a new payload);
 *    "unchanged" enforces the recorded ruleset again (a reboot: the early unit put it back).
 *    With the number of child processes per enforce. Target: changed enforce on nft ≤ 20 ms.
 * 2. Render and apply an allowlist of 10, 100 and 1000 rules on each backend: render =
 *    buildPolicy + renderRuleset; apply = FirewallOps.apply given a fresh snapshot;
 *    snapshot+apply = both (target: 100 rules < 50 ms).
 * Medians over BENCH_RUNS (default 9) runs after one warm-up.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../agent/src/config';
import { buildPolicy } from '../agent/src/firewall/allowlist';
import { firewallOps } from '../agent/src/firewall/apply';
import { runCommand, type CommandRunner } from '../agent/src/firewall/exec';
import { applyFirewall, changeFirewall } from '../agent/src/firewall/index';
import { renderRuleset } from '../agent/src/firewall/render';
import type { Backend, FirewallPolicy } from '../agent/src/firewall/types';
import { silentLogger } from '../agent/src/log';
import { RootedPaths } from '../agent/src/paths';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const SIZES = [10, 100, 1000];
const TARGET_MS = 50;
const ENFORCE_TARGET_MS = 20;
const INNER = '--in-netns';
const BACKENDS: Backend[] = ['nft', 'iptables-nft', 'iptables-legacy'];
const TOOL_OF: Record<Backend, string> = { nft: 'nft', 'iptables-nft': 'iptables-nft-restore', 'iptables-legacy': 'iptables-legacy-restore' };

/** n allowlist entries, a realistic mix: TCP, UDP, ranges, IPv4 and IPv6 sources. `shift` makes a different set. */
function allowlist(n: number, shift: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const port = 10_000 + 3 * i + shift;
    switch (i % 5) {
      case 0:
        return `udp/${port}`;
      case 1:
        return `tcp/${port}-${port + 1}`;
      case 2:
        return `tcp/${port} from 10.${i % 250}.0.0/16`;
      case 3:
        return `tcp/${port} from 2001:db8:${(i % 65_000).toString(16)}::/48`;
      default:
        return `tcp/${port}`;
    }
  });
}

function policyOf(rules: string[]): FirewallPolicy {
  return buildPolicy(new Map(), { alwaysAllow: ['tcp/22'], extraRules: rules, allowIcmpEcho: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function time<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e6, r];
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

interface Row {
  backend: Backend;
  n: number;
  ruleCount: number;
  render: number;
  apply: number;
  snapApply: number;
}

interface EnforceRow {
  backend: Backend;
  changed: number;
  changedChildren: number;
  unchanged: number;
  unchangedChildren: number;
}

/**
 * changeFirewall as `once` calls it, each run in a "new process" as far as the agent can tell
 * (a fresh runner: the per-process memo of the tools' answers starts empty), counting the
 * children. The record is written once (applyFirewall) so that "unchanged" has one to match.
 */
async function benchEnforce(backend: Backend): Promise<EnforceRow> {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-bench-enforce-'));
  const config = parseConfig({ firewall: { mode: 'enforce', guard: { enabled: false }, ...(backend === 'nft' ? {} : { backend }) } });
  const payloads = [new Map([['PORTS', '8080|8443']]), new Map([['PORTS', '8081|8443']])];
  let children = 0;
  const fresh = (): CommandRunner => (cmd, args, opts) => {
    children++;
    return runCommand(cmd, args, opts);
  };
  const deps = (i: number) => ({ config, paths: new RootedPaths(root), log: silentLogger(), runner: fresh(), payloadVars: payloads[i % 2] as Map<string, string>, controllerEndpoints: [] });
  const counted = async (fn: () => Promise<unknown>): Promise<[number, number]> => {
    children = 0;
    const [ms] = await time(fn);
    return [ms, children];
  };
  try {
    const changed: Array<[number, number]> = [];
    const unchanged: Array<[number, number]> = [];
    await applyFirewall(deps(0)); // the record: payload 0
    for (let i = 0; i <= RUNS; i++) {
      // payload 1 (another digest), then payload 0 (the recorded digest, but not in force): both replace the rules.
      const a = await counted(() => changeFirewall(deps(1)));
      const b = await counted(() => changeFirewall(deps(0)));
      const c = await counted(() => changeFirewall(deps(0)));
      if (i === 0) continue;
      changed.push(a, b);
      unchanged.push(c);
    }
    await (await firewallOps(backend, runCommand)).remove();
    return {
      backend,
      changed: median(changed.map((x) => x[0])),
      changedChildren: median(changed.map((x) => x[1])),
      unchanged: median(unchanged.map((x) => x[0])),
      unchangedChildren: median(unchanged.map((x) => x[1])),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function benchBackend(backend: Backend): Promise<Row[]> {
  const runner = runCommand;
  const ops = await firewallOps(backend, runner);
  const rows: Row[] = [];
  for (const n of SIZES) {
    const lists = [allowlist(n, 0), allowlist(n, 1)];
    const renders: number[] = [];
    const applies: number[] = [];
    const snapApplies: number[] = [];
    let ruleCount = 0;
    for (let i = 0; i <= RUNS; i++) {
      const [render, rendered] = await time(() => renderRuleset(policyOf(lists[i % 2] as string[]), backend));
      ruleCount = rendered.ruleCount;
      const [snap, before] = await time(() => ops.snapshot());
      const [apply] = await time(() => ops.apply(rendered, before));
      if (i === 0) continue; // warm-up
      renders.push(render);
      applies.push(apply);
      snapApplies.push(snap + apply);
    }
    rows.push({ backend, n, ruleCount, render: median(renders), apply: median(applies), snapApply: median(snapApplies) });
  }
  await ops.remove();
  return rows;
}

/** Outside: make the namespace and run this file again inside it with a clean environment. */
function outer(): void {
  if (process.getuid?.() !== 0) {
    console.error('bench/firewall.ts needs root (network namespaces, iptables/nft)');
    process.exit(2);
  }
  const ns = `ca-fw-bench-${randomBytes(3).toString('hex')}`;
  spawnSync('ip', ['netns', 'add', ns]);
  try {
    const env = ['env', '-i', `PATH=${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, ...(process.env.BENCH_RUNS ? [`BENCH_RUNS=${process.env.BENCH_RUNS}`] : [])];
    const r = spawnSync('ip', ['netns', 'exec', ns, ...env, process.execPath, ...process.execArgv, __filename, INNER], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

async function inner(): Promise<void> {
  const backends = BACKENDS.filter((b) => have(TOOL_OF[b]));
  const skipped = BACKENDS.filter((b) => !have(TOOL_OF[b])).map((b) => `${b} (no ${TOOL_OF[b]})`);
  let ok = true;

  const enforceRows: EnforceRow[] = [];
  for (const backend of backends) enforceRows.push(await benchEnforce(backend));
  console.log(`firewall enforce as the agent runs it (default config, 2-port payload, guard off), median of ${RUNS * 2} changed / ${RUNS} unchanged runs, clean environment, inside the namespace`);
  console.log('backend          changed ms  children  unchanged ms  children');
  for (const r of enforceRows) {
    const target = r.backend === 'nft' ? (r.changed <= ENFORCE_TARGET_MS ? `  ok (<= ${ENFORCE_TARGET_MS} ms)` : `  OVER TARGET (${ENFORCE_TARGET_MS} ms)`) : '';
    if (r.backend === 'nft' && r.changed > ENFORCE_TARGET_MS) ok = false;
    console.log(
      `${r.backend.padEnd(16)} ${r.changed.toFixed(1).padStart(10)}  ${String(r.changedChildren).padStart(8)}  ${r.unchanged.toFixed(1).padStart(12)}  ${String(r.unchangedChildren).padStart(8)}${target}`,
    );
  }

  const rows: Row[] = [];
  for (const backend of backends) rows.push(...(await benchBackend(backend)));
  console.log(`\nfirewall render and apply, median of ${RUNS} runs`);
  console.log('backend          entries  kernel rules  render ms  apply ms  snapshot+apply ms');
  for (const r of rows) {
    // The target is held against snapshot+apply: everything needed to apply from scratch.
    const flag = r.n === 100 ? (r.snapApply < TARGET_MS ? '  ok (< 50 ms)' : '  OVER TARGET (50 ms)') : '';
    if (r.n === 100 && r.snapApply >= TARGET_MS) ok = false;
    console.log(
      `${r.backend.padEnd(16)} ${String(r.n).padStart(7)}  ${String(r.ruleCount).padStart(12)}  ${r.render.toFixed(2).padStart(9)}  ${r.apply.toFixed(1).padStart(8)}  ${r.snapApply.toFixed(1).padStart(17)}${flag}`,
    );
  }
  for (const s of skipped) console.log(`skipped: ${s}`);
  if (!ok) process.exitCode = 1;
}

if (process.argv.includes(INNER)) {
  inner().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  outer();
}
