/**
 * Broker outage: a real mosquitto is stopped and started again on the same port (persistence
 * off, so its retained status and sessions are gone). The agent keeps reporting into its
 * bounded buffer, re-publishes its birth on reconnect, and delivers every QoS 1 event made
 * during the outage. A gated relay in front of the broker lets the test re-subscribe its
 * observer before the agent may reconnect (otherwise the flush could beat the observer).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStatusMessage } from '../../agent/src/protocol/mqtt';
import { makeAgent, Observer, PREFIX, waitUntil } from '../fixtures/health/agent';
import { GatedRelay, Mosquitto } from '../fixtures/health/mosquitto';
import { requireCommands } from '../helpers/env';

test('broker stopped and restarted mid-run: birth again, health resumes, no event lost, buffer bounded', { timeout: 60_000 }, async (t) => {
  if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return;
  const users = { admin: 'admin-pw', m1: 'm1-pw' };
  const admin = { username: 'admin', password: users.admin };
  const broker = await Mosquitto.start({ users });
  const relay = await GatedRelay.start(broker.port);
  const capacity = 10;
  const { reporter, connection, topics } = makeAgent({ urls: [relay.url], member: 'm1', password: users.m1, intervalS: 1, bufferMessages: capacity, baseMs: 100, capMs: 400 });
  let live = await Observer.connect(broker.url, [`${PREFIX}/#`], admin);
  try {
    reporter.start();
    await waitUntil('connected', () => connection.connected);
    const firstSession = connection.snapshot().session as number;
    const healthBefore = await live.waitFor('health before the outage', (m) => m.topic === topics.health, 3_000);

    relay.setOpen(false);
    await live.close();
    await broker.stop();
    await waitUntil('agent notices the outage', () => !connection.connected, 5_000);

    const reasons = [1, 2, 3, 4, 5].map((i) => `outage-${i}`);
    for (const r of reasons) reporter.publishEvent('maintenance', r);
    for (let i = 0; i < 12; i++) await reporter.reportNow();
    const during = reporter.status();
    assert.ok(during.buffered <= capacity, `buffer bounded: ${during.buffered} > ${capacity}`);
    assert.equal(during.dropped.event, 0, 'events are kept before health');
    assert.ok(during.dropped.health >= 7, `oldest health reports dropped and counted (${during.dropped.health})`);
    assert.equal(during.connected, false);

    await broker.start();
    live = await Observer.connect(broker.url, [`${PREFIX}/#`], admin);
    relay.setOpen(true);

    const birth = await live.waitFor('birth after restart', (m) => m.topic === topics.status && parseStatusMessage(m.topic, m.raw)?.state === 'online', 5_000);
    assert.ok((parseStatusMessage(birth.topic, birth.raw)?.session ?? 0) > firstSession, 'the new connection has a newer session');
    assert.equal(birth.retain, false, 'delivered live (the observer was subscribed first)');

    await waitUntil('all outage events', () => live.on(topics.event).filter((m) => m.json?.type === 'maintenance').length >= reasons.length, 5_000);
    const got = live.on(topics.event).filter((m) => m.json?.type === 'maintenance').map((m) => m.json?.reason);
    assert.deepEqual(got, reasons, 'every QoS 1 event of the outage, in order, once');

    const resumed = await live.waitFor('health reporting the drops', (m) => m.topic === topics.health && Number((m.json?.dropped as { health?: number } | undefined)?.health) >= 7, 5_000);
    assert.ok(Number(resumed.json?.seq) > Number(healthBefore.json?.seq));
    await waitUntil('buffer flushed', () => reporter.status().buffered === 0, 3_000);
    const fresh = await Observer.connect(broker.url, [topics.status], admin);
    const retained = await fresh.waitFor('retained birth', () => true);
    await fresh.close();
    assert.equal(parseStatusMessage(retained.topic, retained.raw)?.state, 'online');
  } finally {
    await reporter.stop({ readyToShutdown: false, timeoutMs: 1_000 });
    await live.close();
    await relay.close();
    await broker.close();
  }
});
