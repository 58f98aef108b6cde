/**
 * FleetTracker against a real mosquitto (MQTT 5): two replicas in one `$share` group split the
 * health stream (each report to exactly one of them, none lost) while both get the retained
 * statuses; a third, unshared tracker sees everything and counts a real seq gap; terminate
 * clears the retained topics for good; a will turns a member OFFLINE.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { silentLogger } from '../../agent/src/log';
import type { MemberId } from '../../agent/src/protocol/mqtt';
import { FleetTracker } from '../../controller-stub/src/fleet';
import { healthReport, PREFIX, SimAgent, waitFor } from '../fixtures/controller/fleet-sim';
import { Mosquitto } from '../fixtures/health/mosquitto';
import { hasCommand, requireCommands } from '../helpers/env';

const MEMBERS = 8;
const REPORTS_EACH = 25;
const ADMIN = { username: 'admin', password: 'admin-pw' };

/** Everything a fresh subscriber to the whole prefix receives within `ms` (the retained snapshot). */
async function snapshot(url: string, ms = 700): Promise<Map<string, string>> {
  const c = await mqtt.connectAsync(url, { ...ADMIN, protocolVersion: 5, reconnectPeriod: 0 });
  const seen = new Map<string, string>();
  c.on('message', (topic, payload) => seen.set(topic, payload.toString()));
  await c.subscribeAsync(`${PREFIX}/#`, { qos: 1 });
  await new Promise((r) => setTimeout(r, ms));
  await c.endAsync();
  return seen;
}

describe('FleetTracker on mosquitto', { timeout: 60_000 }, () => {
  const ready = hasCommand('mosquitto') && hasCommand('mosquitto_passwd');
  let broker: Mosquitto;
  const agents: SimAgent[] = [];
  const ids: MemberId[] = Array.from({ length: MEMBERS }, (_, i) => ({ clusterId: 'c1', memberId: `m${i}` }));
  let a: FleetTracker;
  let b: FleetTracker;
  let plain: FleetTracker;
  const heard = { a: [] as string[], b: [] as string[], plain: [] as string[] };
  const published: string[] = [];

  before(async () => {
    if (!ready) return;
    const users: Record<string, string> = { [ADMIN.username]: ADMIN.password };
    for (const id of ids) users[id.memberId] = `${id.memberId}-pw`;
    broker = await Mosquitto.start({ users });
    // Agents first: the trackers must learn of them from the retained statuses alone.
    const session = Date.now();
    for (const id of ids) {
      agents.push(await SimAgent.connect({ url: broker.url, id, session, intervalS: 60, protocolVersion: 5, username: id.memberId, password: `${id.memberId}-pw` }));
    }
    const make = (shareGroup?: string) => new FleetTracker({ brokerUrl: broker.url, ...ADMIN, topicPrefix: PREFIX, log: silentLogger(), ...(shareGroup ? { shareGroup } : {}) });
    a = make('ctl');
    b = make('ctl');
    plain = make();
    await Promise.all([a.start(), b.start(), plain.start()]);
    a.on('health', (id, r) => heard.a.push(`${id.memberId}#${r.seq}`));
    b.on('health', (id, r) => heard.b.push(`${id.memberId}#${r.seq}`));
    plain.on('health', (id, r) => heard.plain.push(`${id.memberId}#${r.seq}`));
  });

  after(async () => {
    if (!ready) return;
    for (const t of [a, b, plain]) await t?.stop();
    for (const ag of agents) await ag.end().catch(() => undefined);
    await broker?.close();
  });

  it('both replicas see every retained status', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return;
    for (const [name, tr] of [['a', a], ['b', b], ['plain', plain]] as const) {
      await waitFor(`${name}: ${MEMBERS} members ONLINE`, () => tr.metrics().membersByState.ONLINE === MEMBERS, 5_000, () => JSON.stringify(tr.metrics()));
      assert.deepEqual(tr.rows().map((r) => r.memberId), ids.map((i) => i.memberId));
      assert.ok(tr.rows().every((r) => r.session === agents[0]?.session));
    }
  });

  it('two replicas with the same shareGroup split the health reports: each some, together all, none twice', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return;
    for (let n = 0; n < REPORTS_EACH; n++) {
      await Promise.all(agents.map(async (ag, i) => {
        // m3 skips two sequence numbers once: only the unshared tracker can tell.
        const r = await ag.health({ load: [i, 0, 0] }, i === 3 && n === 10 ? 2 : 0);
        published.push(`${ag.id.memberId}#${r.seq}`);
      }));
    }
    const total = MEMBERS * REPORTS_EACH;
    await waitFor('all reports delivered', () => heard.a.length + heard.b.length >= total && heard.plain.length >= total, 10_000,
      () => `a=${heard.a.length} b=${heard.b.length} plain=${heard.plain.length}`);
    await new Promise((r) => setTimeout(r, 300)); // duplicates, if any, would arrive now
    t.diagnostic(`shares: a=${heard.a.length} b=${heard.b.length} of ${total}`);
    assert.ok(heard.a.length > 0 && heard.b.length > 0, `both replicas got a share: a=${heard.a.length} b=${heard.b.length}`);
    assert.equal(heard.a.length + heard.b.length, total, 'none twice');
    assert.deepEqual(new Set([...heard.a, ...heard.b]), new Set(published), 'together all, none lost');
    assert.equal(new Set([...heard.a, ...heard.b]).size, total);
    assert.deepEqual(new Set(heard.plain), new Set(published));
    assert.equal(a.metrics().reportsReceived + b.metrics().reportsReceived, total);
    assert.equal(plain.metrics().reportsReceived, total);
    assert.equal(plain.metrics().lostSequenceNumbers, 2, 'the unshared tracker counts the skipped seqs');
    assert.equal(plain.rows().find((r) => r.memberId === 'm3')?.seqGaps, 2);
    assert.equal(a.metrics().lostSequenceNumbers + b.metrics().lostSequenceNumbers, 0, 'replicas do not count the other\'s share as lost');
    assert.equal(plain.rows().find((r) => r.memberId === 'm5')?.load1, 5);
  });

  it('terminate on one replica: GONE everywhere, and a new subscriber sees nothing of the member', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return;
    const victim = agents[0]!;
    // A retained health and event too, so clearing them is observable (agents may retain health with an expiry).
    const r = healthReport(victim.session, 999, Date.now());
    await victim.client.publishAsync(victim.topics.health, JSON.stringify(r), { qos: 1, retain: true });
    await victim.client.publishAsync(victim.topics.event, JSON.stringify({ v: 1, session: victim.session, seq: 99, ts: Date.now(), type: 'activated' }), { qos: 1, retain: true });
    const beforeSnap = await snapshot(broker.url);
    assert.ok(beforeSnap.has(victim.topics.status) && beforeSnap.has(victim.topics.health) && beforeSnap.has(victim.topics.event), 'retained before the terminate');
    await victim.end(); // a real terminate revokes the credentials first; here it just goes away
    await a.terminate(victim.id);
    assert.equal(a.rows().find((x) => x.memberId === victim.id.memberId)?.state, 'GONE');
    for (const [name, tr] of [['b', b], ['plain', plain]] as const) {
      await waitFor(`${name} sees the terminate`, () => tr.rows().find((x) => x.memberId === victim.id.memberId)?.state === 'GONE', 5_000);
    }
    const afterSnap = await snapshot(broker.url);
    assert.deepEqual([...afterSnap.keys()].filter((k) => k.includes(`/${victim.id.memberId}/`)), [], 'nothing retained for the member');
    assert.equal([...afterSnap.keys()].filter((k) => k.endsWith('/status')).length, MEMBERS - 1, 'the others are still retained');
  });

  it('a killed agent\'s will makes it OFFLINE on both replicas', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return;
    const victim = agents[MEMBERS - 1]!;
    victim.kill();
    for (const [name, tr] of [['a', a], ['b', b]] as const) {
      await waitFor(`${name}: ${victim.id.memberId} OFFLINE`, () => tr.rows().find((x) => x.memberId === victim.id.memberId)?.state === 'OFFLINE', 5_000);
    }
    assert.equal(a.metrics().membersByState.ONLINE, MEMBERS - 2);
  });
});

