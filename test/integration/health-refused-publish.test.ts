/**
 * A publish the broker refuses must not loop the agent (issue 14 §1). The controller's
 * embedded broker (aedes, MQTT 3.1.1) with its per-member ACL closes the connection on a
 * publish the ACL denies; before, the agent kept that message at the head of its outbox and
 * re-sent it on every reconnect (43 reconnects in 20 s, no health). Now: dropped after 3 lost
 * connections, counted (status and health report `refused`), logged with the topic and why,
 * and health keeps flowing. Also the embedded broker's own rule for Stratos events: allowed
 * only when the event names the member itself. Ids are dotted, Stratos style.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import mqtt from 'mqtt';
import pino from 'pino';
import { memberClientId, stratosTopic, type MemberId } from '../../agent/src/protocol/mqtt';
import { EmbeddedBroker, type BrokerLogin, type MemberAclRules } from '../../controller-stub/src/fleet';
import { makeAgent, Observer, PREFIX, waitUntil } from '../fixtures/health/agent';

const M1: MemberId = { clusterId: 'php.shop', memberId: 'php.shop.m1' };
const M2: MemberId = { clusterId: 'php.shop', memberId: 'php.shop.m2' };
const PASSWORDS: Record<string, string> = { [M1.memberId]: 'pw1', [M2.memberId]: 'pw2', admin: 'admin-pw' };
const admin = { username: 'admin', password: 'admin-pw', protocolVersion: 4 as const, clientId: 'observer' };
const authenticate = (username: string, password: string): BrokerLogin | null => {
  if (PASSWORDS[username] !== password) return null;
  if (username === 'admin') return { role: 'superuser' };
  return { role: 'member', ...(username === M1.memberId ? M1 : M2) };
};
const stratosVars = (id: MemberId) => new Map([['CLUSTER_ID', id.clusterId], ['MEMBER_ID', id.memberId], ['SERVICE_NAME', 'php']]);

async function withBroker(acl: MemberAclRules, run: (b: EmbeddedBroker) => Promise<void>): Promise<void> {
  const b = await EmbeddedBroker.start({ port: 0, authenticate, acl });
  try {
    await run(b);
  } finally {
    await b.close();
  }
}

function logLines(): { lines: Array<{ level: number; msg: string; topic?: string }>; log: pino.Logger } {
  const lines: Array<{ level: number; msg: string; topic?: string }> = [];
  return { lines, log: pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }) };
}

describe('refused publishes on the embedded broker', { timeout: 60_000 }, () => {
  test('Stratos events the ACL denies: dropped after 3 lost connections, counted, logged; health keeps flowing', async () => {
    await withBroker({ topicPrefix: PREFIX }, async (b) => {
      const { lines, log } = logLines();
      const { reporter, connection, topics } = makeAgent({
        urls: [b.url], cluster: M1.clusterId, member: M1.memberId, password: 'pw1', protocolVersion: 4, intervalS: 1,
        stratosEvents: true, vars: stratosVars(M1), baseMs: 50, capMs: 200, log,
      });
      const live = await Observer.connect(b.url, [`${PREFIX}/#`, 'instance/#'], admin);
      let ups = 0;
      connection.on('up', () => ups++);
      try {
        reporter.start();
        await waitUntil('connected', () => connection.connected);
        reporter.publishEvent('started');
        reporter.publishEvent('activated');
        await waitUntil('both Stratos events dropped as refused', () => reporter.status().refused.event === 2, 20_000);
        // Health flows again (on the connection after the last loss), and says what was refused.
        const report = await live.waitFor('a health report counting the refusals', (m) => m.topic === topics.health && (m.json?.refused as { event?: number } | undefined)?.event === 2, 5_000);
        const upsThen = ups;
        assert.ok(upsThen <= 6, `${upsThen} connections: the refused messages are not re-sent for ever`);
        assert.deepEqual(report.json?.refused, { health: 0, event: 2 });
        await live.waitFor('the next one', (m) => m.topic === topics.health && (m.json?.seq as number) > (report.json?.seq as number), 5_000);
        assert.equal(ups, upsThen, 'no more reconnects once they are gone');
        assert.equal(reporter.status().buffered, 0);
        // Our own events arrived (at least once), the Stratos ones never.
        assert.ok(live.on(topics.event).some((m) => m.json?.type === 'started') && live.on(topics.event).some((m) => m.json?.type === 'activated'));
        assert.equal(live.seen.filter((m) => m.topic.startsWith('instance/')).length, 0);
        const dropped = lines.filter((l) => l.level === 50 && /dropped after the connection was lost 3 times/.test(l.msg));
        assert.deepEqual(dropped.map((l) => l.topic).sort(), [stratosTopic('InstanceActivatedEvent'), stratosTopic('InstanceStartedEvent')]);
        assert.match(dropped[0]!.msg, /the broker probably refuses it \(MQTT 3\.1\.1 brokers such as aedes close the connection on a publish their ACL denies/);
        assert.match(reporter.status().lastError ?? connection.snapshot().lastError ?? '', /instance\/status\/Instance(Started|Activated)Event/);
      } finally {
        await reporter.stop({ timeoutMs: 1_000 });
        await live.close();
      }
    });
  });

  test('with stratosEvents the embedded broker takes a member\'s Stratos events about itself, and no forged one', async () => {
    await withBroker({ topicPrefix: PREFIX, stratosEvents: true }, async (b) => {
      const { reporter, connection } = makeAgent({
        urls: [b.url], cluster: M1.clusterId, member: M1.memberId, password: 'pw1', protocolVersion: 4, intervalS: 1, stratosEvents: true, vars: stratosVars(M1),
      });
      const live = await Observer.connect(b.url, ['instance/#'], admin);
      try {
        reporter.start();
        await waitUntil('connected', () => connection.connected);
        reporter.publishEvent('started');
        const ev = await live.waitFor('InstanceStartedEvent', (m) => m.topic === stratosTopic('InstanceStartedEvent'));
        assert.equal(ev.json?.memberId, M1.memberId);
        assert.equal(ev.json?.clusterId, M1.clusterId);
        assert.deepEqual(reporter.status().refused, { health: 0, event: 0 });
        // m2 speaking for m1: aedes closes its connection and nothing reaches the subscriber.
        const liar = await mqtt.connectAsync(b.url, { username: M2.memberId, password: 'pw2', clientId: memberClientId(M2), protocolVersion: 4, reconnectPeriod: 0 });
        const closed = new Promise<void>((resolve) => liar.once('close', () => resolve()));
        liar.publish(stratosTopic('InstanceActivatedEvent'), JSON.stringify({ serviceName: 'php', clusterId: M1.clusterId, memberId: M1.memberId }), { qos: 1 });
        await closed;
        liar.end(true);
        // …while m2 about itself is fine.
        const honest = await mqtt.connectAsync(b.url, { username: M2.memberId, password: 'pw2', clientId: memberClientId(M2), protocolVersion: 4, reconnectPeriod: 0 });
        await honest.publishAsync(stratosTopic('InstanceActivatedEvent'), JSON.stringify({ serviceName: 'php', clusterId: M2.clusterId, memberId: M2.memberId }), { qos: 1 });
        await honest.endAsync();
        await live.waitFor('m2 about itself', (m) => m.topic === stratosTopic('InstanceActivatedEvent') && m.json?.memberId === M2.memberId);
        assert.equal(live.seen.filter((m) => m.topic === stratosTopic('InstanceActivatedEvent') && m.json?.memberId === M1.memberId).length, 0, 'the forged event never arrived');
      } finally {
        await reporter.stop({ timeoutMs: 1_000 });
        await live.close();
      }
    });
  });
});
