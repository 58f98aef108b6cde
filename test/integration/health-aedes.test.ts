/**
 * The health components against aedes in-process (MQTT 3.1.1, the controller stub's default
 * broker): retained birth, the will of a hung agent within 1.5 × keepalive (aedes keeps ms
 * timers), a late will corrected, bad credentials reported and not hammered.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseStatusMessage } from '../../agent/src/protocol/mqtt';
import { assertQuietStops, makeAgent, Observer, PREFIX, sleep, stateRoot, STATE_ROOT_ENV, waitUntil } from '../fixtures/health/agent';
import { AedesBroker } from '../fixtures/health/aedes';

const USERS = { admin: 'admin-pw', m1: 'm1-pw', m2: 'm2-pw', m3: 'm3-pw' };
const admin = { username: 'admin', password: USERS.admin, protocolVersion: 4 as const, clientId: 'admin' };
const status = (s: { raw: string; topic: string }) => parseStatusMessage(s.topic, s.raw);

describe('health over aedes', { timeout: 60_000 }, () => {
  let b: AedesBroker;
  before(async () => {
    b = await AedesBroker.start(USERS);
  });
  after(async () => {
    await b.close();
  });

  test('a clean stop logs nothing above info (3.1.1: aedes answered the late writes with "write after end")', async () => {
    await assertQuietStops({ urls: [b.url], member: 'm3', password: USERS.m3, protocolVersion: 4 }, admin);
  });

  test('birth is retained and seen by a fresh subscriber; health flows (3.1.1)', async () => {
    const { reporter, connection, topics } = makeAgent({ urls: [b.url], member: 'm1', password: USERS.m1, protocolVersion: 4, intervalS: 1 });
    const live = await Observer.connect(b.url, [`${PREFIX}/#`], admin);
    try {
      reporter.start();
      await waitUntil('connected', () => connection.connected);
      await live.waitFor('health', (m) => m.topic === topics.health, 3_000);
      const fresh = await Observer.connect(b.url, [topics.status], { ...admin, clientId: 'admin-fresh' });
      const retained = await fresh.waitFor('retained status', () => true);
      await fresh.close();
      assert.equal(retained.retain, true);
      assert.equal(status(retained)?.state, 'online');
      assert.equal(status(retained)?.session, connection.snapshot().session);
    } finally {
      await reporter.stop({ timeoutMs: 1_000 });
      await live.close();
    }
  });

  test('a hung agent (SIGSTOP) → offline from the will within 1.5 × keepalive of its last packet', async () => {
    const keepaliveS = 2;
    const setup = { urls: [b.url], member: 'm2', password: USERS.m2, protocolVersion: 4, keepaliveS, intervalS: 1 };
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '../fixtures/health/agent-child.ts'), JSON.stringify(setup)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, [STATE_ROOT_ENV]: stateRoot } });
    const live = await Observer.connect(b.url, [`${PREFIX}/c1/m2/#`], admin);
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const session = Number((await waitUntil('child UP', () => /UP (\d+)/.exec(out), 15_000))[1]);
      await live.waitFor('health', (m) => m.topic.endsWith('/health'), 3_000);
      child.kill('SIGSTOP');
      const lastPacketAt = Math.max(...live.seen.filter((m) => m.topic.endsWith('/health')).map((m) => m.at));
      const will = await live.waitFor('will', (m) => m.topic.endsWith('/status') && status(m)?.state === 'offline', keepaliveS * 1500 + 3_000);
      const since = will.at - lastPacketAt;
      assert.equal(status(will)?.session, session);
      assert.equal(status(will)?.cause, 'lwt');
      assert.ok(since >= keepaliveS * 1500 - 100 && since <= keepaliveS * 1500 + 250, `will ${since} ms after the last packet`);
    } finally {
      child.kill('SIGKILL');
      await live.close();
    }
  });

  test('an old session\'s late will is overwritten by a new birth', async () => {
    const { reporter, connection, topics } = makeAgent({ urls: [b.url], member: 'm3', password: USERS.m3, protocolVersion: 4, intervalS: 30 });
    const live = await Observer.connect(b.url, [topics.status], admin);
    try {
      reporter.start();
      await waitUntil('connected', () => connection.connected);
      const session = connection.snapshot().session as number;
      await live.waitFor('birth', (m) => status(m)?.state === 'online');
      const n = live.seen.length;
      await live.client.publishAsync(topics.status, JSON.stringify({ v: 1, state: 'offline', session: session - 5, ts: Date.now(), cause: 'lwt' }), { qos: 1, retain: true });
      await live.waitFor('re-published birth', (m) => live.seen.indexOf(m) > n && status(m)?.state === 'online' && status(m)?.session === session);
      // A newer session's offline is NOT fought (that would be a second agent with our id).
      const m = live.seen.length;
      await live.client.publishAsync(topics.status, JSON.stringify({ v: 1, state: 'offline', session: session + 1, ts: Date.now(), cause: 'shutdown' }), { qos: 1, retain: true });
      await sleep(500);
      assert.equal(live.seen.slice(m).filter((x) => status(x)?.state === 'online').length, 0);
    } finally {
      await reporter.stop({ readyToShutdown: false, timeoutMs: 1_000 });
      await live.close();
    }
  });

  test('bad credentials: clear error with the 3.1.1 return code, one CONNECT, not a loop', async () => {
    const { reporter, connection } = makeAgent({ urls: [b.url], member: 'm1', username: 'm1', password: 'nope', protocolVersion: 4, intervalS: 30, baseMs: 100, capMs: 1_000 });
    b.connects.delete('m1');
    try {
      reporter.start();
      await waitUntil('refused', () => connection.snapshot().refused);
      assert.match(connection.snapshot().lastError ?? '', new RegExp(`^broker ${b.url.replace(/\./g, '\\.')}: refused the connection: return code 4 bad username or password \\(user "m1", client id "m1"\\)$`));
      await sleep(2_000);
      assert.equal(b.connects.get('m1'), 1, 'one CONNECT in 2 s (an ordinary backoff would have made ~6)');
    } finally {
      await reporter.stop({ readyToShutdown: false, timeoutMs: 500 });
    }
  });
});
