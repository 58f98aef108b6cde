/** The outage buffer's policy: bounded, oldest health dropped first, then oldest events, counted; delivery bookkeeping. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outbox, type OutboxKind } from '../../agent/src/health/outbox';

const msg = (kind: OutboxKind, body: string) => ({ kind, topic: `t/${kind}`, body, qos: (kind === 'event' ? 1 : 0) as 0 | 1 });
const bodies = (o: Outbox) => o.snapshot().map((e) => e.body);

test('never exceeds capacity; drops the oldest health first and counts it', () => {
  const o = new Outbox(4);
  o.push(msg('health', 'h1'));
  o.push(msg('event', 'e1'));
  o.push(msg('health', 'h2'));
  o.push(msg('event', 'e2'));
  const r = o.push(msg('health', 'h3'));
  assert.deepEqual(r.dropped.map((d) => d.body), ['h1']);
  assert.deepEqual(bodies(o), ['e1', 'h2', 'e2', 'h3'], 'order of creation is kept');
  o.push(msg('event', 'e3'));
  assert.deepEqual(bodies(o), ['e1', 'e2', 'h3', 'e3']);
  o.push(msg('event', 'e4'));
  assert.deepEqual(bodies(o), ['e1', 'e2', 'e3', 'e4'], 'the last health report goes before any event');
  o.push(msg('event', 'e5'));
  assert.deepEqual(bodies(o), ['e2', 'e3', 'e4', 'e5'], 'only events left: the oldest event goes');
  const r2 = o.push(msg('health', 'h4'));
  assert.deepEqual(r2.dropped.map((d) => d.body), ['h4'], 'a new health report cannot push out an event');
  assert.deepEqual(o.dropped, { health: 4, event: 1 });
  assert.equal(o.size, 4);
});

test('long outage: size stays at capacity, counts add up', () => {
  const o = new Outbox(10);
  for (let i = 0; i < 1000; i++) o.push(msg(i % 10 === 0 ? 'event' : 'health', `${i}`));
  assert.equal(o.size, 10);
  assert.equal(o.countOf('event'), 10, '100 events made, the newest 10 kept');
  assert.deepEqual(o.dropped, { health: 900, event: 90 });
  assert.equal(o.snapshot()[9]?.body, '990');
});

test('delivery bookkeeping: in flight, settle, release, dropped while in flight', () => {
  const o = new Outbox(3);
  o.push(msg('event', 'a'));
  o.push(msg('health', 'b'));
  const a = o.takeNext();
  const b = o.takeNext();
  assert.deepEqual([a?.body, b?.body], ['a', 'b']);
  assert.equal(o.takeNext(), undefined, 'nothing left that is not in flight');
  o.release(a!.id);
  assert.equal(o.takeNext()?.body, 'a', 'released: sent again, oldest first');
  o.settle(a!.id);
  assert.deepEqual(bodies(o), ['b']);
  o.push(msg('event', 'c'));
  o.push(msg('event', 'd'));
  o.push(msg('event', 'e'));
  assert.deepEqual(bodies(o), ['c', 'd', 'e'], 'the in-flight health report was dropped');
  assert.equal(o.inFlightCount, 0);
  o.settle(b!.id);
  assert.deepEqual(bodies(o), ['c', 'd', 'e'], 'a late ack of a dropped entry changes nothing');
  o.takeNext();
  o.takeNext();
  o.releaseAll();
  assert.equal(o.takeNext()?.body, 'c');
  assert.throws(() => new Outbox(0), /positive integer/);
});

test('a message that keeps losing the connection travels alone and is refused at the third strike', () => {
  const o = new Outbox(10, 3);
  for (const b of ['e1', 'bad', 'e2']) o.push(msg('event', b));
  // First connection: all three in flight when the broker closes it (it objected to "bad").
  const first = [o.takeNext(), o.takeNext(), o.takeNext()].map((e) => e!.id);
  o.releaseAll(); // the 'down' event comes first, the rejections after
  for (const id of first) assert.equal(o.strike(id), undefined, 'one strike is not enough');
  // Next connection: struck entries go one at a time.
  const e1 = o.takeNext()!;
  assert.equal(e1.body, 'e1');
  assert.equal(o.takeNext(), undefined, 'nothing else while a suspect is in flight');
  o.settle(e1.id);
  const bad = o.takeNext()!;
  assert.equal(bad.body, 'bad');
  assert.equal(o.takeNext(), undefined);
  assert.equal(o.strike(bad.id), undefined, 'strike 2');
  assert.equal(o.takeNext()!.body, 'bad', 'still at the head, still alone');
  assert.equal(o.strike(bad.id)?.body, 'bad', 'strike 3: refused and returned');
  assert.deepEqual(o.refused, { health: 0, event: 1 });
  assert.deepEqual(o.dropped, { health: 0, event: 0 }, 'refused is not an outage drop');
  o.push(msg('health', 'h1'));
  const e2 = o.takeNext()!;
  assert.equal(e2.body, 'e2', 'the innocent one (one strike) is sent again');
  assert.equal(o.takeNext(), undefined, 'alone');
  o.settle(e2.id);
  const h1 = o.takeNext()!;
  assert.equal(h1.body, 'h1');
  o.push(msg('health', 'h2'));
  assert.equal(o.takeNext()?.body, 'h2', 'no strikes: the window is open again');
  o.settle(h1.id);
  assert.equal(o.size, 1);
});

test('refused outright (PUBACK ≥ 0x80): removed and counted at once', () => {
  const o = new Outbox(10);
  o.push(msg('event', 'e1'));
  o.push(msg('health', 'h1'));
  const e = o.takeNext()!;
  assert.equal(o.refuse(e.id)?.body, 'e1');
  assert.equal(o.refuse(e.id), undefined, 'twice: already gone');
  assert.deepEqual(o.refused, { health: 0, event: 1 });
  assert.equal(o.takeNext()?.body, 'h1');
  assert.throws(() => new Outbox(1, 0), /maxStrikes/);
});
