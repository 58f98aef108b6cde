/**
 * FleetTracker with the EmbeddedBroker (aedes, MQTT 3.1.1): a fleet of 1,000 simulated agents
 * (one mqtt.js client each, in this process) all tracked, no report lost, and half of them
 * killed → their wills make exactly that half OFFLINE. Plus the broker's auth and member ACL.
 */
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { silentLogger } from '../../agent/src/log';
import { EmbeddedBroker, FleetTracker } from '../../controller-stub/src/fleet';
import { PREFIX, SimAgent, waitFor } from '../fixtures/controller/fleet-sim';

const FLEET = 1_000;
const REPORTS_EACH = 2;
/** Agents connecting at once: enough to be quick, few enough not to time out connects. */
const BATCH = 100;

/** Each agent is two sockets in this process (client and broker side), plus some slack. */
function openFileLimit(): number {
  try {
    return Number(execSync('sh -c "ulimit -n"', { encoding: 'utf8' }).trim());
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

describe('FleetTracker with the embedded broker', { timeout: 120_000 }, () => {
  it(`tracks ${FLEET} agents, loses no report, and turns the killed half OFFLINE by their wills`, async (t) => {
    const limit = openFileLimit();
    assert.ok(limit === Number.POSITIVE_INFINITY || Number.isNaN(limit) || limit > 2 * FLEET + 200, `ulimit -n is ${limit}: ${FLEET} agents need > ${2 * FLEET + 200} descriptors (raise it with ulimit -n)`);
    const broker = await EmbeddedBroker.start({ port: 0 });
    const tracker = new FleetTracker({ brokerUrl: broker.url, topicPrefix: PREFIX, log: silentLogger(), staleCheckMs: 200 });
    const agents: SimAgent[] = [];
    const started = Date.now();
    try {
      await tracker.start();
      const session = Date.now();
      for (let i = 0; i < FLEET; i += BATCH) {
        const batch = Array.from({ length: Math.min(BATCH, FLEET - i) }, (_, j) =>
          SimAgent.connect({ url: broker.url, id: { clusterId: `c${(i + j) % 7}`, memberId: `m${String(i + j).padStart(4, '0')}` }, session: session + i + j, intervalS: 300 }));
        agents.push(...(await Promise.all(batch)));
      }
      const connectedMs = Date.now() - started;
      await waitFor(`${FLEET} ONLINE`, () => tracker.metrics().membersByState.ONLINE === FLEET, 20_000, () => JSON.stringify(tracker.metrics()));
      const onlineMs = Date.now() - started;

      for (let n = 0; n < REPORTS_EACH; n++) await Promise.all(agents.map((a) => a.health()));
      await Promise.all(agents.map((a) => a.event('activated')));
      await waitFor('every report and event', () => tracker.metrics().reportsReceived >= FLEET * REPORTS_EACH && tracker.metrics().eventsReceived >= FLEET, 20_000,
        () => JSON.stringify(tracker.metrics()));
      const m = tracker.metrics();
      assert.equal(m.reportsReceived, FLEET * REPORTS_EACH, 'every report arrived exactly once');
      assert.equal(m.eventsReceived, FLEET);
      assert.equal(m.lostSequenceNumbers, 0);
      assert.equal(m.ignoredMessages, 0);
      const rows = tracker.rows();
      assert.equal(rows.length, FLEET);
      const sessions = new Map(agents.map((a) => [a.id.memberId, a.session]));
      const wrong = rows.find((r) => !(r.state === 'ONLINE' && r.activated && r.seqGaps === 0 && r.load1 === 0.5 && r.session === sessions.get(r.memberId)));
      assert.equal(wrong, undefined, `every row ONLINE, activated, its own session: ${JSON.stringify(wrong)}`);
      assert.equal(new Set(rows.map((r) => r.memberId)).size, FLEET, 'all distinct members');

      const killed = new Set<string>();
      agents.forEach((a, i) => {
        if (i % 2 === 0) {
          a.kill();
          killed.add(a.id.memberId);
        }
      });
      const killedAt = Date.now();
      await waitFor(`${killed.size} OFFLINE`, () => tracker.metrics().membersByState.OFFLINE === killed.size, 20_000, () => JSON.stringify(tracker.metrics().membersByState));
      const willsMs = Date.now() - killedAt;
      for (const r of tracker.rows()) assert.equal(r.state, killed.has(r.memberId) ? 'OFFLINE' : 'ONLINE', r.memberId);
      assert.equal(broker.connectedClients, FLEET - killed.size + 1, 'the survivors and the tracker');
      t.diagnostic(`${FLEET} agents connected in ${connectedMs} ms, all ONLINE at ${onlineMs} ms; ${killed.size} wills → OFFLINE in ${willsMs} ms; RSS ${Math.round(process.memoryUsage().rss / 1e6)} MB`);
    } finally {
      await Promise.all(agents.map((a) => a.end().catch(() => undefined)));
      await tracker.stop();
      await broker.close();
    }
  });
});

describe('EmbeddedBroker auth and member ACL', { timeout: 30_000 }, () => {
  const users: Record<string, string> = { controller: 'ctl-pw', m1: 'm1-pw', m2: 'm2-pw' };

  it('refuses bad credentials, keeps members to their own topics (wills included), lets the controller read all', async () => {
    const broker = await EmbeddedBroker.start({
      port: 0,
      authenticate: (u, p) => (users[u] === undefined || users[u] !== p ? null : u === 'controller' ? { role: 'superuser' } : { role: 'member', clusterId: 'c1', memberId: u }),
      acl: { topicPrefix: PREFIX },
    });
    const tracker = new FleetTracker({ brokerUrl: broker.url, username: 'controller', password: 'ctl-pw', topicPrefix: PREFIX, log: silentLogger() });
    const agents: SimAgent[] = [];
    try {
      await assert.rejects(
        new FleetTracker({ brokerUrl: broker.url, username: 'controller', password: 'wrong', topicPrefix: PREFIX, log: silentLogger() }).start(),
        /cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: .*(Bad username or password|bad user name or password)/i,
      );
      await assert.rejects(mqtt.connectAsync(broker.url, { reconnectPeriod: 0 }), /Bad username or password|Not authorized/i, 'anonymous refused');
      const asMember = new FleetTracker({ brokerUrl: broker.url, username: 'm1', password: 'm1-pw', topicPrefix: PREFIX, log: silentLogger() });
      await assert.rejects(asMember.start(), /Identifier rejected/, 'a member cannot even connect as a tracker (its client id is not its member id)');
      await tracker.start();
      const session = Date.now();
      const m1 = await SimAgent.connect({ url: broker.url, id: { clusterId: 'c1', memberId: 'm1' }, session, username: 'm1', password: 'm1-pw' });
      agents.push(m1);
      await waitFor('m1 ONLINE', () => tracker.rows().some((r) => r.memberId === 'm1' && r.state === 'ONLINE'));

      // m2's credentials, but claiming to be m1 in its birth and its will: aedes drops the
      // connection at the refused birth, and the will (also on m1's topic, session + 1) is
      // refused too, or m1 would now be OFFLINE.
      const liar = await SimAgent.connect({ url: broker.url, id: { clusterId: 'c1', memberId: 'm1' }, session: session + 1, username: 'm2', password: 'm2-pw', extra: { clientId: 'm2' } }).catch((e: Error) => e);
      assert.ok(liar instanceof Error && /closed before the birth was acknowledged/.test(liar.message), `the liar's birth was refused (${String(liar)})`);
      // The real m2 publishes fine; the tracker sees it, so the liar had time to land if it could.
      const m2 = await SimAgent.connect({ url: broker.url, id: { clusterId: 'c1', memberId: 'm2' }, session, username: 'm2', password: 'm2-pw' });
      agents.push(m2);
      await waitFor('m2 ONLINE', () => tracker.rows().some((r) => r.memberId === 'm2' && r.state === 'ONLINE'));
      await new Promise((r) => setTimeout(r, 300));
      const m1row = tracker.rows().find((r) => r.memberId === 'm1');
      assert.equal(m1row?.state, 'ONLINE');
      assert.equal(m1row?.session, session, 'the liar\'s birth (session + 1) was refused');

      // A member's client id is its member id: m1 goes away first, or this would take over its session.
      await m1.shutdown();
      await assert.rejects(mqtt.connectAsync(broker.url, { username: 'm1', password: 'm1-pw', reconnectPeriod: 0, clientId: 'm1-sub' }), /Identifier rejected/i, 'not its own client id');
      const sub = await mqtt.connectAsync(broker.url, { username: 'm1', password: 'm1-pw', reconnectPeriod: 0, clientId: 'm1' });
      try {
        // A member may read only its own status; refused filters come back as 0x80 in the SUBACK.
        const granted = await sub.subscribeAsync(`${PREFIX}/c1/m1/status`, { qos: 1 });
        assert.deepEqual(granted.map((g) => g.qos), [1]);
        for (const filter of [`${PREFIX}/+/m1/status`, `${PREFIX}/c1/m2/status`, `${PREFIX}/#`, `${PREFIX}/c1/m1/health`]) {
          await assert.rejects(sub.subscribeAsync(filter), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 128, filter);
        }
        assert.ok(sub.connected, 'a refused subscription does not cost the connection');
      } finally {
        await sub.endAsync();
      }
    } finally {
      await Promise.all(agents.map((a) => a.end().catch(() => undefined)));
      await tracker.stop();
      await broker.close();
    }
  });
});
