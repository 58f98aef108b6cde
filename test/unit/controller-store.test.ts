/** The member store (members.json), the payload checks at register, and the key files. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadPublicKey, verifySignature } from '../../agent/src/payload/signature';
import { ControllerError, ControllerExit } from '../../controller-stub/src/errors';
import { ControllerKeys, SIGNING_KEY_FILE } from '../../controller-stub/src/keys';
import { payloadFromAssignments, preparePayload } from '../../controller-stub/src/member-payload';
import { MemberStore, MEMBERS_FILE } from '../../controller-stub/src/members';
import { verifyToken } from '../../controller-stub/src/tokens';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'controller-store-'));
  dirs.push(d);
  return d;
}
const secret = Buffer.alloc(32, 7);
const PAYLOAD = 'CLUSTER_ID=php.shop,MEMBER_ID=m1,PORTS=80|443,DB_PASSWORD=s3cr3t\n';
const opts = { ttlSeconds: 3600, singleUse: false };
/** A token fetch without an instance id: spends a single-use token, issues no credential. */
const spend = (s: MemberStore, memberId: string, nonce: string) => s.recordTokenFetch(memberId, nonce, null).then((r) => r.admitted);
const exitOf = (code: number) => (err: unknown) => err instanceof ControllerError && err.exitCode === code;

test('store: register persists the member (0600 file), issues a verifiable token, survives a new instance', async () => {
  const dir = tempDir();
  let now = 1_800_000_000_000;
  const store = new MemberStore(dir, secret, { now: () => now });
  const reg = await store.register('php.shop', 'm1', PAYLOAD, opts);
  assert.equal(reg.replaced, false);
  assert.equal(reg.record.format, 'launch-params');
  assert.equal(reg.record.token.expiresAtS, 1_800_000_000 + 3600);
  const check = verifyToken(secret, reg.token, { memberId: 'm1', nowS: 1_800_000_000 });
  assert.ok(check.ok && check.claims.nonce === reg.record.token.nonce);

  const file = path.join(dir, MEMBERS_FILE);
  assert.equal(statSync(file).mode & 0o777, 0o600, 'payloads hold secrets');
  assert.doesNotMatch(readFileSync(file, 'utf8'), new RegExp(reg.token.split('.')[1] as string), 'the token itself is not stored');

  const again = new MemberStore(dir, secret);
  assert.deepEqual(again.get('m1'), reg.record);
  assert.equal(again.find('php.shop', 'm1')?.payload, PAYLOAD);
  assert.equal(again.find('other', 'm1'), undefined);
  assert.equal(again.get('nope'), undefined);

  // Re-register: new token, old one's nonce no longer current.
  now += 1000;
  const second = await store.register('php.shop', 'm1', PAYLOAD.replace('80|443', '8080'), opts);
  assert.equal(second.replaced, true);
  assert.notEqual(second.record.token.nonce, reg.record.token.nonce);
  assert.match(again.get('m1')?.payload ?? '', /8080/, 'the other instance sees the change');
});

test('store: member ids are unique across clusters', async () => {
  const store = new MemberStore(tempDir(), secret);
  await store.register('php.shop', 'm1', PAYLOAD, opts);
  await assert.rejects(store.register('other', 'm1', 'CLUSTER_ID=other,MEMBER_ID=m1\n', opts), /already registered in cluster php\.shop/);
});

test('store: single-use tokens are spent once, also across store instances', async () => {
  const dir = tempDir();
  const a = new MemberStore(dir, secret);
  const b = new MemberStore(dir, secret);
  const reg = await a.register('php.shop', 'm1', PAYLOAD, { ttlSeconds: 60, singleUse: true });
  const results = await Promise.all([spend(a, 'm1', reg.record.token.nonce), spend(b, 'm1', reg.record.token.nonce), spend(a, 'm1', reg.record.token.nonce)]);
  assert.deepEqual(results.filter(Boolean).length, 1, `exactly one use wins: ${results}`);
  assert.notEqual(new MemberStore(dir, secret).get('m1')?.token.usedAt, null);
  assert.equal(await spend(a, 'm1', 'some-other-nonce'), false);
  assert.equal(await spend(a, 'nope', reg.record.token.nonce), false);
});

