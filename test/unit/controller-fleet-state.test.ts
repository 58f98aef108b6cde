import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildBirth, buildEvent, buildOffline, parseHealthReport, WireFormatError, type MemberId } from '../../agent/src/protocol/mqtt';
import { FleetBook, firewallSummary } from '../../controller-stub/src/fleet/book';
import { deafTotal, initialLink, judging, linkDown, linkUp } from '../../controller-stub/src/fleet/state';
import { healthReport, port } from '../fixtures/controller/fleet-sim';

const M1: MemberId = { clusterId: 'c1', memberId: 'm1' };
const T0 = 1_700_000_000_000; // sessions are floored by the agent's clock in ms: use realistic ones
const S1 = T0 - 50_000;
const S2 = T0 - 1_000;
const live = (now: number) => ({ now, retained: false });
const retained = (now: number) => ({ now, retained: true });
const state = (b: FleetBook, id: MemberId = M1) => b.record(id)?.state;

/** A book whose link has been up long enough (1000 s) to judge. */
function judgingBook(countGaps = true): FleetBook {
  const b = new FleetBook(T0 - 2_000_000, { countGaps });
  b.connected(T0 - 1_000_000);
  return b;
}

describe('fleet state: STALE timing', () => {
  it('turns ONLINE into STALE at exactly 3× the interval from the birth without health', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.judge(T0 + 29_999);
    assert.equal(state(b), 'ONLINE');
    b.judge(T0 + 30_000);
    assert.equal(state(b), 'STALE');
  });

  it('counts from the last health report, and the next report makes it ONLINE again', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.health(M1, healthReport(S1, 1, T0), live(T0 + 20_000));
    b.judge(T0 + 49_999);
    assert.equal(state(b), 'ONLINE');
    b.judge(T0 + 50_000);
    assert.equal(state(b), 'STALE');
    b.health(M1, healthReport(S1, 2, T0), live(T0 + 51_000));
    assert.equal(state(b), 'ONLINE');
  });

  it('uses 15 s when the birth names no interval', () => {
    const b = judgingBook();
    const birth = buildBirth(S1, T0, 'a', 10);
    delete birth.intervalS;
    b.status(M1, birth, live(T0));
    b.judge(T0 + 44_999);
    assert.equal(state(b), 'ONLINE');
    assert.equal(b.rows(T0 + 45_000)[0]?.state, 'STALE', 'rows() judges before reading');
  });

  it('ignores health of an older session: it does not keep the member alive', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S2, T0, 'a', 10), live(T0));
    assert.equal(b.health(M1, healthReport(S1, 9, T0), live(T0 + 25_000)), false);
    b.judge(T0 + 30_000);
    assert.equal(state(b), 'STALE');
    assert.equal(b.metrics(T0 + 30_000).ignoredMessages, 1);
  });
});

