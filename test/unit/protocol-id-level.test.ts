/**
 * Ids on the wire (agent/src/protocol/mqtt.ts encodeIdLevel): reversible, canonical, and made
 * of characters no supported broker translates or refuses. The broker rules are modelled from
 * their sources (RabbitMQ rabbit_mqtt_util mqtt2amqp/amqp2mqtt, ActiveMQ MQTTProtocolSupport,
 * nats-server 2.9 mqttToNATSSubjectConversion); the real brokers are in
 * test/integration/health-ids-brokers.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeIdLevel, encodeIdLevel, memberClientId, memberTopic, memberTopics, parseMemberTopic } from '../../agent/src/protocol/mqtt';

const IDS = ['php.shop', 'm 1', 'a/b', 'ünï', 'a.b', 'x', 'a', 'b.x', 'a_b', 'a%2Eb', '%', '+', '#', '$SYS', '*', '>', 'a,b', 'q?x=1',
  'tab\there', 'nul\u0000', '\u007f', '日本', '😀', 'php.shop.domain1c5b1a9e-3e37-4b3c-8f5d-1a2b3c4d5e6f', 'A-Z_09', ' ', '%25'];

test('encode: the safe alphabet is unchanged, everything else %XX per UTF-8 byte (upper-case)', () => {
  assert.equal(encodeIdLevel('A-Z_az09'), 'A-Z_az09');
  assert.equal(encodeIdLevel('php.shop'), 'php%2Eshop');
  assert.equal(encodeIdLevel('m 1'), 'm%201');
  assert.equal(encodeIdLevel('a/b'), 'a%2Fb');
  assert.equal(encodeIdLevel('ünï'), '%C3%BCn%C3%AF');
  assert.equal(encodeIdLevel('%'), '%25');
  assert.equal(encodeIdLevel('nul\u0000'), 'nul%00');
  assert.equal(encodeIdLevel('😀'), '%F0%9F%98%80');
  assert.equal(memberClientId({ clusterId: 'c', memberId: 'php.m1' }), 'php%2Em1');
  assert.throws(() => encodeIdLevel(''), /must not be empty/);
  assert.throws(() => encodeIdLevel('a\uD800b'), /lone surrogate/);
});

test('decode gives back the exact id; distinct ids never share a level', () => {
  const levels = new Map<string, string>();
  for (const id of IDS) {
    const level = encodeIdLevel(id);
    assert.match(level, /^[A-Za-z0-9_%-]+$/, id);
    assert.equal(decodeIdLevel(level), id, `round trip of ${JSON.stringify(id)}`);
    assert.ok(!levels.has(level), `${JSON.stringify(id)} and ${JSON.stringify(levels.get(level))} collide`);
    levels.set(level, id);
  }
  // Every single BMP code point (but surrogates) and a few astral ones.
  for (let cp = 0; cp < 0x10000; cp += 7) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const id = `x${String.fromCodePoint(cp)}`;
    assert.equal(decodeIdLevel(encodeIdLevel(id)), id);
  }
});

test('decode accepts only canonical levels (no second spelling of an id)', () => {
  for (const bad of ['', 'php.shop', 'a b', '%41', '%2e', '%2', '%G0', 'a/b', '%C3', '%FF', '%C0%AF', '+', '%ED%A0%80']) {
    assert.equal(decodeIdLevel(bad), null, JSON.stringify(bad));
  }
});

test('topics carry encoded levels and parse back to the real ids', () => {
  const id = { clusterId: 'php.shop', memberId: 'a/b' };
  assert.equal(memberTopic('cartridge/v1', id, 'health'), 'cartridge/v1/php%2Eshop/a%2Fb/health');
  for (const clusterId of IDS) {
    for (const memberId of ['m 1', 'ünï', 'php.m.1']) {
      for (const [channel, topic] of Object.entries(memberTopics('cartridge/v1', { clusterId, memberId }))) {
        assert.deepEqual(parseMemberTopic('cartridge/v1', topic), { clusterId, memberId, channel });
      }
    }
  }
  assert.equal(parseMemberTopic('cartridge/v1', 'cartridge/v1/php.shop/m1/health'), null, 'an unencoded dotted level is not a member topic');
});

/** RabbitMQ 3.x MQTT plugin: publish topic → AMQP routing key → subscriber's MQTT topic. */
const rabbitRoundTrip = (t: string): string => t.replace(/\//g, '.').replace(/\+/g, '*').replace(/\*/g, '+').replace(/\./g, '/');
/** ActiveMQ Classic: the char swap into destination names (and the same swap back). */
const activemq = (t: string): string => t.replace(/[#>+*/.]/g, (c) => ({ '#': '>', '>': '#', '+': '*', '*': '+', '/': '.', '.': '/' })[c] as string);

test('broker translations keep every encoded topic as sent (RabbitMQ, ActiveMQ) and NATS 2.9 refuses none', () => {
  const raw = 'cartridge/v1/a.b/x/health';
  assert.equal(rabbitRoundTrip(raw), 'cartridge/v1/a/b/x/health', 'the model shows the bug: a raw dot arrives as a separator');
  assert.equal(rabbitRoundTrip('cartridge/v1/a/b.x/health'), rabbitRoundTrip(raw), 'and a.b/x collides with a/b.x');
  for (const clusterId of IDS) {
    for (const memberId of IDS) {
      const topic = memberTopic('cartridge/v1', { clusterId, memberId }, 'status');
      assert.equal(rabbitRoundTrip(topic), topic);
      assert.equal(activemq(activemq(topic)), topic);
      assert.equal(activemq(topic).split('.').length, 5, 'five ActiveMQ name parts: nothing composite or optional');
      assert.match(topic, /^[A-Za-z0-9_%/-]+$/, 'no dot, space or control character (NATS 2.9 refuses them), no * or > (NATS wildcards)');
    }
  }
});
