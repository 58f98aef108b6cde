/**
 * Ids on the wire, on real brokers (issue 14 §1): agents whose cluster and member ids hold
 * dots, spaces, slashes and non-ASCII report through mosquitto 2.0, the embedded aedes, NATS
 * 2.9 (MQTT over JetStream) and RabbitMQ 3.10 (MQTT plugin); an independent mqtt.js client
 * receives every status, health report and event on topics that decode to exactly those ids,
 * and the Stratos event with the raw ids in its body; the controller's FleetTracker shows each
 * member ONLINE under its real ids. Before, `php.shop` arrived as `php/shop` on RabbitMQ (and
 * `a.b`/`x` collided with `a`/`b.x`), NATS dropped the connection at CONNECT (a dot in the
 * will topic), and `a/b` became `a_b`. One agent per broker asks for MQTT 5: mosquitto takes
 * it; aedes, NATS and RabbitMQ do not, and the agent falls back to 3.1.1 once and says so.
 * And a controller started after its members were online gets them from their retained
 * statuses: RabbitMQ 3.10 replays retained messages only to exact subscriptions, so the
 * tracker also subscribes each known member's status topic (serve: from the member store).
 * One broker per describe, started in `before` on free ports and stopped in `after`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import pino from 'pino';
import { parseMemberTopic, stratosTopic, type MemberId } from '../../agent/src/protocol/mqtt';
import { silentLogger } from '../../agent/src/log';
import { EmbeddedBroker, FleetTracker } from '../../controller-stub/src/fleet';
import { makeAgent, Observer, PREFIX, sleep, waitUntil } from '../fixtures/health/agent';
import { SimAgent } from '../fixtures/controller/fleet-sim';
import { Mosquitto } from '../fixtures/health/mosquitto';
import { Nats, NATS_SERVER } from '../fixtures/health/nats';
import { hasRabbitMq, RabbitMq, RABBITMQ_SERVER } from '../fixtures/health/rabbitmq';
import { hasCommand, requireCommands, requireFile } from '../helpers/env';

const IDS: MemberId[] = [
  { clusterId: 'php.shop', memberId: 'php.shop.m1' },
  { clusterId: 'php.shop', memberId: 'm 1' },
  { clusterId: 'a/b', memberId: 'ünï' },
  // Raw, these two collided on RabbitMQ (a.b/x and a/b.x both became a/b/x).
  { clusterId: 'a.b', memberId: 'x' },
  { clusterId: 'a', memberId: 'b.x' },
];
const key = (id: MemberId): string => JSON.stringify([id.clusterId, id.memberId]);
const AGENT = { username: 'agent', password: 'agent-pw' };
const ADMIN = { username: 'admin', password: 'admin-pw' };

interface Broker {
  url: string;
  /** Agents' login (null: anonymous). */
  agent: { username: string; password: string } | null;
  observer: { username?: string; password?: string };
  /** What the first agent gets when it asks for MQTT 5. */
  mqtt5: 'accepted' | 'falls back';
  /** Does a wildcard subscription get the retained messages (RabbitMQ 3.10: no)? */
  retainedToWildcards: boolean;
  log: () => string;
}

