import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { abortableSleep } from '../../agent/src/io/abortable-sleep';

/** Pending (ref'd) timers of this process: a wait that leaked its timer shows up here. */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const abortListeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

// A wait this long would outlast the test's own timeout: if an abort did not end it, the test
// fails by timing out instead of passing late.
const LONG_MS = 60_000;
const LIMIT = { timeout: 10_000 };

test('runs to completion: resolves true, leaves no listener', async () => {
  assert.equal(await abortableSleep(5), true);
  const ac = new AbortController();
  assert.equal(await abortableSleep(5, ac.signal), true);
  assert.equal(abortListeners(ac.signal), 0, 'the abort listener is removed once the wait is over');
  assert.equal(ac.signal.aborted, false);
});

test('aborted before: resolves false at once, starts no timer', LIMIT, async () => {
  const ac = new AbortController();
  ac.abort();
  const before = timers();
  const waiting = abortableSleep(LONG_MS, ac.signal);
  assert.equal(timers(), before, 'no timer started');
  assert.equal(abortListeners(ac.signal), 0);
  assert.equal(await waiting, false);
});

test('aborted during: resolves false, clears its timer and listener', LIMIT, async () => {
  const ac = new AbortController();
  const before = timers();
  const waiting = abortableSleep(LONG_MS, ac.signal);
  assert.equal(timers(), before + 1, 'the wait holds one timer (so the checks below can see a leak)');
  assert.equal(abortListeners(ac.signal), 1);
  setImmediate(() => ac.abort());
  assert.equal(await waiting, false);
  assert.equal(timers(), before, 'no timer left behind');
  assert.equal(abortListeners(ac.signal), 0);
});

test('never rejects, whatever the abort reason', LIMIT, async () => {
  const ac = new AbortController();
  const waiting = abortableSleep(LONG_MS, ac.signal);
  ac.abort(new Error('shutting down'));
  assert.equal(await waiting, false);
});
