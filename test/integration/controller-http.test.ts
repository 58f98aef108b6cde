/**
 * The controller's HTTP server for real on 127.0.0.1:0: payloads signed so that the AGENT's
 * verifier accepts them (and refuses them tampered), token refusals, 404, the members API,
 * metrics and the admin terminate endpoint. The fleet tracker is a stand-in here
 * (controller-serve.test.ts runs the real one).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../agent/src/log';
import { loadPublicKey, verifySignature } from '../../agent/src/payload/signature';
import {
  CREDENTIAL_PATTERN, encodeInstanceId, INSTANCE_CREDENTIAL_HEADER, INSTANCE_ID_HEADER, PAYLOAD_SIGNATURE_HEADER, REFUSAL_HEADER,
} from '../../agent/src/protocol/payload-http';
import type { FleetRow } from '../../controller-stub/src/fleet';
import { ControllerHttp, type FleetView, type MembersResponse } from '../../controller-stub/src/http';
import { ControllerKeys } from '../../controller-stub/src/keys';
import { MemberStore } from '../../controller-stub/src/members';
import { issueToken } from '../../controller-stub/src/tokens';

const PAYLOAD = 'CLUSTER_ID=php.shop,MEMBER_ID=php.member-1,PORTS=80|443,DB_PASSWORD=s3cr3t\n';
let dir: string;
let keys: ControllerKeys;
let store: MemberStore;
let server: ControllerHttp;
let base: string;
let clock = Date.now();
const terminated: string[] = [];
const fleet: FleetView = {
  rows: (): FleetRow[] => [{
    clusterId: 'php.shop', memberId: 'php.member-1', state: 'ONLINE', lastSeen: 1, session: 2, load1: 0.1, memAvailPct: 50,
    firewall: 'enforce nft 3 rules', activated: true, unexpectedPorts: [], seqGaps: 0, lastEvent: 'activated',
  }],
  metrics: () => ({ membersByState: { ONLINE: 1, STALE: 0, OFFLINE: 0, GONE: 0, UNKNOWN: 0 }, reportsReceived: 17, eventsReceived: 2, lostSequenceNumbers: 3 }),
  terminate: async (id) => void terminated.push(`${id.clusterId}/${id.memberId}`),
};

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'controller-http-'));
  keys = await ControllerKeys.loadOrCreate(dir);
  store = new MemberStore(dir, keys.tokenSecret, { now: () => clock });
  server = new ControllerHttp({ store, keys, fleet, log: silentLogger(), now: () => clock });
  base = await server.listen('127.0.0.1', 0);
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(p: string): Promise<{ status: number; body: Buffer; sig: string | null; type: string | null }> {
  const res = await fetch(`${base}${p}`);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), sig: res.headers.get(PAYLOAD_SIGNATURE_HEADER), type: res.headers.get('content-type') };
}

test('payload: served byte-exact with a signature the agent verifies; tampering breaks it', async () => {
  const { token } = await store.register('php.shop', 'php.member-1', PAYLOAD, { ttlSeconds: 600, singleUse: false });
  const r = await get(`/payload/php.member-1?token=${token}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), PAYLOAD);
  assert.ok(r.sig);
  const agentKey = loadPublicKey(keys.publicKeyBase64(), () => Buffer.alloc(0));
  assert.equal(verifySignature(r.body, r.sig, agentKey), true, 'the agent accepts the signature');
  const tampered = Buffer.from(r.body.toString().replace('80|443', '80|443|22'));
  assert.equal(verifySignature(tampered, r.sig, agentKey), false, 'a changed body fails');
  const flipped = Buffer.from(r.body);
  flipped[0] = (flipped[0] as number) ^ 1;
  assert.equal(verifySignature(flipped, r.sig, agentKey), false, 'one flipped bit fails');
  // The PEM form of the key (payload.publicKey as a file path) verifies too.
  assert.equal(verifySignature(r.body, r.sig, loadPublicKey('/etc/k.pem', () => keys.publicKeyPem())), true);
  // Multi-use: a second fetch works too.
  assert.equal((await get(`/payload/php.member-1?token=${token}`)).status, 200);
});

test('payload: forged, wrong-member, expired, missing and malformed tokens are 403 saying why; unknown member 404', async () => {
  const { token } = await store.register('php.shop', 'php.member-1', PAYLOAD, { ttlSeconds: 600, singleUse: false });
  await store.register('php.shop', 'php.member-2', PAYLOAD.replace('member-1', 'member-2'), { ttlSeconds: 600, singleUse: false });
  const claims = { memberId: 'php.member-1', expiresAtS: Math.floor(clock / 1000) + 600, nonce: store.get('php.member-1')?.token.nonce as string };

  const forged = await get(`/payload/php.member-1?token=${issueToken(Buffer.alloc(32, 1), claims)}`);
  assert.equal(forged.status, 403);
  assert.match(forged.body.toString(), /^forbidden: forged:/);
  assert.equal(forged.sig, null, 'no signature on a refusal');

  const wrong = await get(`/payload/php.member-2?token=${token}`);
  assert.equal(wrong.status, 403);
  assert.match(wrong.body.toString(), /wrong-member/);

  assert.match((await get('/payload/php.member-1')).body.toString(), /token query parameter is missing/);
  assert.match((await get('/payload/php.member-1?token=garbage')).body.toString(), /malformed/);

  clock += 601_000;
  try {
    const expired = await get(`/payload/php.member-1?token=${token}`);
    assert.equal(expired.status, 403);
    assert.match(expired.body.toString(), /expired: the token expired at /);
    assert.doesNotMatch(expired.body.toString(), new RegExp(token.split('.')[1] as string), 'the token is not echoed');
  } finally {
    clock -= 601_000;
  }

  const unknown = await get(`/payload/php.member-9?token=${token}`);
  assert.equal(unknown.status, 404);
  assert.equal((await get('/nothing-here')).status, 404);
});

test('payload: a single-use token works once, then 403 reused; re-registering revokes old tokens', async () => {
  const { token } = await store.register('php.shop', 'php.member-1', PAYLOAD, { ttlSeconds: 600, singleUse: true });
  const results = await Promise.all([1, 2, 3].map(() => get(`/payload/php.member-1?token=${token}`)));
  assert.deepEqual(results.map((r) => r.status).sort(), [200, 403, 403], 'concurrent fetches: exactly one wins');
  const again = await get(`/payload/php.member-1?token=${token}`);
  assert.equal(again.status, 403);
  assert.match(again.body.toString(), /reused/);

  const fresh = await store.register('php.shop', 'php.member-1', PAYLOAD, { ttlSeconds: 600, singleUse: false });
  assert.equal((await get(`/payload/php.member-1?token=${fresh.token}`)).status, 200);
  assert.match((await get(`/payload/php.member-1?token=${token}`)).body.toString(), /revoked: the token was replaced/);
});

test('api/members: registrations joined with fleet rows, no payloads or tokens', async () => {
  const { token } = await store.register('php.shop', 'php.member-1', PAYLOAD, { ttlSeconds: 600, singleUse: false });
  const res = await fetch(`${base}/api/members`);
  assert.equal(res.status, 200);
  const text = await res.text();
  const body = JSON.parse(text) as MembersResponse;
  assert.equal(body.fleetTracking, true);
  const m1 = body.members.find((m) => m.memberId === 'php.member-1');
  assert.equal(m1?.state, 'ONLINE');
  assert.equal(m1?.fleet?.firewall, 'enforce nft 3 rules');
  assert.doesNotMatch(text, /s3cr3t/);
  assert.equal(text.includes(token.split('.')[1] as string), false);
  assert.equal(text.includes(store.get('php.member-1')?.token.nonce as string), false, 'nonces stay private');
});

test('metrics: fleet counters and payload results as Prometheus text', async () => {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /^cartridge_controller_members\{state="ONLINE"\} 1$/m);
  assert.match(text, /^cartridge_controller_reports_received_total 17$/m);
  assert.match(text, /^cartridge_controller_lost_sequence_numbers_total 3$/m);
  // Counts from the tests above (run in order): at least these refusals were seen.
  const count = (result: string) => Number(new RegExp(`payload_requests_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1]);
  assert.equal(count('forged'), 1);
  assert.equal(count('expired'), 1);
  assert.equal(count('unknown_member'), 1);
  assert.ok(count('ok') >= 4);
  assert.ok(count('reused') >= 3);
});

test('admin terminate: bearer admin token required; revokes the token and clears the fleet topics', async () => {
  const { token } = await store.register('php.shop', 'php.member-1', PAYLOAD, { ttlSeconds: 600, singleUse: false });
  const url = `${base}/api/members/php.shop/php.member-1/terminate`;
  assert.equal((await fetch(url, { method: 'POST' })).status, 401);
  assert.equal((await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${keys.adminToken}x` } })).status, 401);
  assert.equal((await fetch(url, { method: 'GET' })).status, 405);
  assert.equal(terminated.length, 0);

  const ok = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${keys.adminToken}` } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { clusterId: 'php.shop', memberId: 'php.member-1', tokenRevoked: true, retainedCleared: true });
  assert.deepEqual(terminated, ['php.shop/php.member-1']);
  const after = await get(`/payload/php.member-1?token=${token}`);
  assert.equal(after.status, 403);
  assert.match(after.body.toString(), /revoked: the member was terminated/);

  const missing = await fetch(`${base}/api/members/php.shop/nope/terminate`, { method: 'POST', headers: { authorization: `Bearer ${keys.adminToken}` } });
  assert.equal(missing.status, 404);
});

test('credentials: a token fetch naming its instance gets one; it admits that instance after the single-use token is spent, nobody else', async () => {
  const payload = PAYLOAD.replace(/member-1/g, 'member-3');
  const { token } = await store.register('php.shop', 'php.member-3', payload, { ttlSeconds: 600, singleUse: true });
  const url = `${base}/payload/php.member-3?token=${token}`;
  const fetchAs = (instanceId: string | null, credential?: string) =>
    fetch(url, { headers: { ...(instanceId !== null ? { [INSTANCE_ID_HEADER]: encodeInstanceId(instanceId) } : {}), ...(credential ? { authorization: `Bearer ${credential}` } : {}) } });

  const first = await fetchAs('i-0abc/1');
  assert.equal(first.status, 200);
  const credential = first.headers.get(INSTANCE_CREDENTIAL_HEADER);
  assert.match(credential ?? '', CREDENTIAL_PATTERN);
  assert.equal(readFileSync(store.file, 'utf8').includes(credential as string), false, 'stored hashed');

  const spent = await fetchAs('i-0abc/1');
  assert.equal(spent.status, 403, 'the token alone is spent');
  assert.equal(spent.headers.get(REFUSAL_HEADER), 'reused');

  const reboot = await fetchAs('i-0abc/1', credential as string);
  assert.equal(reboot.status, 200, 'the credential admits the instance it was issued to');
  assert.equal(await reboot.text(), payload);
  assert.ok(reboot.headers.get(PAYLOAD_SIGNATURE_HEADER));
  assert.equal(reboot.headers.get(INSTANCE_CREDENTIAL_HEADER), null, 'no new credential for a credential fetch');

  const stolen = await fetchAs('i-other', credential as string);
  assert.equal(stolen.status, 403);
  assert.equal(stolen.headers.get(REFUSAL_HEADER), 'wrong-instance');
  assert.match(await stolen.text(), /^forbidden: wrong-instance: the credential was issued to another instance of this member/);
  const anonymous = await fetchAs(null, credential as string);
  assert.equal(anonymous.headers.get(REFUSAL_HEADER), 'no-instance-id');

  // A forged credential admits nothing: the (spent) token decides, and the body says both.
  const forged = await fetchAs('i-0abc/1', `${(credential as string).startsWith('A') ? 'B' : 'A'}${(credential as string).slice(1)}`);
  assert.equal(forged.status, 403);
  assert.equal(forged.headers.get(REFUSAL_HEADER), 'reused');
  assert.match(await forged.text(), /reused: .*\(and the credential is not one this controller holds for php\.member-3\)/);
  const otherMember = await fetch(`${base}/payload/php.member-2?token=x`, { headers: { [INSTANCE_ID_HEADER]: 'i-0abc%2F1', authorization: `Bearer ${credential}` } });
  assert.equal(otherMember.status, 403, 'a credential is bound to its member');

  const term = await fetch(`${base}/api/members/php.shop/php.member-3/terminate`, { method: 'POST', headers: { authorization: `Bearer ${keys.adminToken}` } });
  assert.equal(term.status, 200);
  const revoked = await fetchAs('i-0abc/1', credential as string);
  assert.equal(revoked.status, 403);
  assert.equal(revoked.headers.get(REFUSAL_HEADER), 'revoked');
  assert.match(await revoked.text(), /revoked: the member was terminated; its instance credentials are revoked/);
  assert.doesNotMatch(await (await fetch(`${base}/metrics`)).text(), /result="wrong_instance"\} 0/);
});