describe('fleet state: OFFLINE and sessions', () => {
  it('ignores a late will of an older session; the current session\'s will makes it OFFLINE', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.status(M1, buildBirth(S2, T0, 'a', 10), live(T0 + 1_000)); // reconnect: new session
    assert.equal(b.status(M1, buildOffline(S1, S1, 'lwt'), live(T0 + 2_000)), false, 'old will ignored');
    assert.equal(state(b), 'ONLINE');
    assert.equal(b.record(M1)?.session, S2);
    assert.equal(b.status(M1, buildOffline(S2, S2, 'lwt'), live(T0 + 3_000)), true);
    assert.equal(state(b), 'OFFLINE');
    assert.equal(b.record(M1)?.offlineCause, 'lwt');
    assert.equal(b.record(M1)?.lastSeen, T0 + 3_000, 'a death is dated by its receipt');
  });

  it('a shutdown ends the session: its stragglers (birth, health, events) do not revive it; a newer session does', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.status(M1, buildOffline(S1, T0 + 1, 'shutdown'), live(T0 + 1_000));
    assert.equal(state(b), 'OFFLINE');
    assert.equal(b.record(M1)?.offlineCause, 'shutdown');
    assert.equal(b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0 + 2_000)), false);
    assert.equal(b.health(M1, healthReport(S1, 3, T0), live(T0 + 2_000)), false);
    assert.equal(b.event(M1, buildEvent(S1, 3, T0, 'activated'), live(T0 + 2_000)), false);
    assert.equal(state(b), 'OFFLINE');
    b.status(M1, buildBirth(S2, T0, 'a', 10), live(T0 + 3_000));
    assert.equal(state(b), 'ONLINE');
    assert.equal(b.record(M1)?.offlineCause, null);
  });

  it('accepts a will of a session newer than any birth it saw (the birth may come later or never)', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.status(M1, buildOffline(S2, S2, 'lwt'), live(T0 + 1_000));
    assert.equal(state(b), 'OFFLINE');
    assert.equal(b.record(M1)?.session, S2);
  });

  it('takes health of a newer session as life (the birth travels on another subscription)', () => {
    const b = judgingBook();
    b.health(M1, healthReport(S2, 1, T0), live(T0));
    assert.equal(state(b), 'ONLINE');
    b.status(M1, buildBirth(S2, T0, 'a', 20), retained(T0 + 10));
    assert.equal(b.record(M1)?.intervalS, 20, 'the late retained birth still gives the interval');
    b.judge(T0 + 59_999);
    assert.equal(state(b), 'ONLINE');
    b.judge(T0 + 60_000);
    assert.equal(state(b), 'STALE');
  });

  it('a retained snapshot gives the sender\'s time as lastSeen, and a retained offline is OFFLINE', () => {
    const b = judgingBook();
    b.status(M1, buildOffline(S1, T0 - 5_000, 'shutdown'), retained(T0));
    assert.equal(state(b), 'OFFLINE');
    assert.equal(b.record(M1)?.lastSeen, T0 - 5_000);
  });
});

describe('fleet state: GONE', () => {
  it('is sticky for the terminated session and older: wills, health, events, births, cleared statuses', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S2, T0, 'a', 10), live(T0));
    b.terminate(M1, T0 + 1_000);
    assert.equal(state(b), 'GONE');
    assert.equal(b.status(M1, buildOffline(S2, S2, 'lwt'), live(T0 + 2_000)), false);
    assert.equal(b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0 + 2_000)), false);
    assert.equal(b.health(M1, healthReport(S2, 5, T0), live(T0 + 2_000)), false);
    assert.equal(b.event(M1, buildEvent(S2, 5, T0, 'fault'), live(T0 + 2_000)), false);
    assert.equal(b.status(M1, null, live(T0 + 2_000)), false, 'our own zero-byte status comes back');
    b.judge(T0 + 1_000_000);
    assert.equal(state(b), 'GONE');
    assert.deepEqual(b.metrics(T0 + 1_000_000).membersByState, { ONLINE: 0, STALE: 0, OFFLINE: 0, GONE: 1, UNKNOWN: 0 });
  });

  it('covers sessions never seen that began before the terminate (wall-clock-floored sessions)', () => {
    const b = judgingBook();
    b.terminate(M1, T0);
    assert.equal(b.status(M1, buildBirth(T0 - 10, T0 - 10, 'a', 10), live(T0 + 1)), false);
    assert.equal(state(b), 'GONE');
    assert.equal(b.status(M1, buildBirth(T0 + 60_000, T0 + 60_000, 'a', 10), live(T0 + 60_000)), true, 'a newer session revives it');
    assert.equal(state(b), 'ONLINE');
  });

  it('covers the current session even when the member\'s clock runs ahead of ours', () => {
    const b = judgingBook();
    const ahead = T0 + 3_600_000;
    b.status(M1, buildBirth(ahead, ahead, 'a', 10), live(T0));
    b.terminate(M1, T0 + 1_000);
    assert.equal(b.status(M1, buildOffline(ahead, ahead, 'lwt'), live(T0 + 2_000)), false);
    assert.equal(b.health(M1, healthReport(ahead, 1, ahead), live(T0 + 2_000)), false);
    assert.equal(state(b), 'GONE');
  });

  it('a cleared retained status (another replica\'s terminate) makes a known member GONE', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S2, T0, 'a', 10), live(T0));
    assert.equal(b.status(M1, null, live(T0 + 1_000)), true);
    assert.equal(state(b), 'GONE');
    assert.equal(b.health(M1, healthReport(S2, 1, T0), live(T0 + 2_000)), false);
  });
});

