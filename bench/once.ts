/**
 * `npm run bench`: `cartridge-agent once` from the bundle against a local payload server.
 * Reports median and p90 wall time (including Node's start) and peak RSS over repeated runs,
 * against the targets: < 150 ms wall, < 60 MB RSS.
 */
import { BUNDLE, makeImageRoot, runCommand, SAMPLE_PAYLOAD, startPayloadServer } from '../scripts/lib/fake-instance';
import { agentRuntimes } from '../test/helpers/runtimes';

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

async function bench(node: string, label: string): Promise<boolean> {
  const server = await startPayloadServer(SAMPLE_PAYLOAD);
  const image = makeImageRoot(server.url);
  const walls: number[] = [];
  const rss: number[] = [];
  try {
    for (let i = 0; i < RUNS + 2; i++) {
      const r = await runCommand('python3', ['-c', MEASURE, node, BUNDLE, 'once', '--root', image.root, '--log-level', 'warn']);
      const [code, wall, maxRss] = r.out.trim().split(' ').map(Number);
      if (code !== 0) throw new Error(`once failed (exit ${code}): ${r.err}`);
      if (i < 2) continue; // warm the page cache first
      walls.push(wall as number);
      rss.push(maxRss as number);
    }
  } finally {
    await server.close();
    image.remove();
  }
  walls.sort((a, b) => a - b);
  rss.sort((a, b) => a - b);
  const median = quantile(walls, 0.5);
  const peak = rss[rss.length - 1] as number;
  console.log(`once (bundle, local payload server), ${RUNS} runs, ${label}`);
  console.log(`  wall   median ${median.toFixed(1)} ms   p90 ${quantile(walls, 0.9).toFixed(1)} ms   min ${walls[0]?.toFixed(1)} ms   target < ${TARGET_MS} ms  ${median < TARGET_MS ? 'OK' : 'MISSED'}`);
  console.log(`  rss    median ${quantile(rss, 0.5).toFixed(1)} MB   peak ${peak.toFixed(1)} MB   target < ${TARGET_RSS_MB} MB  ${peak < TARGET_RSS_MB ? 'OK' : 'MISSED'}`);
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
