/**
 * Daemon steady state, as deployed: `cartridge-agent run` from the bundle with the node flags
 * (ExecStart=), environment (Environment=, %C → a temp cache root) and watchdog (WatchdogSec=,
 * fed through a fake NOTIFY_SOCKET, so every ping spawns systemd-notify as under systemd) of
 * packaging/systemd/cartridge-agent.service, on Debian 12's Node 18 (the images' runtime) and
 * on this Node. The broker and the controller are in this process; the image root's /proc is
 * the real one, so health reports read real numbers.
 *
 * Per runtime, two phases: health every 1 s on the first boot (the code cache is cold, and
 * written when the daemon stops), then at the default interval on a later boot (cache warm).
 * After a warm-up, VmRSS (split into RssAnon + RssFile) is sampled every second; CPU is
 * utime+stime of the daemon and of its reaped children (systemd-notify) over the phase.
 * Targets: VmRSS < 60 MB in both phases, CPU < 1% of one core at the default interval.
 *
 * BENCH_DAEMON_SECONDS: length of each phase (default 60). BENCH_NODE_FLAGS: node flags to use
 * instead of the unit's; BENCH_UNIT: another unit file to read (both to try a candidate).
 * Debian's Node 18 is found as the tests find it (test/helpers/runtimes.ts; bench/run.ts prepares it).
 * Without the unit file: --max-semi-space-size=1, no unit environment, no watchdog.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../agent/src/config';
import { AedesBroker } from '../test/fixtures/health/aedes';
import { startNotifyListener } from '../test/fixtures/systemd/notify-listener';
import { hasCommand } from '../test/helpers/env';
import { agentRuntimes } from '../test/helpers/runtimes';
import { BUNDLE, makeImageRoot, startPayloadServer } from '../scripts/lib/fake-instance';
import { cleanEnv } from './lib/clean-env';
import { expandSpecifiers, parseUnitDeployment } from './lib/unit-file';

const SECONDS = Number(process.env.BENCH_DAEMON_SECONDS ?? 60);
const WARMUP_S = 10;
const UNIT_FILE = process.env.BENCH_UNIT ?? 'packaging/systemd/cartridge-agent.service';
const FALLBACK_FLAGS = ['--max-semi-space-size=1'];
const TARGET_RSS_MB = 60;
const TARGET_CPU_PCT = 1;
const DEFAULT_INTERVAL_S = parseConfig({}).health.intervalSeconds;
const TICKS_PER_S = 100; // USER_HZ on Linux
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Deployment {
  flags: string[];
  flagsFrom: string;
  /** Environment= with %C already pointing into `cacheRoot`. */
  env: Record<string, string>;
  watchdogUsec: number | null;
  notes: string[];
}

function readDeployment(cacheRoot: string): Deployment {
  const override = process.env.BENCH_NODE_FLAGS;
  const overridden = override !== undefined ? override.split(' ').filter(Boolean) : null;
  if (!existsSync(UNIT_FILE)) {
    return {
      flags: overridden ?? FALLBACK_FLAGS,
      flagsFrom: overridden ? 'BENCH_NODE_FLAGS' : `default (no ${UNIT_FILE})`,
      env: {},
      watchdogUsec: null,
      notes: [`no ${UNIT_FILE}: no unit environment, no watchdog`],
    };
  }
  const unit = parseUnitDeployment(readFileSync(UNIT_FILE, 'utf8'), UNIT_FILE);
  const env: Record<string, string> = {};
  const notes: string[] = [];
  for (const [name, raw] of unit.environment) {
    const expanded = expandSpecifiers(raw, { C: cacheRoot });
    if ('unknown' in expanded) notes.push(`Environment=${name}=${raw} left out: the bench cannot stand in for ${expanded.unknown}`);
    else env[name] = expanded.value;
  }
  return {
    flags: overridden ?? unit.nodeFlags,
    flagsFrom: overridden ? 'BENCH_NODE_FLAGS' : `ExecStart= of ${UNIT_FILE}`,
    env,
    watchdogUsec: unit.watchdogUsec,
    notes,
  };
}

