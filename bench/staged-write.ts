/**
 * Microbench of the boot's file transaction (`node --import tsx bench/staged-write.ts`): the
 * files one `once` stages and commits together — payload.env and payload.json in the runtime
 * dir, the profile.d file, the cache entry and firewall.json — in four directories, on a disk
 * (a temp dir under /var/tmp) and on a tmpfs (/dev/shm), as FileTransaction does it. Two
 * timings, medians of BENCH_RUNS (default 31) after two warm-ups:
 * - back to back: stage every file, commit at once;
 * - critical path with 20 ms of other work between staging and commit (what the boot work does
 *   there: apply the firewall), the stage and commit time only: fsyncs that finish during that
 *   work cost the boot nothing.
 * BENCH_COMPARE_WITH=DIR also measures DIR/agent/src/io/staged-write.ts (e.g. an older
 * checkout: `git archive <commit> agent | tar -x -C DIR`), paired run by run (A B A B …).
 * Prints figures only; no target (docs/firewall.md records what was measured).
 */
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';

type Impl = typeof import('../agent/src/io/staged-write');

const RUNS = Number(process.env.BENCH_RUNS ?? 31);
const OTHER_WORK_MS = 20;
const TMPFS_MAGIC = 0x01021994;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The boot's files: [directory, name, size in bytes]. */
const FILES: Array<[string, string, number]> = [
  ['run/cartridge-agent', 'payload.env', 1200],
  ['run/cartridge-agent', 'payload.json', 1400],
  ['etc/profile.d', 'cartridge-agent.sh', 1500],
  ['var/lib/cartridge-agent/cache', '0123456789abcdef0123456789abcdef.payload.json', 2500],
  ['var/lib/cartridge-agent', 'firewall.json', 6000],
];

async function once(impl: Impl, root: string, run: number, between: number): Promise<number> {
  const txn = new impl.FileTransaction();
  let t = process.hrtime.bigint();
  for (const [dir, name, size] of FILES) {
    await txn.stage(path.join(root, dir, name), `${run}`.padEnd(size, 'x'), { mode: 0o600, stage: 'bench' });
  }
  let spent = process.hrtime.bigint() - t;
  if (between > 0) await sleep(between);
  t = process.hrtime.bigint();
  await txn.commit();
  spent += process.hrtime.bigint() - t;
  return Number(spent) / 1e6;
}

async function main(): Promise<void> {
  const impls: Array<[string, Impl]> = [['this tree', await import('../agent/src/io/staged-write')]];
  const other = process.env.BENCH_COMPARE_WITH;
  if (other) impls.push([other, (await import(path.resolve(other, 'agent/src/io/staged-write'))) as Impl]);
  for (const base of ['/var/tmp', '/dev/shm']) {
    const root = mkdtempSync(path.join(base, 'ca-staged-write-'));
    const kind = statfsSync(root).type === TMPFS_MAGIC ? 'tmpfs' : 'disk';
    try {
      for (const between of [0, OTHER_WORK_MS]) {
        const times = impls.map(() => [] as number[]);
        for (let run = 0; run < RUNS + 2; run++) {
          // Paired: the order alternates so neither implementation always runs first.
          const order = run % 2 === 0 ? impls.map((_, i) => i) : impls.map((_, i) => impls.length - 1 - i);
          for (const i of order) {
            const ms = await once((impls[i] as [string, Impl])[1], path.join(root, String(i)), run, between);
            if (run >= 2) times[i]?.push(ms);
          }
        }
        const label = between === 0 ? 'back to back' : `critical path, ${OTHER_WORK_MS} ms of other work between`;
        const figures = impls.map(([name], i) => `${name} ${median(times[i] ?? []).toFixed(2)} ms`).join('   ');
        console.log(`${kind} (${base}), ${FILES.length} files in 4 dirs, ${label}: ${figures}`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
