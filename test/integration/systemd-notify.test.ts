/**
 * sd_notify for real, without systemd: a fake NOTIFY_SOCKET (an AF_UNIX datagram listener in
 * python3, test/fixtures/systemd/notify-listener.py) receives what the real `systemd-notify`
 * binary sends for our notifier, from a child process running the real notifier + watchdog.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { requireCommands } from '../helpers/env';

const LISTENER = path.resolve('test/fixtures/systemd/notify-listener.py');
const DAEMON = path.resolve('test/fixtures/systemd/notifying-daemon.ts');

interface Line {
  at: number;
  text: string;
}

/** Collects a child's stdout lines with the time (here) they arrived. */
function collectLines(child: ChildProcess): Line[] {
  const lines: Line[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => lines.push({ at: performance.now(), text }));
  return lines;
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Listener {
  socket: string;
  /** Datagrams received, BARRIER=1 (systemd-notify's sync message) left out. */
  messages(): Array<{ at: number; pid: number | null; msg: string }>;
}

async function startListener(t: TestContext): Promise<Listener> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ca-notify-'));
  const socket = path.join(dir, 'notify');
  const child = spawn('python3', [LISTENER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  const lines = collectLines(child);
  await until('the listener', () => lines.some((l) => l.text === 'LISTENING'));
  return {
    socket,
    messages: () =>
      lines
        .filter((l) => l.text.startsWith('{'))
        .map((l) => ({ at: l.at, ...(JSON.parse(l.text) as { pid: number | null; msg: string }) }))
        .filter((m) => m.msg !== 'BARRIER=1'),
  };
}

interface Daemon {
  child: ChildProcess;
  lines: Line[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function startDaemon(t: TestContext, env: NodeJS.ProcessEnv): Daemon {
  const child = spawn(process.execPath, ['--import', 'tsx', DAEMON], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, lines: collectLines(child), stderr: () => err, exited };
}

const marker = (d: Daemon, prefix: string) => d.lines.find((l) => l.text.startsWith(prefix));
const pingsIn = (l: Listener, from: number, to = Infinity) => l.messages().filter((m) => m.msg === 'WATCHDOG=1' && m.at >= from && m.at < to).length;

test('the real systemd-notify binary delivers to an AF_UNIX datagram socket (as our parent pid when root)', async (t) => {
  if (!requireCommands(t, 'python3', 'systemd-notify')) return;
  const listener = await startListener(t);
  const env = { ...process.env, NOTIFY_SOCKET: listener.socket };
  for (const args of [['READY=1', 'STATUS=up and running'], ['WATCHDOG=1'], ['STOPPING=1']]) {
    const r = spawnSync('systemd-notify', args, { env, encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, `systemd-notify ${args.join(' ')}: ${r.stderr}`);
  }
  const got = await until('3 datagrams', () => (listener.messages().length >= 3 ? listener.messages() : undefined));
  assert.deepEqual(got.map((m) => m.msg), ['READY=1\nSTATUS=up and running', 'WATCHDOG=1', 'STOPPING=1']);
  // systemd 252's systemd-notify first tries to send with its parent's credentials (needs
  // privilege); that is why NotifyAccess=main would even work for a root agent. Unprivileged,
  // it sends as itself, hence NotifyAccess=all in our unit.
  if (process.getuid?.() === 0) for (const m of got) assert.equal(m.pid, process.pid);
});

test('daemon: READY=1, then WATCHDOG=1 at half the interval, then STOPPING=1 on SIGTERM, in that order', async (t) => {
  if (!requireCommands(t, 'python3', 'systemd-notify')) return;
  const listener = await startListener(t);
  const d = startDaemon(t, { ...process.env, NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '300000' });
  await until('READY from the daemon', () => marker(d, 'READY'), 20_000);
  assert.equal(marker(d, 'READY')?.text, 'READY watchdog=150 enabled=true');
  const readyAt = performance.now();
  await sleep(1_200);
  d.child.kill('SIGTERM');
  assert.equal(await d.exited, 0, d.stderr());
  assert.ok(marker(d, 'STOPPED'), 'daemon reported STOPPED');
  const msgs = listener.messages().map((m) => m.msg);
  assert.equal(msgs[0], 'STATUS=starting');
  assert.equal(msgs[1], 'READY=1\nSTATUS=running');
  assert.equal(msgs.at(-1), 'STOPPING=1\nSTATUS=shutting down');
  const middle = msgs.slice(2, -1);
  assert.ok(middle.every((m) => m === 'WATCHDOG=1'), `only pings between READY and STOPPING: ${JSON.stringify(middle)}`);
  // 1.2 s at a 150 ms period: ~8 pings (+1 at start); allow slack for a loaded machine.
  const pings = pingsIn(listener, readyAt - 1_000);
  assert.ok(pings >= 5 && pings <= 11, `expected ~8 WATCHDOG=1 in 1.2 s, got ${pings}`);
});

test('daemon: a main loop that stops making progress stops the WATCHDOG=1 pings', async (t) => {
  if (!requireCommands(t, 'python3', 'systemd-notify')) return;
  const listener = await startListener(t);
  const d = startDaemon(t, { ...process.env, NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '200000', FIXTURE_MODE: 'stall', STALL_AFTER_MS: '700' });
  const stalled = await until('STALLED', () => marker(d, 'STALLED'), 20_000);
  assert.ok(pingsIn(listener, 0, stalled.at) >= 4, 'pings flowed while the loop made progress');
  // Pings may go on for staleAfter (200 ms) + one period + a notification in flight.
  await sleep(500);
  const quietFrom = performance.now();
  await sleep(1_000);
  assert.equal(pingsIn(listener, quietFrom), 0, 'no WATCHDOG=1 once the main loop stalled: systemd would restart us');
  d.child.kill('SIGTERM');
  assert.equal(await d.exited, 0, d.stderr());
  assert.match(d.stderr(), /withholding WATCHDOG=1/);
});

test('daemon: a blocked event loop sends no WATCHDOG=1 while blocked, and pings resume after', async (t) => {
  if (!requireCommands(t, 'python3', 'systemd-notify')) return;
  const listener = await startListener(t);
  const d = startDaemon(t, { ...process.env, NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '200000', FIXTURE_MODE: 'block', STALL_AFTER_MS: '600', BLOCK_MS: '1500' });
  const blockStart = await until('BLOCK_START', () => marker(d, 'BLOCK_START'), 20_000);
  const blockEnd = await until('BLOCK_END', () => marker(d, 'BLOCK_END'), 10_000);
  assert.ok(pingsIn(listener, 0, blockStart.at) >= 3, 'pings flowed before the block');
  // A ping spawned just before the block may land shortly after it began.
  assert.equal(pingsIn(listener, blockStart.at + 300, blockEnd.at), 0, 'no pings while the event loop was blocked');
  await sleep(800);
  assert.ok(pingsIn(listener, blockEnd.at) >= 2, 'pings resumed once the loop ran again');
  d.child.kill('SIGTERM');
  assert.equal(await d.exited, 0, d.stderr());
});

test('WATCHDOG_USEC set but systemd-notify not on PATH: a clear error at start, exit 1, nothing sent', async (t) => {
  if (!requireCommands(t, 'python3')) return;
  const listener = await startListener(t);
  const d = startDaemon(t, { ...process.env, PATH: '/nonexistent', NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '200000' });
  assert.equal(await d.exited, 1);
  assert.match(d.stderr(), /NotifyError: systemd asked for a watchdog \(WATCHDOG_USEC=200000\) but notifying cannot work: the systemd-notify binary is not on PATH \(\/nonexistent\)/);
  assert.equal(marker(d, 'READY'), undefined);
  assert.deepEqual(listener.messages(), []);
});

test('WATCHDOG_USEC set but NOTIFY_SOCKET missing or not a socket: a clear error at start', async (t) => {
  if (!requireCommands(t, 'systemd-notify')) return;
  const noSocket = startDaemon(t, { ...process.env, NOTIFY_SOCKET: '', WATCHDOG_USEC: '200000' });
  assert.equal(await noSocket.exited, 1);
  assert.match(noSocket.stderr(), /notifying cannot work: NOTIFY_SOCKET is not set/);
  const dead = startDaemon(t, { ...process.env, NOTIFY_SOCKET: path.join(tmpdir(), 'ca-no-such-socket'), WATCHDOG_USEC: '200000' });
  assert.equal(await dead.exited, 1);
  assert.match(dead.stderr(), /notifying cannot work: systemd-notify failed \(exit 1\) sending to .*ca-no-such-socket: .*No such file or directory/);
});

test('outside systemd (no NOTIFY_SOCKET, no WATCHDOG_USEC) everything is a no-op; WATCHDOG_PID of another process disables the watchdog', async (t) => {
  if (!requireCommands(t, 'python3', 'systemd-notify')) return;
  const env = { ...process.env };
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  const plain = startDaemon(t, env);
  await until('READY', () => marker(plain, 'READY'), 20_000);
  assert.equal(marker(plain, 'READY')?.text, 'READY watchdog=off enabled=false');
  plain.child.kill('SIGTERM');
  assert.equal(await plain.exited, 0, plain.stderr());

  const listener = await startListener(t);
  const other = startDaemon(t, { ...process.env, NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' });
  await until('READY', () => marker(other, 'READY'), 20_000);
  assert.equal(marker(other, 'READY')?.text, 'READY watchdog=off enabled=true');
  await sleep(500);
  other.child.kill('SIGTERM');
  assert.equal(await other.exited, 0, other.stderr());
  assert.deepEqual(listener.messages().map((m) => m.msg), ['STATUS=starting', 'READY=1\nSTATUS=running', 'STOPPING=1\nSTATUS=shutting down']);
});