async function idsRoundTrip(b: Broker): Promise<void> {
  const tracker = new FleetTracker({ brokerUrl: b.url, ...b.observer, topicPrefix: PREFIX, protocolVersion: 4, log: silentLogger(), staleCheckMs: 200 });
  await tracker.start();
  const live = await Observer.connect(b.url, [`${PREFIX}/#`, 'instance/#'], { ...b.observer, protocolVersion: 4 });
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const agents = IDS.map((id, i) =>
    makeAgent({
      urls: [b.url], cluster: id.clusterId, member: id.memberId, username: b.agent?.username ?? null, password: b.agent?.password ?? null,
      protocolVersion: i === 0 ? 5 : 4, intervalS: 1, stratosEvents: true, vars: new Map([['CLUSTER_ID', id.clusterId], ['MEMBER_ID', id.memberId]]),
      ...(i === 0 ? { log } : {}),
    }),
  );
  try {
    for (const a of agents) a.reporter.start();
    await waitUntil('all agents connected', () => agents.every((a) => a.connection.connected), 20_000);
    for (const a of agents) a.reporter.publishEvent('started');
    for (const id of IDS) {
      for (const channel of ['status', 'health', 'event'] as const) {
        await live.waitFor(`${channel} of ${key(id)}`, (m) => {
          const parsed = parseMemberTopic(PREFIX, m.topic);
          return parsed?.channel === channel && parsed.clusterId === id.clusterId && parsed.memberId === id.memberId;
        }, 10_000);
      }
      await live.waitFor(`Stratos event of ${key(id)}`, (m) => m.topic === stratosTopic('InstanceStartedEvent') && m.json?.clusterId === id.clusterId && m.json?.memberId === id.memberId, 10_000);
    }
    // Everything under the prefix decodes to one of our ids: nothing arrived split or merged.
    const foreign = live.seen.filter((m) => m.topic.startsWith(`${PREFIX}/`)).filter((m) => {
      const parsed = parseMemberTopic(PREFIX, m.topic);
      return !parsed || !IDS.some((id) => id.clusterId === parsed.clusterId && id.memberId === parsed.memberId);
    });
    assert.deepEqual(foreign.map((m) => m.topic), [], 'topics that are no member of ours');
    await waitUntil('every member ONLINE with health in the fleet table', () => {
      const rows = tracker.rows();
      return IDS.every((id) => rows.some((r) => r.clusterId === id.clusterId && r.memberId === id.memberId && r.state === 'ONLINE' && r.load1 !== null && r.lastEvent === 'started'));
    }, 10_000);
    assert.deepEqual(tracker.rows().map((r) => key(r)).sort(), IDS.map(key).sort(), 'the fleet table holds exactly the real ids');
    assert.equal(tracker.metrics().malformedMessages, 0);
    // MQTT 5 asked for by the first agent.
    const first = agents[0]!.connection.snapshot();
    const fellBack = lines.filter((l) => l.level === 40 && /did not accept MQTT 5 .*trying MQTT 3\.1\.1 once/.test(l.msg));
    if (b.mqtt5 === 'accepted') {
      assert.equal(first.protocolVersion, 5);
      assert.equal(fellBack.length, 0);
    } else {
      assert.equal(first.protocolVersion, 4, 'fell back to 3.1.1');
      assert.equal(fellBack.length, 1, 'said once');
      assert.ok(lines.some((l) => l.level === 40 && /took MQTT 3\.1\.1 after refusing MQTT 5: staying on 3\.1\.1/.test(l.msg)));
    }
    for (const a of agents) assert.deepEqual(a.reporter.status().refused, { health: 0, event: 0 });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nbroker log (tail):\n${b.log().slice(-3000)}`);
  } finally {
    await Promise.all(agents.map((a) => a.reporter.stop({ timeoutMs: 1_000 })));
    await live.close();
    await tracker.stop();
  }
}

/** Members online (retained births, no health) before the controller starts: the snapshot it must get. */
async function snapshotAfterRestart(b: Broker): Promise<void> {
  const session = Date.now();
  const sims: SimAgent[] = [];
  const trackers: FleetTracker[] = [];
  const tracker = async (snapshot: boolean): Promise<FleetTracker> => {
    const tr = new FleetTracker({ brokerUrl: b.url, ...b.observer, topicPrefix: PREFIX, protocolVersion: 4, log: silentLogger(), ...(snapshot ? { snapshotMembers: () => IDS } : {}) });
    trackers.push(tr);
    await tr.start();
    return tr;
  };
  try {
    for (const id of IDS) sims.push(await SimAgent.connect({ url: b.url, id, session, ...(b.agent ? b.agent : {}) }));
    const withList = await tracker(true);
    await waitUntil('the whole fleet ONLINE from the retained statuses', () => IDS.every((id) => withList.rows().some((r) => r.clusterId === id.clusterId && r.memberId === id.memberId && r.state === 'ONLINE' && r.session === session)), 10_000);
    assert.deepEqual(withList.rows().map(key).sort(), IDS.map(key).sort());
    const wildcardOnly = await tracker(false);
    await sleep(1_000);
    assert.equal(wildcardOnly.rows().length, b.retainedToWildcards ? IDS.length : 0, 'what the wildcard alone gets on this broker');
  } finally {
    for (const tr of trackers) await tr.stop();
    for (const a of sims) await a.shutdown().catch(() => undefined);
  }
}

function brokerSuite(name: string, ready: () => boolean, need: (t: TestContext) => boolean, start: () => Promise<{ broker: Broker; close: () => Promise<void> }>): void {
  describe(`ids on the wire: ${name}`, { timeout: 180_000 }, () => {
    let running: { broker: Broker; close: () => Promise<void> } | null = null;
    before(async () => {
      if (ready()) running = await start();
    });
    after(async () => {
      await running?.close();
    });
    test(`status, health, events and the fleet table carry the exact ids (${IDS.map((i) => `${i.clusterId}/${i.memberId}`).join(', ')})`, async (t) => {
      if (!need(t) || !running) return;
      await idsRoundTrip(running.broker);
    });
    test('a controller started after the members gets them all from their retained statuses', async (t) => {
      if (!need(t) || !running) return;
      await snapshotAfterRestart(running.broker);
    });
  });
}

brokerSuite('mosquitto 2.0 (ACL by %c: the client id is the encoded member id)', () => hasCommand('mosquitto') && hasCommand('mosquitto_passwd'), (t) => requireCommands(t, 'mosquitto', 'mosquitto_passwd'), async () => {
  const acl = [
    `user ${ADMIN.username}`, 'topic readwrite #', '',
    `user ${AGENT.username}`, 'topic write instance/status/#', '',
    `pattern write ${PREFIX}/+/%c/#`, `pattern read ${PREFIX}/+/%c/status`, '',
  ].join('\n');
  const m = await Mosquitto.start({ users: { [ADMIN.username]: ADMIN.password, [AGENT.username]: AGENT.password }, acl });
  return { broker: { url: m.url, agent: AGENT, observer: ADMIN, mqtt5: 'accepted', retainedToWildcards: true, log: () => m.log }, close: () => m.close() };
});

