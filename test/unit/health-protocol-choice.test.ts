/** MQTT 5 → 3.1.1 fallback (once), the pre-CONNACK causes, and the warning rate limit. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { preConnackCauses, ProtocolChoice, RateLimit } from '../../agent/src/health/protocol-choice';

test('MQTT 5 not accepted: 3.1.1 once; kept when accepted', () => {
  const p = new ProtocolChoice(5);
  assert.equal(p.version, 5);
  assert.equal(p.accepted(), null, 'accepted on the configured version: nothing to say');
  assert.equal(p.notAccepted(), 'fall-back');
  assert.equal(p.version, 4);
  assert.equal(p.accepted(), 'kept');
  assert.equal(p.version, 4);
  assert.equal(p.accepted(), null, 'said once');
  assert.equal(p.notAccepted(), null, 'on 3.1.1 for good: later closes are not about the protocol');
  assert.equal(p.version, 4);
});

test('3.1.1 not accepted either: back to 5, no second fallback', () => {
  const p = new ProtocolChoice(5);
  p.notAccepted();
  assert.equal(p.notAccepted(), 'give-up');
  assert.equal(p.version, 5);
  assert.equal(p.notAccepted(), null);
  assert.equal(p.version, 5);
});

test('configured 3.1.1: never changes', () => {
  const p = new ProtocolChoice(4);
  assert.equal(p.notAccepted(), null);
  assert.equal(p.version, 4);
});

test('causes name the protocol only for MQTT 5, TLS only for mqtts', () => {
  assert.match(preConnackCauses(5, false), /does not speak MQTT 5 .*RabbitMQ 3\.10.*health\.protocolVersion "3\.1\.1"/);
  assert.doesNotMatch(preConnackCauses(4, false), /MQTT 5/);
  assert.match(preConnackCauses(4, false), /NATS drops a connection whose will topic/);
  assert.match(preConnackCauses(4, true), /TLS/);
  assert.match(preConnackCauses(4, false), /not an MQTT listener/);
});

test('rate limit: one per interval', () => {
  const r = new RateLimit(1000);
  assert.deepEqual([0, 10, 999, 1000, 1500, 2001].map((t) => r.allow(t)), [true, false, false, true, false, true]);
});
