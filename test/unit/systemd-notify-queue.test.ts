/**
 * The notify queue's scheduling with a fake send: one run at a time, in order, STATUS= held
 * and coalesced so READY=1 goes out with the latest STATUS= in one run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../agent/src/log';
import { createNotifier, type NotifyRunner } from '../../agent/src/systemd/notify';
import { NotifyQueue } from '../../agent/src/systemd/notify-queue';

function fakeSend(delayMs = 0) {
  const runs: string[][] = [];
  let running = 0;
  const send = async (assignments: string[]) => {
    running++;
    assert.equal(running, 1, 'never two runs at once');
    runs.push(assignments);
    await new Promise((r) => setTimeout(r, delayMs));
    running--;
    return runs.length;
  };
  return { runs, send };
}

test('STATUS= updates before READY=1 cost no run of their own: READY=1 carries the latest in one run', async () => {
  const { runs, send } = fakeSend();
  const q = new NotifyQueue({ send, settleMs: 10_000 });
  const a = q.status('STATUS=discovering');
  const b = q.status('STATUS=fetching');
  const ready = q.message(['READY=1']);
  assert.deepEqual(await Promise.all([a, b, ready]), [1, 1, 1], 'everyone gets the result of the run that carried or replaced theirs');
  assert.deepEqual(runs, [['READY=1', 'STATUS=fetching']]);
});

test("a message with its own STATUS= replaces the held one; a STATUS= alone goes out once it has settled", async () => {
  const { runs, send } = fakeSend();
  const q = new NotifyQueue({ send, settleMs: 20 });
  void q.status('STATUS=applying firewall');
  await q.message(['READY=1', 'STATUS=ready']);
  assert.deepEqual(runs, [['READY=1', 'STATUS=ready']]);
  await q.status('STATUS=waiting for the app');
  assert.deepEqual(runs[1], ['STATUS=waiting for the app']);
});

test('while one run is in flight, queued STATUS= updates merge into the next message, in order', async () => {
  const runs: string[][] = [];
  let finish: () => void = () => undefined;
  const send = (assignments: string[]) => {
    runs.push(assignments);
    return new Promise<number>((resolve) => (finish = () => resolve(runs.length)));
  };
  const q = new NotifyQueue({ send, settleMs: 1 });
  const ready = q.message(['READY=1']); // in flight until finish()
  const settled = (ms: number) => new Promise((r) => setTimeout(r, ms));
  void q.status('STATUS=one');
  await settled(20); // settled: queued behind READY=1
  void q.status('STATUS=two');
  await settled(20);
  const wd = q.message(['WATCHDOG=1']);
  assert.deepEqual(runs, [['READY=1']]);
  finish();
  await ready;
  finish();
  await wd;
  assert.deepEqual(runs, [['READY=1'], ['WATCHDOG=1', 'STATUS=two']]);
});

test('messages keep their order; drain() sends a held STATUS= at once', async () => {
  const { runs, send } = fakeSend(5);
  const q = new NotifyQueue({ send, settleMs: 60_000 });
  void q.message(['READY=1', 'STATUS=ready']);
  void q.message(['WATCHDOG=1']);
  void q.message(['STOPPING=1']);
  void q.status('STATUS=stopped');
  await q.drain();
  assert.deepEqual(runs, [['READY=1', 'STATUS=ready'], ['WATCHDOG=1'], ['STOPPING=1'], ['STATUS=stopped']]);
});

test('notifier: the start check is not held back, and boot statuses ride along with READY=1', async () => {
  const calls: string[][] = [];
  const runner: NotifyRunner = async (_b, args) => {
    calls.push(args);
    return { code: 0, stderr: '', notFound: false };
  };
  const n = createNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify' }, log: silentLogger(), runner });
  const verified = n.verify('starting');
  void n.status('discovering payload pointer');
  void n.status('fetching payload');
  assert.equal(await verified, true);
  assert.equal(await n.ready('ready: 3 variables'), true);
  assert.deepEqual(calls, [['STATUS=starting'], ['READY=1', 'STATUS=ready: 3 variables']]);
});

test('notifier.check(): a watchdog that cannot be fed fails before anything runs', () => {
  const log = silentLogger();
  const missing = createNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '1000000', PATH: '/nonexistent' }, log });
  assert.throws(() => missing.check(), /systemd-notify binary is not on PATH \(\/nonexistent\)/);
  const unset = createNotifier({ env: { WATCHDOG_USEC: '1000000' }, log });
  assert.throws(() => unset.check(), /NOTIFY_SOCKET is not set/);
  // Without a watchdog nothing is required: check() is silent (verify() logs the problem).
  createNotifier({ env: { NOTIFY_SOCKET: 'relative', PATH: '/nonexistent' }, log }).check();
});