describe('FleetTracker through its own broker outage', { timeout: 60_000 }, () => {
  it('reconnects and suspends STALE judgment: no member goes STALE for our outage, a silent one does afterwards', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd')) return;
    const broker = await Mosquitto.start({ users: { [ADMIN.username]: ADMIN.password } });
    const tracker = new FleetTracker({ brokerUrl: broker.url, ...ADMIN, topicPrefix: PREFIX, log: silentLogger(), staleCheckMs: 50 });
    const id = { clusterId: 'c1', memberId: 'quiet' };
    let agent: SimAgent | null = null;
    try {
      await tracker.start();
      // Birth with a 1 s interval, then silence: STALE would be due 3 s after the birth. No will:
      // mosquitto publishes wills when it shuts down, and this member must stay ONLINE for us.
      agent = await SimAgent.connect({ url: broker.url, id, session: Date.now(), intervalS: 1, protocolVersion: 5, ...ADMIN, extra: { clientId: 'quiet', will: undefined } });
      await waitFor('ONLINE', () => tracker.rows()[0]?.state === 'ONLINE', 3_000);
      await broker.stop();
      await waitFor('tracker notices the outage', () => !tracker.metrics().connected, 5_000);
      await new Promise((r) => setTimeout(r, 4_000)); // longer than 3 intervals
      assert.equal(tracker.rows()[0]?.state, 'ONLINE', 'no judgment while disconnected');
      await broker.start();
      await waitFor('tracker reconnects', () => tracker.metrics().connected, 10_000);
      const reconnectedAt = Date.now();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(tracker.rows()[0]?.state, 'ONLINE', 'not STALE right after our reconnect although silent > 3 intervals by the wall clock');
      await waitFor('STALE once the silence we could hear is long enough', () => tracker.rows()[0]?.state === 'STALE', 6_000);
      const after = Date.now() - reconnectedAt;
      t.diagnostic(`STALE ${after} ms after the tracker reconnected`);
      assert.ok(after >= 1_000, `judgment resumed only after one interval (${after} ms)`);
    } finally {
      await agent?.end().catch(() => undefined);
      await tracker.stop();
      await broker.close();
    }
  });
});
