/**
 * Daemon steady state: `cartridge-agent run` from the bundle against an in-process broker,
 * reporting health every 1 s, then at the default interval (15 s). Samples RSS (VmRSS) and CPU
 * (utime+stime from /proc/<pid>/stat) after a warm-up. Targets: RSS < 60 MB, CPU < 1% of one
 * core at the default interval. BENCH_DAEMON_SECONDS sets each phase's length (default 60).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AedesBroker } from '../test/fixtures/health/aedes';
import { BUNDLE, makeImageRoot, startPayloadServer } from '../scripts/lib/fake-instance';

const SECONDS = Number(process.env.BENCH_DAEMON_SECONDS ?? 60);
const WARMUP_S = 10;
/** How the systemd unit runs node (packaging): a small young generation keeps RSS down. */
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean);
const TICKS_PER_S = 100; // USER_HZ on Linux
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
}
/** VmRSS, and the anonymous part of it (the file-backed rest is mostly node's own binary, shared). */
function rssMb(pid: number): { total: number; anon: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN);
  return { total: kb('VmRSS') / 1024, anon: kb('RssAnon') / 1024 };
}

async function phase(intervalSeconds: number): Promise<{ rss: number; anon: number; cpuPct: number; reports: number }> {
  const broker = await AedesBroker.start({ m1: 'pw' });
  const controller = await startPayloadServer(`SERVICE_NAME=php,MEMBER_ID=m1,MB_URLS=tcp://127.0.0.1:${broker.port},MB_USERNAME=m1,MB_PASSWORD=pw`);
  const image = makeImageRoot(controller.url, { health: { intervalSeconds, protocolVersion: '3.1.1' }, readiness: { enabled: false } });
  let reports = 0;
  broker.broker.on('publish', (packet) => {
    if (packet.topic.endsWith('/health')) reports++;
  });
  const child = spawn(process.execPath, [...NODE_FLAGS, BUNDLE, 'run', '--root', image.root, '--log-level', 'warn'], { stdio: 'ignore' });
  try {
    await sleep(WARMUP_S * 1000);
    const pid = child.pid as number;
    const t0 = Date.now();
    const c0 = cpuTicks(pid);
    let peak = 0;
    let anon = 0;
    while (Date.now() - t0 < SECONDS * 1000) {
      const m = rssMb(pid);
      peak = Math.max(peak, m.total);
      anon = Math.max(anon, m.anon);
      await sleep(1000);
    }
    const cpuPct = ((cpuTicks(pid) - c0) / TICKS_PER_S / ((Date.now() - t0) / 1000)) * 100;
    return { rss: peak, anon, cpuPct, reports };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await controller.close();
    await broker.close();
    image.remove();
  }
}

async function main(): Promise<void> {
  console.log(`daemon steady state, ${SECONDS} s per phase after ${WARMUP_S} s warm-up, node ${process.version} ${NODE_FLAGS.join(' ')}`);
  let ok = true;
  for (const interval of [1, 15]) {
    const r = await phase(interval);
    const rssOk = r.rss < 60;
    const cpuOk = interval === 1 || r.cpuPct < 1;
    ok = ok && rssOk && cpuOk;
    console.log(
      `  interval ${String(interval).padStart(2)} s: peak RSS ${r.rss.toFixed(1)} MB (${r.anon.toFixed(1)} MB anonymous; target < 60) ${rssOk ? 'OK' : 'MISSED'}   ` +
        `CPU ${r.cpuPct.toFixed(2)}% of one core${interval === 15 ? ` (target < 1%) ${cpuOk ? 'OK' : 'MISSED'}` : ''}   ${r.reports} health reports`,
    );
  }
  if (!ok) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