/** utime+stime of the process and of its waited-for children (fields 14-17 of /proc/PID/stat). */
function cpuTicks(pid: number): { own: number; children: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ').map(Number);
  return { own: (f[11] as number) + (f[12] as number), children: (f[13] as number) + (f[14] as number) };
}

interface Rss {
  total: number;
  anon: number;
  file: number;
}

function rssMb(pid: number): Rss {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN) / 1024;
  return { total: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile') + mb('RssShmem') };
}

interface PhaseResult {
  rss: Rss;
  cpuPct: number;
  childCpuPct: number;
  reports: number;
  pings: number | null;
  /** Health reports and watchdog pings since the start, warm-up included (is it working?). */
  working: boolean;
}

async function phase(node: string, deploy: Deployment, intervalSeconds: number): Promise<PhaseResult> {
  const broker = await AedesBroker.start({ m1: 'pw' });
  const controller = await startPayloadServer(`SERVICE_NAME=php,MEMBER_ID=m1,MB_URLS=tcp://127.0.0.1:${broker.port},MB_USERNAME=m1,MB_PASSWORD=pw`);
  const image = makeImageRoot(controller.url, { health: { intervalSeconds, protocolVersion: '3.1.1' }, readiness: { enabled: false } });
  symlinkSync('/proc', image.at('/proc'));
  const notify = deploy.watchdogUsec !== null ? await startNotifyListener(path.join(image.root, 'notify')) : null;
  const pings = () => notify?.messages.filter((m) => m.msg.includes('WATCHDOG=1')).length ?? 0;
  let reports = 0;
  broker.broker.on('publish', (packet) => {
    if (packet.topic.endsWith('/health')) reports++;
  });
  const env = cleanEnv(deploy.env);
  if (notify) Object.assign(env, { NOTIFY_SOCKET: notify.socket, WATCHDOG_USEC: String(deploy.watchdogUsec) });
  const child: ChildProcess = spawn(node, [...deploy.flags, BUNDLE, 'run', '--root', image.root, '--log-level', 'warn'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the daemon exited (${child.exitCode ?? child.signalCode}) during the bench:\n${stderr}`);
  };
  try {
    await sleep(WARMUP_S * 1000);
    alive();
    const pid = child.pid as number;
    const t0 = Date.now();
    const c0 = cpuTicks(pid);
    const reports0 = reports;
    const pings0 = pings();
    let peak: Rss = { total: 0, anon: 0, file: 0 };
    while (Date.now() - t0 < SECONDS * 1000) {
      alive();
      const m = rssMb(pid);
      if (m.total > peak.total) peak = m;
      await sleep(1000);
    }
    alive();
    const c1 = cpuTicks(pid);
    const seconds = (Date.now() - t0) / 1000;
    const pct = (ticks: number) => (ticks / TICKS_PER_S / seconds) * 100;
    return {
      rss: peak,
      cpuPct: pct(c1.own - c0.own + c1.children - c0.children),
      childCpuPct: pct(c1.children - c0.children),
      reports: reports - reports0,
      pings: notify ? pings() - pings0 : null,
      working: reports > 0 && (notify === null || pings() > 0),
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
    notify?.stop();
    await controller.close();
    await broker.close();
    image.remove();
  }
}

async function benchRuntime(label: string, node: string, note: string): Promise<boolean> {
  const version = execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
  const cacheRoot = mkdtempSync(path.join(tmpdir(), 'cartridge-bench-cache-'));
  try {
    const deploy = readDeployment(cacheRoot);
    const codeCache = deploy.env.CARTRIDGE_AGENT_CODE_CACHE;
    console.log(`${label} (node ${version}${note}):`);
    let ok = true;
    const phases = [
      { interval: 1, boot: codeCache ? 'first boot, code cache cold' : 'no code cache' },
      { interval: DEFAULT_INTERVAL_S, boot: codeCache ? 'later boot, code cache warm' : 'no code cache' },
    ];
    for (const [i, p] of phases.entries()) {
      if (i === 1 && codeCache && !(existsSync(codeCache) && readdirSync(codeCache).some((f) => f.endsWith('.bin')))) {
        p.boot = 'code cache NOT written by the first boot';
      }
      const r = await phase(node, deploy, p.interval);
      const rssOk = r.rss.total < TARGET_RSS_MB;
      const cpuTarget = p.interval === DEFAULT_INTERVAL_S;
      const cpuOk = !cpuTarget || r.cpuPct < TARGET_CPU_PCT;
      ok = ok && rssOk && cpuOk && r.working;
      console.log(
        `  health every ${String(p.interval).padStart(2)} s (${p.boot}):\n` +
          `    VmRSS ${r.rss.total.toFixed(1)} MB peak (anon ${r.rss.anon.toFixed(1)} + file ${r.rss.file.toFixed(1)})   target < ${TARGET_RSS_MB} MB ${rssOk ? 'OK' : 'MISSED'}\n` +
          `    CPU ${r.cpuPct.toFixed(2)}% of one core (systemd-notify children ${r.childCpuPct.toFixed(2)}%)` +
          (cpuTarget ? `   target < ${TARGET_CPU_PCT}% ${cpuOk ? 'OK' : 'MISSED'}` : '   (no target at this interval)') +
          `\n    ${r.reports} health reports${r.pings === null ? '' : `, ${r.pings} watchdog pings`} in ${SECONDS} s${r.working ? '' : '   NOT WORKING (no health reports or no watchdog pings at all)'}`,
      );
    }
    return ok;
  } finally {
    rmSync(cacheRoot, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const probe = readDeployment('%C'); // what the unit says, for the header
  const env = Object.entries(probe.env).map(([k, v]) => `${k}=${v}`);
  console.log(`daemon steady state, ${SECONDS} s per phase after ${WARMUP_S} s warm-up, as deployed:`);
  console.log(`  node flags: ${probe.flags.join(' ') || '(none)'}   [${probe.flagsFrom}]`);
  console.log(`  environment: ${env.join(' ') || '(none)'}`);
  const watchdogOk = hasCommand('python3') && hasCommand('systemd-notify');
  if (probe.watchdogUsec !== null && !watchdogOk) throw new Error('WatchdogSec= is set but python3 or systemd-notify is missing: cannot run the daemon as deployed');
  console.log(`  watchdog: ${probe.watchdogUsec === null ? 'off' : `WATCHDOG_USEC=${probe.watchdogUsec} (pings through systemd-notify to a fake NOTIFY_SOCKET)`}`);
  for (const note of probe.notes) console.log(`  note: ${note}`);

  const results: Array<{ label: string; ok: boolean | null }> = [];
  // The images' runtime first.
  const runtimes = agentRuntimes()
    .reverse()
    .map((r) => ({ ...r, label: r.node === process.execPath ? 'this node' : r.name, note: r.node === process.execPath ? '' : ", the images' runtime" }));
  for (const rt of runtimes) {
    if (!rt.node) {
      console.log(`${rt.label}: NOT MEASURED (${rt.missing})`);
      results.push({ label: rt.label, ok: null });
      continue;
    }
    results.push({ label: rt.label, ok: await benchRuntime(rt.label, rt.node, rt.note) });
  }
  console.log(`daemon targets: ${results.map((r) => `${r.label}: ${r.ok === null ? 'not measured' : r.ok ? 'met' : 'MISSED'}`).join('; ')}`);
  // The images' runtime is the one that counts: not measuring it is a failure, not a pass.
  if (results.some((r) => r.ok !== true)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
