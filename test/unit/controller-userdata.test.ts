/** The controller's personality and user-data writers, read back with the AGENT's own decoders. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeUserData } from '../../agent/src/payload/userdata';
import { parsePersonalityContent, PERSONALITY_MAX_BYTES } from '../../agent/src/sources/personality';
import { ControllerError } from '../../controller-stub/src/errors';
import { mimeUserData, payloadUrl, personalityContent, plainUserData } from '../../controller-stub/src/userdata';

const URL_ = 'https://controller.example:8443/payload/php.member-1?token=bTEuMTc5NTkyODUxNi5ROEdh.ctdq0q59ZJ0pc2XG';
const limits = { maxBytes: 1024 * 1024 };

test('payloadUrl: base URL with or without a path prefix, member id escaped, token as query', () => {
  assert.equal(payloadUrl('http://10.0.0.1:8080', 'm1', 'a.b'), 'http://10.0.0.1:8080/payload/m1?token=a.b');
  assert.equal(payloadUrl('https://c.example/ctl/', 'php.member-1', 't'), 'https://c.example/ctl/payload/php.member-1?token=t');
  assert.equal(payloadUrl('http://c', 'a:b@c', 't'), 'http://c/payload/a%3Ab%40c?token=t');
  assert.throws(() => payloadUrl('ftp://c', 'm', 't'), /http\(s\)/);
  assert.throws(() => payloadUrl('not a url', 'm', 't'), /not a URL/);
  assert.throws(() => payloadUrl('http://u:p@c', 'm', 't'), /credentials/);
});

test('personality: one line the agent reads back as exactly the URL', () => {
  const content = personalityContent(URL_);
  assert.equal(content, `${URL_}\n`);
  assert.equal(parsePersonalityContent(Buffer.from(content), 'test'), URL_);
});

test('personality: 1000 bytes is the limit, counted in bytes with the newline', () => {
  const base = 'http://c.example/payload/m?token=';
  const fits = base + 'x'.repeat(PERSONALITY_MAX_BYTES - 1 - base.length);
  assert.equal(Buffer.byteLength(personalityContent(fits)), 1000);
  assert.equal(parsePersonalityContent(Buffer.from(personalityContent(fits)), 'test'), fits, 'the agent accepts the largest one');
  assert.throws(() => personalityContent(`${fits}x`), (err: unknown) => err instanceof ControllerError && /1001 bytes, over the 1000-byte limit/.test(err.message));
  // Multi-byte characters count as bytes, not characters.
  const wide = base + 'é'.repeat(490);
  assert.ok(wide.length < 1000 && Buffer.byteLength(wide) > 1000);
  assert.throws(() => personalityContent(wide), /over the 1000-byte limit/);
});

test('plain user data: the agent decodes it as a pointer to the URL', async () => {
  assert.deepEqual(await decodeUserData(Buffer.from(plainUserData(URL_)), limits), { kind: 'urls', urls: [URL_] });
});

test('MIME user data: round trip through the agent decoder, with and without a cloud-config part', async () => {
  const bare = mimeUserData(URL_);
  assert.deepEqual(await decodeUserData(Buffer.from(bare), limits), { kind: 'urls', urls: [URL_] });
  assert.match(bare, /^Content-Type: multipart\/mixed; boundary="([^"]+)"\r\nMIME-Version: 1\.0\r\n/);
  assert.doesNotMatch(bare, /text\/cloud-config/);

  const cloudConfig = '#cloud-config\npackages:\n  - htop\nruncmd:\n  - [ sh, -c, "echo --=== not a boundary ===" ]\n' + 'x'.repeat(300) + '\n';
  const mixed = mimeUserData(URL_, { cloudConfig });
  assert.deepEqual(await decodeUserData(Buffer.from(mixed), limits), { kind: 'urls', urls: [URL_] });
  // The cloud-config part is intact for cloud-init: base64 in lines of at most 76 characters.
  const boundary = /boundary="([^"]+)"/.exec(mixed)?.[1] as string;
  const part = mixed.split(`--${boundary}`)[1] as string;
  assert.match(part, /Content-Type: text\/cloud-config/);
  const b64 = part.split('\r\n\r\n')[1]?.trim() as string;
  assert.ok(b64.split('\r\n').every((l) => l.length <= 76));
  assert.equal(Buffer.from(b64.replace(/\r\n/g, ''), 'base64').toString(), cloudConfig);
  // Parts are separated by the boundary, and it closes.
  assert.equal(mixed.split(`--${boundary}\r\n`).length - 1, 2);
  assert.ok(mixed.endsWith(`--${boundary}--\r\n`));
});

test('MIME user data: a fixed boundary is used, and the boundaries differ between documents', () => {
  assert.match(mimeUserData(URL_, { boundary: 'B0undary' }), /boundary="B0undary"[\s\S]*--B0undary--\r\n$/);
  assert.notEqual(/boundary="([^"]+)"/.exec(mimeUserData(URL_))?.[1], /boundary="([^"]+)"/.exec(mimeUserData(URL_))?.[1]);
  assert.throws(() => mimeUserData(URL_, { cloudConfig: 'packages: []' }), /#cloud-config/);
});