describe('fleet state: sequence gaps', () => {
  it('counts missing seq within a session; duplicates and late ones are no gap; a new session restarts the baseline', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    for (const seq of [1, 2, 5, 6, 4, 6]) b.health(M1, healthReport(S1, seq, T0), live(T0));
    assert.equal(b.record(M1)?.seqGaps, 2);
    b.status(M1, buildBirth(S2, T0, 'a', 10), live(T0));
    for (const seq of [20, 21, 23]) b.health(M1, healthReport(S2, seq, T0), live(T0));
    assert.equal(b.record(M1)?.seqGaps, 3, '6 → 20 crosses sessions (not counted); 21 → 23 loses one');
    const m = b.metrics(T0);
    assert.equal(m.lostSequenceNumbers, 3);
    assert.equal(m.reportsReceived, 9);
    assert.equal(b.rows(T0)[0]?.seqGaps, 3);
  });

  it('does not count gaps when told not to (a replica sees only its share)', () => {
    const b = judgingBook(false);
    for (const seq of [1, 4, 9]) b.health(M1, healthReport(S1, seq, T0), live(T0));
    assert.equal(b.metrics(T0).lostSequenceNumbers, 0);
    assert.equal(b.record(M1)?.lastSeq, 9);
  });
});

describe('fleet state: the controller\'s own outage', () => {
  it('link bookkeeping: deaf time adds up across outages', () => {
    let l = initialLink(0);
    l = linkUp(l, 1_000);
    l = linkDown(l, 5_000);
    assert.equal(deafTotal(l, 7_000), 3_000);
    l = linkUp(l, 8_000);
    assert.equal(deafTotal(l, 100_000), 4_000);
    assert.equal(judging(l, 10, 17_999), false);
    assert.equal(judging(l, 10, 18_000), true);
  });

  it('no mass STALE: silence does not count while we were deaf, and nobody is judged within one interval of our reconnect', () => {
    const b = new FleetBook(T0, { countGaps: true });
    b.connected(T0);
    const quiet: MemberId = { clusterId: 'c1', memberId: 'quiet' };
    const talker: MemberId = { clusterId: 'c1', memberId: 'talker' };
    for (const id of [M1, quiet, talker]) b.status(id, buildBirth(S1, T0, 'a', 10), live(T0));
    b.health(M1, healthReport(S1, 1, T0), live(T0 + 5_000)); // silent 5 s when we go deaf at +10 s
    b.disconnected(T0 + 10_000);
    b.judge(T0 + 100_000);
    assert.equal(state(b, M1), 'ONLINE', 'no judgment while disconnected');
    b.connected(T0 + 110_000);
    b.status(quiet, buildBirth(S1, T0, 'a', 10), retained(T0 + 110_001)); // resubscribe replays the retained birth
    b.health(talker, healthReport(S1, 1, T0), live(T0 + 112_000));
    // `quiet` was silent 10 s before the outage: 30 s of silence are due at +130 s.
    b.judge(T0 + 119_999);
    assert.deepEqual([state(b, M1), state(b, quiet), state(b, talker)], ['ONLINE', 'ONLINE', 'ONLINE']);
    b.judge(T0 + 129_999);
    assert.equal(state(b, quiet), 'ONLINE');
    b.judge(T0 + 130_000);
    assert.equal(state(b, quiet), 'STALE', 'the replayed retained birth is no evidence of life');
    // M1: 5 s before + 25 s after the reconnect.
    b.judge(T0 + 134_999);
    assert.equal(state(b, M1), 'ONLINE');
    b.judge(T0 + 135_000);
    assert.equal(state(b, M1), 'STALE');
    assert.equal(state(b, talker), 'ONLINE');
  });

  it('judgment waits one interval after the reconnect even for a member already silent long enough', () => {
    const b = new FleetBook(T0, { countGaps: true });
    b.connected(T0);
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.disconnected(T0 + 28_000); // 28 s silent
    b.connected(T0 + 100_000);
    b.judge(T0 + 109_999); // 28 + 9.999 s of silence we could hear: over 30 s, but within the grace
    assert.equal(state(b), 'ONLINE');
    b.judge(T0 + 110_000);
    assert.equal(state(b), 'STALE');
  });
});

