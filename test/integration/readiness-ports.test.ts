/**
 * App readiness against real TCP listeners on the loopback: ports that open late, a port
 * that never opens, an app listening on ::1 only, cancellation, and PORTS parsing.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { PayloadError } from '../../agent/src/errors';
import { readinessPorts, waitForPorts } from '../../agent/src/lifecycle/readiness';
import { silentLogger } from '../../agent/src/log';
import { requireFile } from '../helpers/env';
import { closedPort } from '../helpers/net';

async function listen(t: TestContext, port: number, host = '127.0.0.1'): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  t.after(() => server.close());
  return server;
}

function ipv6LoopbackWorks(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

test('ports that start listening later → activated once all of them accept', async (t) => {
  const [a, b] = [await closedPort(), await closedPort()];
  setTimeout(() => void listen(t, a), 300);
  setTimeout(() => void listen(t, b), 700);
  const waiting: number[][] = [];
  const r = await waitForPorts({ ports: [a, b], intervalMs: 100, timeoutMs: 10_000, log: silentLogger(), onWaiting: (m) => waiting.push(m) });
  assert.equal(r.outcome, 'activated');
  assert.deepEqual(r.ports, [a, b]);
  assert.ok(r.elapsedMs >= 650 && r.elapsedMs < 3_000, `activated after ${r.elapsedMs} ms`);
  assert.deepEqual(waiting[0], [a, b], 'both missing at first');
  assert.deepEqual(waiting.at(-1), [b], 'only the late one missing at the end');
});

test('a port that never opens → timeout naming it (the open one is not named)', async (t) => {
  const open = await closedPort();
  await listen(t, open);
  const never = await closedPort();
  const r = await waitForPorts({ ports: [open, never], intervalMs: 100, timeoutMs: 600, log: silentLogger() });
  assert.equal(r.outcome, 'timeout');
  assert.ok(r.outcome === 'timeout' && r.missing.length === 1 && r.missing[0] === never, JSON.stringify(r));
  assert.ok(r.elapsedMs >= 550 && r.elapsedMs < 2_000, `gave up after ${r.elapsedMs} ms`);
});

test('an app listening on ::1 only counts as ready (both loopbacks are tried)', async (t) => {
  // Skips when the host has no ::1 (fails under CI, which has one).
  if (!requireFile(t, (await ipv6LoopbackWorks()) ? '::1' : null, 'no IPv6 loopback (::1) on this host')) return;
  const port = await closedPort();
  await listen(t, port, '::1');
  const r = await waitForPorts({ ports: [port], intervalMs: 100, timeoutMs: 2_000, log: silentLogger() });
  assert.equal(r.outcome, 'activated');
});

test('no PORTS → activated at once, nothing probed', async () => {
  let probed = 0;
  const r = await waitForPorts({ ports: [], intervalMs: 100, timeoutMs: 1_000, log: silentLogger(), probe: async () => (probed++, false) });
  assert.deepEqual(r, { outcome: 'activated', ports: [], elapsedMs: 0 });
  assert.equal(probed, 0);
});

test('an abort cancels the wait promptly, naming what was still missing', async () => {
  const port = await closedPort();
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const started = Date.now();
  const r = await waitForPorts({ ports: [port], intervalMs: 5_000, timeoutMs: 60_000, log: silentLogger(), signal: ac.signal });
  assert.equal(r.outcome, 'cancelled');
  assert.ok(r.outcome === 'cancelled' && r.missing[0] === port);
  assert.ok(Date.now() - started < 1_000, 'did not wait out the interval');
});

test('readinessPorts: PORTS parsed as the firewall parses it, deduplicated and sorted; bad entries name PORTS', () => {
  assert.deepEqual(readinessPorts(new Map([['PORTS', '443|80||8080|80']])), [80, 443, 8080]);
  assert.deepEqual(readinessPorts(new Map()), []);
  assert.deepEqual(readinessPorts(new Map([['PORTS', '']])), []);
  assert.throws(() => readinessPorts(new Map([['PORTS', '80|http']])), (e: unknown) => e instanceof PayloadError && /PORTS/.test(e.message) && /http/.test(e.message));
  assert.throws(() => readinessPorts(new Map([['PORTS', '70000']])), PayloadError);
});
