/** Pure renderers of the controller: Prometheus text, the fleet table, the members join. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FleetRow } from '../../controller-stub/src/fleet';
import { ago, renderFleetTable } from '../../controller-stub/src/fleet-table';
import { joinMembers } from '../../controller-stub/src/http';
import type { MemberRecord } from '../../controller-stub/src/members';
import { newPayloadCounters, renderMetrics } from '../../controller-stub/src/metrics';

const row = (over: Partial<FleetRow>): FleetRow => ({
  clusterId: 'c', memberId: 'm1', state: 'ONLINE', lastSeen: 1_000_000, session: 1, load1: 0.5, memAvailPct: 61.6, firewall: 'enforce nft 15 rules',
  activated: true, unexpectedPorts: [], seqGaps: 0, lastEvent: 'activated', ...over,
});
const record = (memberId: string, over: Partial<MemberRecord> = {}): MemberRecord => ({
  clusterId: 'c', memberId, payload: 'A=1', format: 'dotenv', registeredAt: 5, terminatedAt: null, credentials: [],
  token: { nonce: 'n', expiresAtS: 100, singleUse: false, usedAt: null }, ...over,
});

test('metrics: Prometheus families with HELP/TYPE, every label present, values from the input', () => {
  const payloadRequests = { ...newPayloadCounters(), ok: 3, expired: 2 };
  const text = renderMetrics({
    build: { version: '1.2.3', node: 'v18.19.0' },
    fleet: { membersByState: { ONLINE: 4, STALE: 1, OFFLINE: 0, GONE: 2, UNKNOWN: 0 }, reportsReceived: 1234, eventsReceived: 9, lostSequenceNumbers: 7 },
    registered: { active: 5, terminated: 2 },
    payloadRequests,
  });
  assert.match(text, /^# HELP cartridge_controller_members .+\n# TYPE cartridge_controller_members gauge\n/m);
  assert.match(text, /^cartridge_controller_members\{state="ONLINE"\} 4$/m);
  assert.match(text, /^# TYPE cartridge_controller_build_info gauge\ncartridge_controller_build_info\{version="1\.2\.3",node="v18\.19\.0"\} 1$/m);
  assert.match(text, /^cartridge_controller_members\{state="STALE"\} 1$/m);
  assert.match(text, /^cartridge_controller_reports_received_total 1234$/m);
  assert.match(text, /^cartridge_controller_lost_sequence_numbers_total 7$/m);
  assert.match(text, /^cartridge_controller_payload_requests_total\{result="expired"\} 2$/m);
  assert.match(text, /^cartridge_controller_payload_requests_total\{result="forged"\} 0$/m);
  assert.match(text, /^cartridge_controller_registered_members\{status="terminated"\} 2$/m);
  assert.ok(text.endsWith('\n'));
  // Every sample line is `name{labels} number`.
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) assert.match(line, /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \d+$/, line);
  const noFleet = renderMetrics({ build: { version: 'dev', node: 'v20' }, fleet: null, registered: { active: 0, terminated: 0 }, payloadRequests: newPayloadCounters() });
  assert.doesNotMatch(noFleet, /reports_received/);
});

test('joinMembers: registered + reporting, terminated is GONE, unregistered reporters listed', () => {
  const views = joinMembers(
    [record('m2'), record('m1'), record('m3', { terminatedAt: 9 })],
    [row({ memberId: 'm1', state: 'STALE' }), row({ memberId: 'm3', state: 'ONLINE' }), row({ clusterId: 'b', memberId: 'stray' })],
  );
  assert.deepEqual(views.map((v) => [v.clusterId, v.memberId, v.state, v.registration !== null]), [
    ['b', 'stray', 'ONLINE', false], ['c', 'm1', 'STALE', true], ['c', 'm2', 'UNKNOWN', true], ['c', 'm3', 'GONE', true],
  ]);
  assert.equal(views[1]?.registration?.tokenExpiresAt, 100_000);
  assert.equal(JSON.stringify(views).includes('A=1'), false, 'payloads never leave through the API');
});

test('fleet table: columns, values and placeholders', () => {
  const now = 1_000_000 + 12_000;
  const text = renderFleetTable({
    fleetTracking: true,
    members: joinMembers([record('m1'), record('m2')], [row({ unexpectedPorts: [8080, 9000] }), row({ memberId: 'm2', state: 'OFFLINE', activated: false, load1: null, memAvailPct: null, firewall: null })]),
  }, now);
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^CLUSTER\s+MEMBER\s+STATE\s+LAST SEEN\s+LOAD\s+MEM FREE\s+FIREWALL\s+ACTIVATED\s+UNEXPECTED PORTS$/);
  assert.match(lines[1] ?? '', /^c\s+m1\s+ONLINE\s+12s ago\s+0\.50\s+62%\s+enforce nft 15 rules\s+yes\s+8080,9000$/);
  assert.match(lines[2] ?? '', /^c\s+m2\s+OFFLINE\s+12s ago\s+-\s+-\s+-\s+no\s+-$/);
  // Columns line up: STATE starts at the same offset on every line.
  assert.equal(new Set(lines.map((l) => l.search(/ONLINE|OFFLINE|STATE/))).size, 1);
  assert.equal(renderFleetTable({ fleetTracking: true, members: [] }, now), 'no members registered or reporting\n');
  assert.equal(ago(null, now), 'never');
  assert.equal(ago(now - 3 * 3600_000, now), '3h ago');
});
