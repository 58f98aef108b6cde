/** The agent's instance credential (pure parts): headers, the origin rule, the file format, the consumed-token rule. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { silentLogger } from '../../agent/src/log';
import {
  CredentialFile, credentialGuard, credentialProblem, pointerUrlDigest, spentByThisInstance,
} from '../../agent/src/payload/credential';
import { decodeInstanceId, encodeInstanceId, parseRefusal } from '../../agent/src/protocol/payload-http';

const CRED = 'A'.repeat(43);
const URL1 = 'https://ctl.example:8443/payload/php.member-1?token=abc.def';
const identity = { instanceId: 'i-0abc', credential: { origin: 'https://ctl.example:8443', credential: CRED } };

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test('guard: the instance id always, the credential only to its own origin', () => {
  assert.deepEqual(credentialGuard(URL1, identity).headers, { 'X-Cartridge-Instance-Id': 'i-0abc', Authorization: `Bearer ${CRED}` });
  for (const other of [
    'http://ctl.example:8443/payload/x?token=t', // scheme
    'https://ctl.example/payload/x?token=t', // port
    'https://evil.ctl.example:8443/payload/x', // subdomain
    'https://ctl.example.evil:8443/payload/x',
  ]) {
    assert.deepEqual(credentialGuard(other, identity).headers, { 'X-Cartridge-Instance-Id': 'i-0abc' }, other);
  }
  assert.deepEqual(credentialGuard(URL1, undefined).headers, {}, 'no identity, no headers');
  assert.equal(credentialGuard(URL1, { instanceId: 'a/b c' }).headers['X-Cartridge-Instance-Id'], 'a%2Fb%20c');
  // Default ports are the same origin as no port.
  assert.ok(credentialGuard('https://h:443/p', { instanceId: 'i', credential: { origin: 'https://h', credential: CRED } }).headers.Authorization);
});

test('guard: redirects keep the credential on its origin only, and never after leaving it once', () => {
  const g = credentialGuard(URL1, identity);
  const hop = (href: string, headers: Record<string, unknown> = { authorization: `Bearer ${CRED}`, accept: '*/*' }) => {
    const options = { href, headers };
    g.onRedirect(options);
    return options.headers;
  };
  assert.equal(hop('https://ctl.example:8443/payload/v2', {}).Authorization, `Bearer ${CRED}`, 'same origin: restored even if the library dropped it');
  assert.equal(g.accept('B'.repeat(43)), 'B'.repeat(43), 'still on origin: an issued credential is taken');
  const away = hop('https://sub.ctl.example:8443/p');
  assert.equal(away.authorization, undefined, 'a subdomain is another origin (follow-redirects would keep it)');
  assert.equal(away.Authorization, undefined);
  assert.equal(away.accept, '*/*', 'other headers untouched');
  assert.equal(hop('https://ctl.example:8443/back').Authorization, undefined, 'back on the origin after leaving: not sent');
  assert.equal(g.accept('B'.repeat(43)), undefined, 'a credential from an answer that left the origin is not taken');
});

test('guard: only well-formed credentials are accepted, and only with an identity', () => {
  const g = credentialGuard(URL1, identity);
  assert.equal(g.accept(undefined), undefined);
  assert.equal(g.accept('short'), undefined);
  assert.equal(g.accept(`${'A'.repeat(42)}+`), undefined);
  assert.equal(g.accept(` ${CRED} `), CRED);
  assert.equal(credentialGuard(URL1, undefined).accept(CRED), undefined);
});

test('protocol: instance id header round trip, bounded; refusal words only', () => {
  for (const id of ['i-0abc', 'url-0123456789abcdef', '8a3c…/ü', 'x'.repeat(255)]) assert.equal(decodeInstanceId(encodeInstanceId(id)), id);
  for (const bad of [undefined, '', '%E0%A4%A', encodeInstanceId('x'.repeat(256)), '%0A', ['a', 'b']]) assert.equal(decodeInstanceId(bad), null, String(bad));
  assert.equal(parseRefusal(' Reused '), 'reused');
  assert.equal(parseRefusal('wrong-instance'), 'wrong-instance');
  for (const bad of [undefined, '', 'reused; rm -rf', 'x'.repeat(70), '-x']) assert.equal(parseRefusal(bad), null, String(bad));
});

test('credential file: round trip, 0600, validated; another instance or damage is not used', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'credential-'));
  dirs.push(dir);
  const file = new CredentialFile(path.join(dir, 'credential.json'), silentLogger());
  assert.equal(await file.load('i-0abc'), null, 'none yet');
  await file.save('i-0abc', URL1, CRED, new Date('2030-01-02T03:04:05Z'));
  assert.equal(statSync(file.file).mode & 0o777, 0o600);
  const text = readFileSync(file.file, 'utf8');
  assert.doesNotMatch(text, /token|abc\.def/, 'neither the token nor the URL is stored');
  assert.deepEqual(await file.load('i-0abc'), { instanceId: 'i-0abc', origin: 'https://ctl.example:8443', credential: CRED, savedAt: '2030-01-02T03:04:05.000Z' });
  assert.equal(await file.load('i-other'), null, 'a cloned image does not use the original instance credential');

  for (const damaged of ['{', '[]', '{"version":2}', JSON.stringify({ ...JSON.parse(text), credential: 'x' }), JSON.stringify({ ...JSON.parse(text), origin: 'https://h/path' })]) {
    if (damaged !== '{') assert.notEqual(credentialProblem(JSON.parse(damaged)), null, damaged);
    writeFileSync(file.file, damaged);
    assert.equal(await file.load('i-0abc'), null);
  }
});

test('consumed-token rule: every URL refused as reused and the cache came from one of them', () => {
  const d1 = pointerUrlDigest(URL1);
  const d2 = pointerUrlDigest(`${URL1}x`);
  assert.match(d1, /^[0-9a-f]{64}$/);
  assert.equal(spentByThisInstance([{ urlDigest: d1, refusal: 'reused' }], d1), true);
  assert.equal(spentByThisInstance([{ urlDigest: d1, refusal: 'reused' }, { urlDigest: d2, refusal: 'reused' }], d2), true, 'mirrors');
  assert.equal(spentByThisInstance([{ urlDigest: d1, refusal: 'reused' }], d2), false, 'the cache came from another URL');
  assert.equal(spentByThisInstance([{ urlDigest: d1, refusal: 'reused' }], undefined), false, 'a cache entry without a URL digest (inline or older)');
  for (const refusal of ['revoked', 'expired', 'wrong-instance', 'forged', null]) {
    assert.equal(spentByThisInstance([{ urlDigest: d1, refusal }], d1), false, String(refusal));
  }
  assert.equal(spentByThisInstance([{ urlDigest: d1, refusal: 'reused' }, { urlDigest: d2, refusal: 'revoked' }], d1), false, 'any other refusal stays terminal');
  assert.equal(spentByThisInstance([], d1), false);
});
