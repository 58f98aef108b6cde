import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  checkCredential, hashCredential, issueCredential, MAX_CREDENTIALS_PER_MEMBER, type CredentialRecord,
} from '../../controller-stub/src/credentials';
import { admitToken, decodeTokenClaims, issueToken, newNonce, verifyToken, type IssuedTokenState } from '../../controller-stub/src/tokens';

const secret = randomBytes(32);
const NOW = 1_800_000_000;
const claims = { memberId: 'php.member-1', expiresAtS: NOW + 600, nonce: newNonce() };
const state = (over: Partial<IssuedTokenState> = {}): IssuedTokenState => ({ nonce: claims.nonce, singleUse: false, usedAt: null, revokedAt: null, ...over });

test('tokens: the documented format, readable claims, member ids with dots', () => {
  const token = issueToken(secret, claims);
  const [body, sig] = token.split('.') as [string, string];
  assert.equal(token.split('.').length, 2);
  assert.equal(Buffer.from(body, 'base64url').toString(), `php.member-1.${NOW + 600}.${claims.nonce}`);
  assert.equal(sig, createHmac('sha256', secret).update(body).digest('base64url'));
  assert.deepEqual(decodeTokenClaims(token), claims);
  assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'URL-safe without escaping');
  const check = verifyToken(secret, token, { memberId: 'php.member-1', nowS: NOW });
  assert.deepEqual(check, { ok: true, claims });
});

test('tokens: forgery is refused (other secret, edited claims, edited MAC, junk)', () => {
  const token = issueToken(secret, claims);
  const expect = { memberId: 'php.member-1', nowS: NOW };
  assert.equal(verifyToken(randomBytes(32), token, expect).ok, false);
  const other = issueToken(randomBytes(32), claims);
  assert.deepEqual(verifyToken(secret, other, expect), { ok: false, reason: 'forged', detail: 'the token signature does not verify' });

  // Extend the expiry by re-encoding the claims but keeping the old MAC.
  const [, sig] = token.split('.') as [string, string];
  const longer = Buffer.from(`php.member-1.${NOW + 999_999}.${claims.nonce}`).toString('base64url');
  const extended = verifyToken(secret, `${longer}.${sig}`, expect);
  assert.equal(extended.ok, false);
  assert.equal(!extended.ok && extended.reason, 'forged');

  const flipped = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
  const f = verifyToken(secret, flipped, expect);
  assert.equal(!f.ok && f.reason, 'forged');

  for (const junk of ['', 'abc', 'a.b.c', '!!!.xyz', `${Buffer.from('no-fields').toString('base64url')}.${sig}`, 'x'.repeat(900)]) {
    const r = verifyToken(secret, junk, expect);
    assert.equal(!r.ok && r.reason, 'malformed', junk.slice(0, 20));
  }
});

test('tokens: expiry is exact to the second', () => {
  const token = issueToken(secret, claims);
  assert.equal(verifyToken(secret, token, { memberId: 'php.member-1', nowS: NOW + 599 }).ok, true);
  const r = verifyToken(secret, token, { memberId: 'php.member-1', nowS: NOW + 600 });
  assert.equal(!r.ok && r.reason, 'expired');
  assert.match(!r.ok ? r.detail : '', /expired at 2027-/);
});

test('tokens: a token for another member is refused even though it is genuine', () => {
  const token = issueToken(secret, claims);
  const r = verifyToken(secret, token, { memberId: 'php.member-2', nowS: NOW });
  assert.equal(!r.ok && r.reason, 'wrong-member');
  // A prefix of the id is not the id.
  const r2 = verifyToken(secret, token, { memberId: 'php.member', nowS: NOW });
  assert.equal(!r2.ok && r2.reason, 'wrong-member');
});

test('tokens: admit — reuse of a single-use token, revoked member, replaced token', () => {
  assert.equal(admitToken(claims, state()).ok, true);
  assert.equal(admitToken(claims, state({ singleUse: true })).ok, true, 'first use');
  const reused = admitToken(claims, state({ singleUse: true, usedAt: 123 }));
  assert.equal(!reused.ok && reused.reason, 'reused');
  assert.equal(admitToken(claims, state({ usedAt: 123 })).ok, true, 'multi-use tokens may be used again');
  const revoked = admitToken(claims, state({ revokedAt: 5 }));
  assert.equal(!revoked.ok && revoked.reason, 'revoked');
  const replaced = admitToken(claims, state({ nonce: newNonce() }));
  assert.equal(!replaced.ok && replaced.reason, 'revoked');
});