describe('fleet rows', () => {
  it('fills load, memory, firewall, activation and unexpected ports from the latest report and events', () => {
    const b = judgingBook();
    b.status(M1, buildBirth(S1, T0, 'a', 10), live(T0));
    b.event(M1, buildEvent(S1, 1, T0, 'started'), live(T0));
    b.event(M1, buildEvent(S1, 2, T0, 'activated'), live(T0));
    const firewall = { mode: 'enforce' as const, backend: 'nft' as const, digest: 'x', ruleCount: 15, appliedAt: null, lastDriftAt: null, lastDrift: null, lastError: null };
    const listening = [port(8080), port(22, { allowed: true }), port(5432, { loopback: true, addr: '127.0.0.1' }), port(8080, { addr: '::' }), port(111, { proto: 'udp' })];
    b.health(M1, healthReport(S1, 1, T0, { load: [1.25, 1, 1], mem: { totalB: 3_000, availB: 1_000 }, firewall, listening }), live(T0 + 1_000));
    assert.deepEqual(b.rows(T0 + 1_000), [{
      clusterId: 'c1', memberId: 'm1', state: 'ONLINE', lastSeen: T0 + 1_000, session: S1, load1: 1.25, memAvailPct: 33.3,
      firewall: 'enforce nft 15 rules', activated: true, unexpectedPorts: [111, 8080], seqGaps: 0, lastEvent: 'activated',
    }]);
    b.event(M1, buildEvent(S1, 3, T0, 'started'), live(T0 + 2_000));
    assert.equal(b.rows(T0 + 2_000)[0]?.activated, false, 'a new agent run is not activated yet');
    assert.equal(b.metrics(T0).eventsReceived, 3);
  });

  it('summarises the firewall', () => {
    assert.equal(firewallSummary(null), null);
    const fw = { mode: 'plan' as const, backend: null, digest: null, ruleCount: 1, appliedAt: null, lastDriftAt: null, lastDrift: null, lastError: null };
    assert.equal(firewallSummary(fw), 'plan no-backend 1 rule');
    assert.equal(firewallSummary({ ...fw, lastDrift: 'x' }), 'plan no-backend 1 rule drifted');
    assert.equal(firewallSummary({ ...fw, lastError: 'boom' }), 'plan no-backend 1 rule error');
  });

  it('sorts rows by cluster/member', () => {
    const b = judgingBook();
    for (const m of ['b', 'a', 'c']) b.status({ clusterId: 'x', memberId: m }, buildBirth(S1, T0, 'a', 10), live(T0));
    b.status({ clusterId: 'a', memberId: 'z' }, buildBirth(S1, T0, 'a', 10), live(T0));
    assert.deepEqual(b.rows(T0).map((r) => `${r.clusterId}/${r.memberId}`), ['a/z', 'x/a', 'x/b', 'x/c']);
  });
});

describe('parseHealthReport', () => {
  const topic = 'cartridge/v1/c1/m1/health';
  it('accepts what the agent sends', () => {
    const r = healthReport(S1, 3, T0, { listening: [port(80)] });
    assert.deepEqual(parseHealthReport(topic, Buffer.from(JSON.stringify(r))), r);
  });
  it('names the topic and the bad field', () => {
    const cases: [unknown, RegExp][] = [
      ['nope', /not JSON/],
      [[1], /not a JSON object/],
      [{ ...healthReport(S1, 1, T0), v: 2 }, /wire version 2/],
      [{ ...healthReport(S1, 1, T0), seq: -1 }, /"seq" must be a non-negative integer, got -1/],
      [{ ...healthReport(S1, 1, T0), load: [1, 2] }, /"load" must be three numbers/],
      [{ ...healthReport(S1, 1, T0), mem: { totalB: 'x', availB: 1 } }, /"mem"/],
      [{ ...healthReport(S1, 1, T0), listening: [{ port: 80 }] }, /"listening\[0\]"/],
      [{ ...healthReport(S1, 1, T0), firewall: { mode: 'enforce' } }, /"firewall"/],
    ];
    for (const [body, re] of cases) {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      assert.throws(() => parseHealthReport(topic, text), (e: Error) => e instanceof WireFormatError && e.message.startsWith(topic) && re.test(e.message), text);
    }
  });
});
