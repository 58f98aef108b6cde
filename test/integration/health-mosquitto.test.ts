/**
 * The health components against a real mosquitto (own config, password file, ACL; spawned per
 * test on free ports): birth and retained status, the will after kill -9 and after a hung
 * process, a late will of an old session, ACL denial, bad credentials not hammered.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { PublishRefusedError } from '../../agent/src/health/connection';
import { parseStatusMessage } from '../../agent/src/protocol/mqtt';
import { assertQuietStops, makeAgent, Observer, PREFIX, sleep, stateRoot, STATE_ROOT_ENV, waitUntil } from '../fixtures/health/agent';
import { Mosquitto } from '../fixtures/health/mosquitto';
import { requireCommands } from '../helpers/env';

const USERS = { admin: 'admin-pw', m1: 'm1-pw', m2: 'm2-pw', m3: 'm3-pw', m4: 'm4-pw' };
const status = (s: { raw: string; topic: string }) => parseStatusMessage(s.topic, s.raw);

describe('health over mosquitto', { timeout: 60_000 }, () => {
  let broker: Mosquitto | null = null;
  const admin = { username: 'admin', password: USERS.admin };

  after(async () => {
    await broker?.close();
  });

  async function ensureBroker(t: import('node:test').TestContext): Promise<Mosquitto | null> {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return null;
    broker ??= await Mosquitto.start({ users: USERS });
    return broker;
  }

  test('a clean stop logs nothing above info (no "write after end" error at every shutdown)', async (t) => {
    const b = await ensureBroker(t);
    if (!b) return;
    await assertQuietStops({ urls: [b.url], member: 'm4', password: USERS.m4 }, admin);
  });

  test('birth is retained: a fresh subscriber sees online with the session; health and events flow', async (t) => {
    const b = await ensureBroker(t);
    if (!b) return;
    const { reporter, connection, topics } = makeAgent({ urls: [b.url], member: 'm1', password: USERS.m1, intervalS: 1 });
    const live = await Observer.connect(b.url, [`${PREFIX}/#`], admin);
    try {
      reporter.start();
      await waitUntil('agent connected', () => connection.connected);
      reporter.publishEvent('started');
      const health = await live.waitFor('a health report', (m) => m.topic === topics.health, 4_000);
      assert.equal(health.json?.session, connection.snapshot().session);
      assert.equal(typeof health.json?.seq, 'number');
      assert.ok(Array.isArray(health.json?.listening));
      await live.waitFor('started event', (m) => m.topic === topics.event && m.json?.type === 'started');

      const fresh = await Observer.connect(b.url, [topics.status], admin);
      const retained = await fresh.waitFor('retained status', () => true);
      await fresh.close();
      assert.equal(retained.retain, true);
      const st = status(retained);
      assert.equal(st?.state, 'online');
      assert.equal(st?.session, connection.snapshot().session);
      assert.equal(st?.intervalS, 1);
      assert.ok(reporter.status().lastReportAt !== null, 'status() shows the last report');

      await reporter.stop();
      const last = await live.waitFor('offline on graceful stop', (m) => m.topic === topics.status && status(m)?.state === 'offline');
      assert.equal(status(last)?.cause, 'shutdown');
      const events = live.on(topics.event).map((m) => m.json?.type);
      assert.deepEqual(events, ['started', 'ready-to-shutdown'], 'ready-to-shutdown is published before offline');
      assert.ok(live.seen.indexOf(last) > live.seen.findIndex((m) => m.json?.type === 'ready-to-shutdown'));
    } finally {
      await reporter.stop({ readyToShutdown: false, timeoutMs: 500 });
      await live.close();
    }
  });

  for (const how of ['SIGKILL', 'SIGSTOP'] as const) {
    test(how === 'SIGKILL' ? 'kill -9 of the agent process → offline from the will within 1.5 × keepalive' : 'a hung agent (SIGSTOP) → offline from the will once keepalive expires', async (t) => {
      const b = await ensureBroker(t);
      if (!b) return;
      const keepaliveS = 2;
      const member = how === 'SIGKILL' ? 'm2' : 'm3';
      const setup = { urls: [b.url], member, password: USERS[member], keepaliveS, intervalS: 1 };
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '../fixtures/health/agent-child.ts'), JSON.stringify(setup)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, [STATE_ROOT_ENV]: stateRoot } });
      const live = await Observer.connect(b.url, [`${PREFIX}/c1/${member}/#`], admin);
      try {
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        const session = Number((await waitUntil('child UP', () => /UP (\d+)/.exec(out), 15_000))[1]);
        await live.waitFor('birth', (m) => m.topic.endsWith('/status') && status(m)?.state === 'online' && status(m)?.session === session);
        await live.waitFor('a health report', (m) => m.topic.endsWith('/health'), 3_000);
        const killedAt = Date.now();
        child.kill(how);
        // The broker's keepalive clock starts at the last packet it got from the agent.
        const lastPacketAt = Math.max(...live.seen.filter((m) => m.topic.endsWith('/health')).map((m) => m.at));
        const will = await live.waitFor('will', (m) => m.topic.endsWith('/status') && status(m)?.state === 'offline', keepaliveS * 1500 + 8_000);
        assert.equal(status(will)?.cause, 'lwt');
        assert.equal(status(will)?.session, session, 'the will carries the session of the dead connection');
        if (how === 'SIGKILL') {
          // The kernel closes the socket: the broker sends the will at once.
          assert.ok(will.at - killedAt <= keepaliveS * 1500, `will ${will.at - killedAt} ms after kill -9`);
        } else {
          // A hung process keeps its socket: only keepalive expiry (1.5 × keepalive after the
          // last packet) declares it dead. mosquitto 2.0 sweeps keepalives only every ~6 s on a
          // whole-second clock (keepalive.c: `last_keepalive_check + 5 < now`), so it may be up
          // to ~7 s late; aedes (ms timers) is held to 1.5 × keepalive in health-aedes.test.ts.
          const sinceLast = will.at - lastPacketAt;
          assert.ok(sinceLast >= keepaliveS * 1500 - 100, `will ${sinceLast} ms after the last packet: too early for a keepalive expiry`);
          assert.ok(sinceLast <= keepaliveS * 1500 + 7_500, `will ${sinceLast} ms after the last packet`);
        }
      } finally {
        child.kill('SIGKILL');
        await live.close();
      }
    });
  }

  test('an old session\'s late will does not leave the member offline', async (t) => {
    const b = await ensureBroker(t);
    if (!b) return;
    const { reporter, connection, topics } = makeAgent({ urls: [b.url], member: 'm1', password: USERS.m1, intervalS: 30 });
    const live = await Observer.connect(b.url, [topics.status], admin);
    try {
      reporter.start();
      await waitUntil('agent connected', () => connection.connected);
      const session = connection.snapshot().session as number;
      await live.waitFor('birth', (m) => status(m)?.session === session && status(m)?.state === 'online');
      const lateWill = JSON.stringify({ v: 1, state: 'offline', session: session - 1, ts: Date.now(), cause: 'lwt' });
      const before = live.seen.length;
      await live.client.publishAsync(topics.status, lateWill, { qos: 1, retain: true });
      await live.waitFor('birth re-published', (m) => live.seen.indexOf(m) > before && status(m)?.state === 'online' && status(m)?.session === session);
      await sleep(200);
      const fresh = await Observer.connect(b.url, [topics.status], admin);
      const retained = await fresh.waitFor('retained status', () => true);
      await fresh.close();
      assert.equal(status(retained)?.state, 'online', 'the retained status is online again');
    } finally {
      await reporter.stop({ timeoutMs: 1_000 });
      await live.close();
    }
  });

  test('ACL denial: a publish outside the member\'s topics is refused with a clear error; the rest still flows', async (t) => {
    const b = await ensureBroker(t);
    if (!b) return;
    const vars = new Map([['SERVICE_NAME', 'php'], ['CLUSTER_ID', 'c1'], ['MEMBER_ID', 'm4']]);
    const { reporter, connection, topics } = makeAgent({ urls: [b.url], member: 'm4', password: USERS.m4, intervalS: 30, stratosEvents: true, vars });
    const live = await Observer.connect(b.url, [`${PREFIX}/#`, 'instance/#'], admin);
    try {
      reporter.start();
      await waitUntil('agent connected', () => connection.connected);
      await assert.rejects(connection.publish(`${PREFIX}/c1/m1/event`, '{}', 1), (err: Error) => {
        assert.ok(err instanceof PublishRefusedError);
        assert.match(err.message, /broker mqtt:\/\/127\.0\.0\.1:\d+ refused the publish to "cartridge\/v1\/c1\/m1\/event": reason code 0x87 not authorized/);
        return true;
      });
      // Stratos' topic is outside this member's ACL: refused, counted, not retried, and the event behind it still goes.
      reporter.publishEvent('started');
      reporter.publishEvent('activated');
      await live.waitFor('activated event', (m) => m.topic === topics.event && m.json?.type === 'activated');
      await waitUntil('refusals counted', () => reporter.status().refused.event === 2);
      assert.match(reporter.status().lastError ?? '', /refused the publish to "instance\/status\/Instance(Started|Activated)Event": reason code 0x87 not authorized/);
      assert.equal(reporter.status().buffered, 0, 'refused messages do not block the buffer');
      assert.equal(live.seen.filter((m) => m.topic.startsWith('instance/')).length, 0);
    } finally {
      await reporter.stop({ timeoutMs: 1_000 });
      await live.close();
    }
  });

  test('bad credentials: a clear error naming broker and reason, and no tight reconnect loop', async (t) => {
    const b = await ensureBroker(t);
    if (!b) return;
    const { reporter, connection } = makeAgent({ urls: [b.url], member: 'm1', password: 'wrong', intervalS: 30, baseMs: 100, capMs: 1_000 });
    const baseline = b.count(/New connection from 127\.0\.0\.1/);
    try {
      reporter.start();
      await waitUntil('refusal', () => connection.snapshot().refused);
      const snap = connection.snapshot();
      assert.match(snap.lastError ?? '', new RegExp(`broker ${b.url.replace(/\./g, '\\.')}: refused the connection: reason code 0x8[67] (bad user name or password|not authorized) \\(user "m1"`));
      assert.ok((snap.nextAttemptAt ?? 0) - Date.now() >= 4_000, 'next attempt is far away (≥ 5 × cap)');
      await sleep(2_000);
      const tries = b.count(/New connection from 127\.0\.0\.1/) - baseline;
      // With the 100 ms → 1 s backoff of ordinary failures there would have been ~6 attempts by now.
      assert.equal(tries, 1, `connection attempts in 2 s: ${tries}\n${b.log.split('\n').slice(-20).join('\n')}`);
      assert.equal(connection.connected, false, 'never got in');
    } finally {
      await reporter.stop({ readyToShutdown: false, timeoutMs: 500 });
    }
  });
});