test('tokens: details never contain the token or its MAC', () => {
  const token = issueToken(secret, claims);
  const [, sig] = token.split('.') as [string, string];
  for (const r of [
    verifyToken(randomBytes(32), token, { memberId: 'php.member-1', nowS: NOW }),
    verifyToken(secret, token, { memberId: 'x', nowS: NOW }),
    verifyToken(secret, token, { memberId: 'php.member-1', nowS: NOW + 10_000 }),
  ]) {
    assert.equal(r.ok, false);
    assert.ok(!r.ok && !r.detail.includes(sig) && !r.detail.includes(token));
  }
});

test('tokens: issue refuses nonsense claims', () => {
  assert.throws(() => issueToken(secret, { ...claims, expiresAtS: 0 }), /expiry/);
  assert.throws(() => issueToken(secret, { ...claims, nonce: 'a.b' }), /nonce/);
  assert.throws(() => issueToken(secret, { ...claims, memberId: '' }), /member/);
});

// ------------------------------------------------------------ per-instance credentials

const member = (credentials: CredentialRecord[], terminatedAt: number | null = null) => ({ memberId: 'php.member-1', terminatedAt, credentials });

test('credentials: random, unrelated to the token, stored as a SHA-256 only', () => {
  const token = issueToken(secret, claims);
  const a = issueCredential([], 'i-1', 1000);
  const b = issueCredential([], 'i-1', 1000);
  assert.match(a.credential, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  assert.notEqual(a.credential, b.credential, 'two issues for the same member and instance differ');
  assert.equal(a.credential.includes(token.split('.')[1] as string), false);
  assert.deepEqual(a.records, [{ instanceId: 'i-1', sha256: hashCredential(a.credential), issuedAt: 1000 }]);
  assert.equal(JSON.stringify(a.records).includes(a.credential), false, 'the record does not hold the credential');
});

test('credentials: admitted for its member and instance; refused for another instance, after terminate, unknown or forged', () => {
  const one = issueCredential([], 'i-1', 1000);
  const two = issueCredential(one.records, 'i-2', 2000);
  const m = member(two.records);
  const ok = checkCredential(one.credential, 'i-1', m);
  assert.equal(ok.ok && ok.record.instanceId, 'i-1');
  assert.equal(checkCredential(two.credential, 'i-2', m).ok, true);

  const stolen = checkCredential(one.credential, 'i-2', m);
  assert.equal(!stolen.ok && stolen.reason, 'wrong-instance');
  const nobody = checkCredential(one.credential, 'i-9', m);
  assert.equal(!nobody.ok && nobody.reason, 'wrong-instance');
  const noId = checkCredential(one.credential, null, m);
  assert.equal(!noId.ok && noId.reason, 'no-instance-id');
  const revoked = checkCredential(one.credential, 'i-1', member(two.records, 5));
  assert.equal(!revoked.ok && revoked.reason, 'revoked');

  // Forged: well-formed but never issued; one character changed; another member's; junk.
  const flipped = (one.credential.startsWith('A') ? 'B' : 'A') + one.credential.slice(1);
  for (const forged of [issueCredential([], 'i-1', 1).credential, flipped, '', 'x'.repeat(5000), `${one.credential}=`]) {
    const r = checkCredential(forged, 'i-1', m);
    assert.equal(!r.ok && r.reason, 'unknown-credential', forged.slice(0, 12));
    assert.ok(!r.ok && !r.detail.includes(one.credential));
  }
  assert.equal(checkCredential(one.credential, 'i-1', member([])).ok, false, 'a store that lost it does not admit it');
});

test('credentials: re-issue for an instance replaces its old one; the oldest go past the limit', () => {
  const first = issueCredential([], 'i-1', 1);
  const again = issueCredential(first.records, 'i-1', 2);
  assert.equal(again.records.length, 1);
  assert.equal(checkCredential(first.credential, 'i-1', member(again.records)).ok, false, 'the earlier credential of the instance is dead');
  assert.equal(checkCredential(again.credential, 'i-1', member(again.records)).ok, true);

  let records = again.records;
  for (let i = 2; i <= MAX_CREDENTIALS_PER_MEMBER + 1; i++) records = issueCredential(records, `i-${i}`, 10 + i).records;
  assert.equal(records.length, MAX_CREDENTIALS_PER_MEMBER);
  assert.equal(records.some((r) => r.instanceId === 'i-1'), false, 'the oldest was dropped');
});
