/**
 * Watchdog decisions with an injected clock: ping only while the main loop beats.
 * The real timing against a fake NOTIFY_SOCKET: test/integration/systemd-notify.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../agent/src/log';
import { createWatchdog, decidePing, pingPeriodMs, Watchdog } from '../../agent/src/systemd/watchdog';

function fakes(intervalMs = 10_000, staleAfterMs?: number) {
  let now = 1_000;
  let pings = 0;
  const notifier = {
    watchdog: async () => {
      pings++;
      return true;
    },
  };
  const wd = new Watchdog({ notifier, intervalMs, log: silentLogger(), clock: () => now, ...(staleAfterMs === undefined ? {} : { staleAfterMs }) });
  return {
    wd,
    advance: (ms: number) => (now += ms),
    pings: () => pings,
  };
}

test('decidePing: ping while the last heartbeat is at most staleAfter old', () => {
  assert.deepEqual(decidePing(5_000, 5_000, 1_000), { ping: true });
  assert.deepEqual(decidePing(6_000, 5_000, 1_000), { ping: true });
  assert.deepEqual(decidePing(6_001, 5_000, 1_000), { ping: false, heartbeatAgeMs: 1_001 });
});

test('pingPeriodMs: half the interval (sd_watchdog_enabled(3)), at least 10 ms', () => {
  assert.equal(pingPeriodMs(30_000), 15_000);
  assert.equal(pingPeriodMs(301), 150);
  assert.equal(pingPeriodMs(5), 10);
});

test('ticks ping while the main loop beats, stop when it stops, resume when it beats again', () => {
  const { wd, advance, pings } = fakes(10_000);
  assert.equal(wd.periodMs, 5_000);
  assert.equal(wd.staleAfterMs, 10_000);
  for (let i = 0; i < 4; i++) {
    advance(5_000);
    wd.heartbeat();
    assert.equal(wd.tick(), true);
  }
  assert.equal(pings(), 4);
  // The loop hangs: still within staleAfter at +5 s and +10 s, withheld after.
  advance(5_000);
  assert.equal(wd.tick(), true);
  advance(5_000);
  assert.equal(wd.tick(), true);
  advance(5_000);
  assert.equal(wd.tick(), false);
  assert.equal(wd.snapshot().stalled, true);
  assert.equal(wd.snapshot().heartbeatAgeMs, 15_000);
  advance(5_000);
  assert.equal(wd.tick(), false);
  assert.equal(pings(), 6);
  wd.heartbeat();
  assert.equal(wd.snapshot().stalled, false);
  assert.equal(wd.tick(), true);
  assert.equal(pings(), 7);
});

test('a stricter staleAfter withholds sooner', () => {
  const { wd, advance } = fakes(10_000, 2_000);
  advance(2_000);
  assert.equal(wd.tick(), true);
  advance(1);
  assert.equal(wd.tick(), false);
});

test('start() pings at once and on a timer; stop() ends the timer', async () => {
  let pings = 0;
  const wd = new Watchdog({ notifier: { watchdog: async () => (pings++, true) }, intervalMs: 40, log: silentLogger() });
  const beat = setInterval(() => wd.heartbeat(), 5);
  wd.start();
  assert.equal(pings, 1);
  assert.equal(wd.running, true);
  await new Promise((r) => setTimeout(r, 130));
  wd.stop();
  clearInterval(beat);
  const sent = pings;
  assert.ok(sent >= 4, `expected ~1 + 130/20 pings, got ${sent}`);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(pings, sent, 'no pings after stop()');
  assert.equal(wd.running, false);
});

test('createWatchdog: none unless systemd asked for one', () => {
  const notifier = { watchdog: async () => true, watchdogMs: null };
  assert.equal(createWatchdog(notifier, silentLogger()), null);
  const wd = createWatchdog({ ...notifier, watchdogMs: 30_000 }, silentLogger());
  assert.ok(wd instanceof Watchdog);
  assert.equal(wd.periodMs, 15_000);
  assert.throws(() => new Watchdog({ notifier, intervalMs: 0, log: silentLogger() }), /must be positive/);
});