brokerSuite('aedes (the embedded broker)', () => true, () => true, async () => {
  const b = await EmbeddedBroker.start({ port: 0 });
  return { broker: { url: b.url, agent: null, observer: {}, mqtt5: 'falls back', retainedToWildcards: true, log: () => '' }, close: () => b.close() };
});

brokerSuite('NATS 2.9 with MQTT', () => hasCommand(NATS_SERVER), (t) => requireCommands(t, NATS_SERVER), async () => {
  const n = await Nats.start({ [ADMIN.username]: ADMIN.password, [AGENT.username]: AGENT.password });
  return { broker: { url: n.url, agent: AGENT, observer: ADMIN, mqtt5: 'falls back', retainedToWildcards: true, log: () => n.log }, close: () => n.close() };
});

brokerSuite('RabbitMQ 3.10 with the MQTT plugin', hasRabbitMq, (t) => requireFile(t, hasRabbitMq() ? RABBITMQ_SERVER : null, `needs ${RABBITMQ_SERVER} (Debian package rabbitmq-server; .ci/run installs it)`), async () => {
  const r = await RabbitMq.start(AGENT);
  return { broker: { url: r.url, agent: AGENT, observer: AGENT, mqtt5: 'falls back', retainedToWildcards: false, log: () => r.log }, close: () => r.close() };
});