test('store: concurrent registers from two instances lose nothing (lock file)', async () => {
  const dir = tempDir();
  const a = new MemberStore(dir, secret);
  const b = new MemberStore(dir, secret);
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).register('c', `m${i}`, `CLUSTER_ID=c\nMEMBER_ID=m${i}\n`, opts)),
  );
  assert.equal(new MemberStore(dir, secret).list().length, 20);
  assert.deepEqual(a.list().map((m) => m.memberId), [...Array.from({ length: 20 }, (_, i) => `m${i}`)].sort());
});

test('store: a stale lock of a dead process is broken; terminate marks the member; unknown is NOT_FOUND', async () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, `${MEMBERS_FILE}.lock`), '999999999');
  const store = new MemberStore(dir, secret, { now: () => 42 });
  await store.register('php.shop', 'm1', PAYLOAD, opts);
  const t = await store.terminate('php.shop', 'm1');
  assert.equal(t.terminatedAt, 42);
  assert.equal(store.get('m1')?.terminatedAt, 42);
  assert.equal(await spend(store, 'm1', t.token.nonce), false, 'a terminated member spends nothing');
  await assert.rejects(store.terminate('other', 'm1'), exitOf(ControllerExit.NOT_FOUND));
  await assert.rejects(store.terminate('php.shop', 'nope'), /no member php\.shop\/nope is registered/);
});

test('store: a corrupt members.json is a STATE error naming the file', () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, MEMBERS_FILE), '{"version":1,"members":[{"memberId":"x"}]}');
  assert.throws(() => new MemberStore(dir, secret).list(), (e: unknown) => exitOf(ControllerExit.STATE)(e) && /members\.json: member #1 is incomplete/.test((e as Error).message));
  writeFileSync(path.join(dir, MEMBERS_FILE), 'nope');
  assert.throws(() => new MemberStore(dir, secret).list(), /members\.json is not valid JSON/);
});

test('store: a token fetch naming its instance records a credential (hash only, on disk); terminate and re-register revoke it', async () => {
  const dir = tempDir();
  const store = new MemberStore(dir, secret, { now: () => 77 });
  const reg = await store.register('php.shop', 'm1', PAYLOAD, { ttlSeconds: 60, singleUse: true });
  const got = await store.recordTokenFetch('m1', reg.record.token.nonce, 'i-1');
  assert.equal(got.admitted, true);
  assert.match(got.credential ?? '', /^[A-Za-z0-9_-]{43}$/);
  const onDisk = readFileSync(path.join(dir, MEMBERS_FILE), 'utf8');
  assert.equal(onDisk.includes(got.credential as string), false, 'members.json holds no credential');
  const reloaded = new MemberStore(dir, secret).get('m1');
  assert.deepEqual(reloaded?.credentials.map((c) => [c.instanceId, c.issuedAt]), [['i-1', 77]]);
  assert.equal(reloaded?.token.usedAt, 77, 'the single-use token was spent in the same change');
  assert.deepEqual(await store.recordTokenFetch('m1', reg.record.token.nonce, 'i-2'), { admitted: false, credential: null }, 'a spent token issues nothing');

  await store.terminate('php.shop', 'm1');
  assert.deepEqual(store.get('m1')?.credentials, [], 'terminate drops every credential');

  const multi = await store.register('php.shop', 'm1', PAYLOAD, opts);
  assert.ok((await store.recordTokenFetch('m1', multi.record.token.nonce, 'i-1')).credential, 'multi-use tokens issue credentials too');
  await store.register('php.shop', 'm1', PAYLOAD, opts);
  assert.deepEqual(store.get('m1')?.credentials, [], 're-registering replaces the token and its credentials');
});

