/** The MQTT wire contract: topics, ids, builders, Stratos events, validators (id encoding: protocol-id-level.test.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildBirth, buildEvent, buildOffline, buildStratosEvent, fleetFilter, memberIdFromPayload, memberTopic, memberTopics,
  parseLifecycleEvent, parseMemberTopic, parseStatusMessage, statusSupersedes, STRATOS_EVENT_FOR, stratosTopic,
  WireFormatError,
} from '../../agent/src/protocol/mqtt';

test('ids: Stratos keys exactly as given, and fallbacks', () => {
  assert.deepEqual(memberIdFromPayload(new Map([['CLUSTER_ID', 'php.my.domain'], ['MEMBER_ID', 'php.member-1'], ['INSTANCE_ID', 'i-1']]), 'ptr'), { clusterId: 'php.my.domain', memberId: 'php.member-1' });
  assert.deepEqual(memberIdFromPayload(new Map([['INSTANCE_ID', 'i-1']]), 'ptr'), { clusterId: 'default', memberId: 'i-1' });
  assert.deepEqual(memberIdFromPayload(new Map(), 'iid-42'), { clusterId: 'default', memberId: 'iid-42' });
  assert.deepEqual(memberIdFromPayload(new Map(), ''), { clusterId: 'default', memberId: 'unknown' });
  // Not sanitised any more (a/b+c#d used to become a_b_c_d, colliding with the id a_b_c_d): the topic encodes it.
  assert.deepEqual(memberIdFromPayload(new Map([['CLUSTER_ID', 'a/b+c#d'], ['MEMBER_ID', '  ']]), 'x/y'), { clusterId: 'a/b+c#d', memberId: 'x/y' });
  assert.deepEqual(memberIdFromPayload(new Map([['CLUSTER_ID', ' c '], ['MEMBER_ID', 'm 1']]), 'i'), { clusterId: ' c ', memberId: 'm 1' });
});

test('topics: build and parse back; filters', () => {
  const id = { clusterId: 'c1', memberId: 'm1' };
  assert.equal(memberTopic('cartridge/v1', id, 'status'), 'cartridge/v1/c1/m1/status');
  assert.deepEqual(memberTopics('p', id), { status: 'p/c1/m1/status', health: 'p/c1/m1/health', event: 'p/c1/m1/event' });
  assert.deepEqual(parseMemberTopic('cartridge/v1', 'cartridge/v1/c1/m1/health'), { clusterId: 'c1', memberId: 'm1', channel: 'health' });
  assert.equal(parseMemberTopic('cartridge/v1', 'cartridge/v1/c1/m1/other'), null);
  assert.equal(parseMemberTopic('cartridge/v1', 'cartridge/v1/c1/m1/status/x'), null);
  assert.equal(parseMemberTopic('cartridge/v1', 'other/c1/m1/status'), null);
  assert.equal(fleetFilter('cartridge/v1', 'status'), 'cartridge/v1/+/+/status');
});

test('builders and the status validator round-trip', () => {
  const birth = buildBirth(42, 1000, '1.2.3', 15);
  assert.deepEqual(birth, { v: 1, state: 'online', session: 42, ts: 1000, agent: '1.2.3', intervalS: 15 });
  assert.deepEqual(parseStatusMessage('t', JSON.stringify(birth)), birth);
  const will = buildOffline(42, 1000, 'lwt');
  assert.deepEqual(parseStatusMessage('t', Buffer.from(JSON.stringify(will))), will);
  assert.equal(parseStatusMessage('t', ''), null, 'empty retained = cleared');
  assert.deepEqual(buildEvent(1, 2, 3, 'fault', 'port 80 never opened'), { v: 1, session: 1, seq: 2, ts: 3, type: 'fault', reason: 'port 80 never opened' });
  assert.equal('reason' in buildEvent(1, 2, 3, 'started'), false);
  assert.equal(parseLifecycleEvent('t', JSON.stringify(buildEvent(1, 2, 3, 'activated'))).type, 'activated');
});

test('the status validator names the field and the topic', () => {
  const bad: Array<[string, RegExp]> = [
    ['{', /^t\/s: not JSON/],
    ['[]', /not a JSON object/],
    ['{"v":2,"state":"online","session":1,"ts":1}', /unsupported wire version 2/],
    ['{"v":1,"state":"maybe","session":1,"ts":1}', /field "state" must be "online" or "offline", got "maybe"/],
    ['{"v":1,"state":"online","session":-1,"ts":1}', /field "session" must be a non-negative integer/],
    ['{"v":1,"state":"online","session":1}', /field "ts" must be epoch milliseconds, got nothing/],
    ['{"v":1,"state":"offline","session":1,"ts":1,"cause":"crash"}', /field "cause"/],
  ];
  for (const [body, re] of bad) assert.throws(() => parseStatusMessage('t/s', body), (e: Error) => e instanceof WireFormatError && re.test(e.message), body);
  assert.throws(() => parseLifecycleEvent('t', '{"v":1,"session":1,"seq":1,"ts":1,"type":"exploded"}'), /field "type" must be one of started/);
});

test('statusSupersedes: newer session wins; an old will never overrides a newer birth', () => {
  const on5 = buildBirth(5, 1, 'a', 15);
  assert.equal(statusSupersedes(on5, buildOffline(4, 9, 'lwt')), false);
  assert.equal(statusSupersedes(on5, buildOffline(5, 9, 'lwt')), true);
  assert.equal(statusSupersedes(on5, buildBirth(6, 0, 'a', 15)), true);
  assert.equal(statusSupersedes(buildOffline(5, 1, 'shutdown'), buildBirth(5, 2, 'a', 15)), false, 'a session does not come back after its death');
  assert.equal(statusSupersedes(null, on5), true);
});

test('Stratos events: topics and exact JSON fields, applicationId only on started', () => {
  const vars = new Map([
    ['APPLICATION_ID', 'app1'], ['SERVICE_NAME', 'php'], ['CLUSTER_ID', 'php.c1'], ['CLUSTER_INSTANCE_ID', 'ci1'], ['MEMBER_ID', 'php.m/1'],
    ['INSTANCE_ID', 'i-1'], ['NETWORK_PARTITION_ID', 'np1'], ['PARTITION_ID', 'p1'], ['OTHER', 'x'],
  ]);
  assert.equal(stratosTopic('InstanceStartedEvent'), 'instance/status/InstanceStartedEvent');
  assert.deepEqual(Object.keys(buildStratosEvent('InstanceStartedEvent', vars)), ['applicationId', 'serviceName', 'clusterId', 'clusterInstanceId', 'memberId', 'instanceId', 'networkPartitionId', 'partitionId']);
  assert.deepEqual(buildStratosEvent('InstanceActivatedEvent', vars), {
    serviceName: 'php', clusterId: 'php.c1', clusterInstanceId: 'ci1', memberId: 'php.m/1', instanceId: 'i-1', networkPartitionId: 'np1', partitionId: 'p1',
  });
  assert.equal(buildStratosEvent('InstanceMaintenanceModeEvent', new Map()).serviceName, '');
  assert.deepEqual(STRATOS_EVENT_FOR, { started: 'InstanceStartedEvent', activated: 'InstanceActivatedEvent', 'ready-to-shutdown': 'InstanceReadyToShutdownEvent', maintenance: 'InstanceMaintenanceModeEvent' });
});
