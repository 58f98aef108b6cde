/**
 * The notifier's decisions with a fake runner: what it sends, in which order, when it is a
 * no-op, and when it fails loudly. The real binary and socket: test/integration/systemd-notify.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../agent/src/log';
import { createNotifier, NotifyError, statusLine, watchdogUsecFromEnv, type NotifyRunner, type NotifyRunResult } from '../../agent/src/systemd/notify';

const OK: NotifyRunResult = { code: 0, stderr: '', notFound: false };
const SOCKET = '/run/systemd/notify';

function recordingRunner(result: (args: string[]) => NotifyRunResult | Promise<NotifyRunResult> = () => OK) {
  const calls: Array<{ binary: string; args: string[]; socket: string | undefined }> = [];
  const runner: NotifyRunner = async (binary, args, env) => {
    calls.push({ binary, args, socket: env.NOTIFY_SOCKET });
    return result(args);
  };
  return { calls, runner };
}

test('without NOTIFY_SOCKET every call is a no-op (nothing is spawned)', async () => {
  const { calls, runner } = recordingRunner();
  const n = createNotifier({ env: { PATH: '/usr/bin' }, log: silentLogger(), runner });
  assert.equal(n.enabled, false);
  assert.equal(n.watchdogMs, null);
  assert.equal(await n.verify(), false);
  assert.equal(await n.ready('x'), false);
  assert.equal(await n.status('x'), false);
  assert.equal(await n.watchdog(), false);
  assert.equal(await n.stopping(), false);
  assert.deepEqual(calls, []);
});

test('sends VAR=VALUE assignments through systemd-notify, no flags', async () => {
  const { calls, runner } = recordingRunner();
  const n = createNotifier({ env: { NOTIFY_SOCKET: SOCKET }, log: silentLogger(), runner });
  assert.equal(await n.ready('serving'), true);
  await n.status('waiting for the personality file');
  await n.watchdog();
  await n.stopping();
  await n.reloading();
  assert.deepEqual(calls.map((c) => c.binary), Array(5).fill('systemd-notify'));
  assert.ok(calls.every((c) => c.socket === SOCKET));
  assert.deepEqual(calls.slice(0, 4).map((c) => c.args), [
    ['READY=1', 'STATUS=serving'],
    ['STATUS=waiting for the personality file'],
    ['WATCHDOG=1'],
    ['STOPPING=1'],
  ]);
  assert.equal(calls[4]!.args[0], 'RELOADING=1');
  assert.match(calls[4]!.args[1] ?? '', /^MONOTONIC_USEC=\d+$/);
});

test('calls are serialised: a slow READY is delivered before the WATCHDOG and STOPPING asked for after it', async () => {
  const order: string[] = [];
  let running = 0;
  const runner: NotifyRunner = async (_b, args) => {
    running++;
    assert.equal(running, 1, 'never two systemd-notify at once');
    order.push(`start ${args[0]}`);
    await new Promise((r) => setTimeout(r, args[0] === 'READY=1' ? 50 : 1));
    order.push(`end ${args[0]}`);
    running--;
    return OK;
  };
  const n = createNotifier({ env: { NOTIFY_SOCKET: SOCKET }, log: silentLogger(), runner });
  await Promise.all([n.ready(), n.watchdog(), n.stopping()]);
  assert.deepEqual(order, ['start READY=1', 'end READY=1', 'start WATCHDOG=1', 'end WATCHDOG=1', 'start STOPPING=1', 'end STOPPING=1']);
});

test('a WATCHDOG=1 asked for while one is still queued is dropped; a later one goes out', async () => {
  const { calls, runner } = recordingRunner();
  const n = createNotifier({ env: { NOTIFY_SOCKET: SOCKET }, log: silentLogger(), runner });
  const [a, b] = await Promise.all([n.watchdog(), n.watchdog()]);
  assert.deepEqual([a, b], [true, false]);
  assert.equal(await n.watchdog(), true);
  assert.equal(calls.length, 2);
});

test('a failed notification resolves false and the next one still goes out (never thrown at the caller)', async () => {
  const { calls, runner } = recordingRunner((args) => (args[0]?.startsWith('STATUS') ? { code: 1, stderr: 'boom', notFound: false } : OK));
  const n = createNotifier({ env: { NOTIFY_SOCKET: SOCKET }, log: silentLogger(), runner });
  assert.equal(await n.status('x'), false);
  assert.equal(await n.ready(), true);
  const throwing = createNotifier({ env: { NOTIFY_SOCKET: SOCKET }, log: silentLogger(), runner: () => Promise.reject(new Error('spawn failed')) });
  assert.equal(await throwing.status('x'), false);
  assert.equal(await throwing.ready(), false);
  assert.equal(calls.length, 2);
});

test('STATUS text: one line, URL tokens redacted, capped', () => {
  assert.equal(statusLine('fetching\nhttps://ctl/p?token=abc\tnow'), 'fetching https://ctl/p?token=[REDACTED] now');
  const long = statusLine('x'.repeat(500));
  assert.equal(long.length, 200);
  assert.ok(long.endsWith('…'));
});

test('verify: with a watchdog requested, a missing binary / bad socket / failure throws NotifyError naming the cause', async () => {
  const env = { NOTIFY_SOCKET: SOCKET, WATCHDOG_USEC: '30000000', PATH: '/opt/bin' };
  const notFound = createNotifier({ env, log: silentLogger(), runner: async () => ({ code: null, stderr: '', notFound: true }) });
  assert.equal(notFound.watchdogMs, 30_000);
  await assert.rejects(notFound.verify(), (e: unknown) => e instanceof NotifyError && /WATCHDOG_USEC=30000000.*systemd-notify binary is not on PATH \(\/opt\/bin\)/.test(e.message));

  const failing = createNotifier({ env, log: silentLogger(), runner: async () => ({ code: 1, stderr: 'Failed to notify init system: Connection refused\n', notFound: false }) });
  await assert.rejects(failing.verify(), /systemd-notify failed \(exit 1\) sending to \/run\/systemd\/notify: Failed to notify init system: Connection refused$/);

  const relative = createNotifier({ env: { ...env, NOTIFY_SOCKET: 'notify' }, log: silentLogger(), runner: async () => OK });
  await assert.rejects(relative.verify(), /NOTIFY_SOCKET="notify" is neither an absolute path nor an abstract/);

  const unset = createNotifier({ env: { WATCHDOG_USEC: '1000000' }, log: silentLogger(), runner: async () => OK });
  await assert.rejects(unset.verify(), /NOTIFY_SOCKET is not set/);
});

test('verify: without a watchdog a failure is logged and reported as false, not thrown; success sends STATUS', async () => {
  const broken = createNotifier({ env: { NOTIFY_SOCKET: SOCKET }, log: silentLogger(), runner: async () => ({ code: null, stderr: '', notFound: true }) });
  assert.equal(await broken.verify(), false);
  const { calls, runner } = recordingRunner();
  const good = createNotifier({ env: { NOTIFY_SOCKET: '@abstract' }, log: silentLogger(), runner });
  assert.equal(await good.verify('booting'), true);
  assert.deepEqual(calls.map((c) => c.args), [['STATUS=booting']]);
});

test('watchdogUsecFromEnv: as sd_watchdog_enabled reads it', () => {
  assert.equal(watchdogUsecFromEnv({}, 42), null);
  assert.equal(watchdogUsecFromEnv({ WATCHDOG_USEC: '' }, 42), null);
  assert.equal(watchdogUsecFromEnv({ WATCHDOG_USEC: '5000000' }, 42), 5_000_000);
  assert.equal(watchdogUsecFromEnv({ WATCHDOG_USEC: '5000000', WATCHDOG_PID: '42' }, 42), 5_000_000);
  assert.equal(watchdogUsecFromEnv({ WATCHDOG_USEC: '5000000', WATCHDOG_PID: '7' }, 42), null, 'meant for another process');
  assert.throws(() => watchdogUsecFromEnv({ WATCHDOG_USEC: '30s' }, 42), /WATCHDOG_USEC="30s" is not a positive number/);
  assert.throws(() => watchdogUsecFromEnv({ WATCHDOG_USEC: '0' }, 42), NotifyError);
  assert.throws(() => watchdogUsecFromEnv({ WATCHDOG_USEC: '1', WATCHDOG_PID: 'me' }, 42), /WATCHDOG_PID="me" is not a pid/);
  assert.throws(() => createNotifier({ env: { WATCHDOG_USEC: '-5' }, log: silentLogger() }), NotifyError, 'a malformed value fails at construction');
});