test('store: members.json from before credentials loads; a damaged credentials list is a STATE error', () => {
  const dir = tempDir();
  const member = { clusterId: 'c', memberId: 'm1', payload: 'X=1', format: 'dotenv', registeredAt: 1, terminatedAt: null, token: { nonce: 'n', expiresAtS: 9, singleUse: false, usedAt: null } };
  writeFileSync(path.join(dir, MEMBERS_FILE), JSON.stringify({ version: 1, members: [member] }));
  assert.deepEqual(new MemberStore(dir, secret).get('m1')?.credentials, []);
  writeFileSync(path.join(dir, MEMBERS_FILE), JSON.stringify({ version: 1, members: [{ ...member, credentials: [{ instanceId: 'i', sha256: 'zz', issuedAt: 1 }] }] }));
  assert.throws(() => new MemberStore(dir, secret).list(), (e: unknown) => exitOf(ControllerExit.STATE)(e) && /member #1 \(m1\) has a damaged credentials list/.test((e as Error).message));
});

test('register: the agent\'s parser refuses bad payloads with its own error; ids must match the payload', async () => {
  const store = new MemberStore(tempDir(), secret);
  await assert.rejects(store.register('c', 'm1', 'CLUSTER_ID=c,MEMBER_ID=m1,LD_PRELOAD=/x.so\n', opts), (e: unknown) =>
    exitOf(ControllerExit.PAYLOAD)(e) && /the agent would refuse this payload: .*LD_PRELOAD/.test((e as Error).message));
  await assert.rejects(store.register('c', 'm1', '{"CLUSTER_ID": "c", "MEMBER_ID": "m1", "bad-name": "x"}', opts), /agent would refuse/);
  await assert.rejects(store.register('c', 'm1', 'CLUSTER_ID=c,MEMBER_ID=m2\n', opts), /report as c\/m2, not c\/m1/);
  await assert.rejects(store.register('c', 'bad/id', 'X=1\n', opts), /--member "bad\/id" is not a valid id/);
  await assert.rejects(store.register('c', 'm1', PAYLOAD, { ttlSeconds: 0, singleUse: false }), exitOf(ControllerExit.USAGE));
  // allowNames passes through to the agent's validator.
  const ok = await store.register('c', 'm1', 'CLUSTER_ID=c,MEMBER_ID=m1,PATH=/opt/bin\n', { ...opts, allowNames: ['PATH'] });
  assert.equal(ok.record.format, 'launch-params');
  assert.equal(store.list().length, 1, 'refused registrations stored nothing');
});

test('payloadFromAssignments: JSON, values byte-exact, ids added, errors name the flag', () => {
  const text = payloadFromAssignments(['PORTS=80|443', 'DSN=a=b,c "q"\\n', 'EMPTY='], 'php.shop', 'm1');
  assert.deepEqual(JSON.parse(text), { CLUSTER_ID: 'php.shop', MEMBER_ID: 'm1', PORTS: '80|443', DSN: 'a=b,c "q"\\n', EMPTY: '' });
  assert.equal(preparePayload(text, 'php.shop', 'm1').format, 'json');
  assert.deepEqual(Object.keys(JSON.parse(payloadFromAssignments(['MEMBER_ID=m1', 'CLUSTER_ID=x'], 'x', 'm1'))), ['MEMBER_ID', 'CLUSTER_ID']);
  assert.throws(() => payloadFromAssignments(['NOEQUALS'], 'c', 'm'), /--set "NOEQUALS": expected KEY=VALUE/);
  assert.throws(() => payloadFromAssignments(['A=1', 'A=2'], 'c', 'm'), /--set A is given twice/);
});

test('keys: created once 0600, the same on reload, signatures verify with the agent\'s loader', async () => {
  const dir = path.join(tempDir(), 'state');
  const [k1, k2] = await Promise.all([ControllerKeys.loadOrCreate(dir), ControllerKeys.loadOrCreate(dir)]);
  assert.equal(k1.publicKeyBase64(), k2.publicKeyBase64(), 'concurrent first runs agree on one key');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  for (const f of ['signing-key.pem', 'token-secret', 'admin-token']) assert.equal(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  const k3 = await ControllerKeys.loadOrCreate(dir);
  assert.equal(k3.publicKeyBase64(), k1.publicKeyBase64());
  assert.deepEqual(k3.tokenSecret, k1.tokenSecret);
  assert.equal(k3.adminToken, k1.adminToken);

  const body = Buffer.from('A=1\n');
  const pub = loadPublicKey(k1.publicKeyBase64(), () => '');
  assert.equal(verifySignature(body, k3.sign(body), pub), true);
  assert.equal(verifySignature(Buffer.from('A=2\n'), k3.sign(body), pub), false);
  const pemKey = loadPublicKey('/k.pem', () => k1.publicKeyPem());
  assert.equal(verifySignature(body, k1.sign(body), pemKey), true);

  chmodSync(path.join(dir, SIGNING_KEY_FILE), 0o644);
  await assert.rejects(ControllerKeys.loadOrCreate(dir), (e: unknown) => exitOf(ControllerExit.STATE)(e) && /mode 644.*chmod 600/.test((e as Error).message));
});
