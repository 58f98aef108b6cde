/**
 * `npm run bench`: `cartridge-agent once` from the bundle against a local payload server.
 * Reports median and p90 wall time (including Node's start) and peak RSS over repeated runs,
 * against the targets: < 150 ms wall, < 60 MB RSS — on each runtime, without and with the
 * code cache (CARTRIDGE_AGENT_CODE_CACHE, as the systemd unit runs the agent), beside the
 * runtime's own start-up time (`node -e 0`) for scale.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BUNDLE, makeImageRoot, runCommand, SAMPLE_PAYLOAD, startPayloadServer } from '../scripts/lib/fake-instance';
import { agentRuntimes } from '../test/helpers/runtimes';
import { cleanEnv } from './lib/clean-env';

const RUNS = Number(process.env.BENCH_RUNS ?? 25);
const TARGET_MS = 150;
const TARGET_RSS_MB = 60;

// python3 measures the child precisely: wall time around the exec, and ru_maxrss of the
// child alone (Node cannot read a child's rusage).
const MEASURE = `
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = (time.perf_counter() - t) * 1000
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{r.returncode} {wall:.2f} {rss:.1f}")
sys.stderr.write(r.stderr.decode())
`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

interface Measured {
  walls: number[];
  rss: number[];
}

async function measure(command: string[], runs: number, env: NodeJS.ProcessEnv = cleanEnv()): Promise<Measured> {
  const walls: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const r = await runCommand('python3', ['-c', MEASURE, ...command], 30_000, env);
    const [code, wall, maxRss] = r.out.trim().split(' ').map(Number);
    if (code !== 0) throw new Error(`${command.join(' ')} failed (exit ${code}): ${r.err}`);
    if (i < 2) continue; // warm the page cache (and the code cache) first
    walls.push(wall as number);
    rss.push(maxRss as number);
  }
  walls.sort((a, b) => a - b);
  rss.sort((a, b) => a - b);
  return { walls, rss };
}

async function bench(node: string, label: string): Promise<boolean> {
  const baseline = await measure([node, '-e', '0'], 9);
  console.log(`${label}: node -e 0 alone takes ${quantile(baseline.walls, 0.5).toFixed(1)} ms, ${quantile(baseline.rss, 0.5).toFixed(1)} MB`);
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'cartridge-code-cache-'));
  let ok = true;
  try {
    ok = (await benchOnce(node, `${label}, no code cache`, cleanEnv())) && ok;
    ok = (await benchOnce(node, `${label}, code cache`, cleanEnv({ CARTRIDGE_AGENT_CODE_CACHE: path.join(cacheDir, 'cc') }))) && ok;
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
  return ok;
}

async function benchOnce(node: string, label: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const server = await startPayloadServer(SAMPLE_PAYLOAD);
  const image = makeImageRoot(server.url);
  let walls: number[];
  let rss: number[];
  try {
    ({ walls, rss } = await measure([node, BUNDLE, 'once', '--root', image.root, '--log-level', 'warn'], RUNS, env));
  } finally {
    await server.close();
    image.remove();
  }
  const median = quantile(walls, 0.5);
  const peak = rss[rss.length - 1] as number;
  console.log(`  once (bundle, local payload server), ${RUNS} runs, ${label}`);
  console.log(`    wall   median ${median.toFixed(1)} ms   p90 ${quantile(walls, 0.9).toFixed(1)} ms   min ${walls[0]?.toFixed(1)} ms   target < ${TARGET_MS} ms  ${median < TARGET_MS ? 'OK' : 'MISSED'}`);
  console.log(`    rss    median ${quantile(rss, 0.5).toFixed(1)} MB   peak ${peak.toFixed(1)} MB   target < ${TARGET_RSS_MB} MB  ${peak < TARGET_RSS_MB ? 'OK' : 'MISSED'}`);
  return median < TARGET_MS && peak < TARGET_RSS_MB;
}

async function main(): Promise<void> {
  let ok = true;
  for (const runtime of agentRuntimes()) {
    if (!runtime.node) {
      console.log(`${runtime.name}: skipped (${runtime.missing})`);
      continue;
    }
    ok = (await bench(runtime.node, runtime.name)) && ok;
  }
  if (!ok) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
