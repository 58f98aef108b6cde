import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SourceError } from '../../agent/src/errors';
import { PERSONALITY_MAX_BYTES, instanceIdFromUrl, parsePersonalityContent } from '../../agent/src/sources/personality';

const W = '/etc/cartridge-agent/payload-url';
const parse = (s: string | Buffer): string | null => parsePersonalityContent(Buffer.isBuffer(s) ? s : Buffer.from(s), W);

function rejects(content: string | Buffer, pattern: RegExp): void {
  assert.throws(
    () => parse(content),
    (err: unknown) => err instanceof SourceError && err.source === 'personality' && err.where === W && pattern.test(err.message),
  );
}

test('a URL line, with or without a newline, with a token', () => {
  assert.equal(parse('https://ctl.example/p/abc?token=s3cr3t\n'), 'https://ctl.example/p/abc?token=s3cr3t');
  assert.equal(parse('http://10.0.0.5:8080/payload'), 'http://10.0.0.5:8080/payload');
});

test('CRLF line ends and surrounding blanks are trimmed', () => {
  assert.equal(parse('  https://ctl.example/p \r\n'), 'https://ctl.example/p');
});

test('trailing lines are ignored', () => {
  assert.equal(parse('https://ctl.example/p\n# written by controller\nanything else\n'), 'https://ctl.example/p');
});

test('a UTF-8 BOM is tolerated', () => {
  assert.equal(parse('\uFEFFhttps://ctl.example/p\n'), 'https://ctl.example/p');
});

test('exactly the size limit is accepted, one byte more is refused with the size', () => {
  const base = 'https://ctl.example/p?t=';
  const atLimit = base + 'a'.repeat(PERSONALITY_MAX_BYTES - base.length);
  assert.equal(Buffer.byteLength(atLimit), 1000);
  assert.equal(parse(atLimit), atLimit);
  rejects(`${atLimit}a`, /is 1001 bytes, over the 1000-byte personality limit/);
});

test('not a URL, or not http(s), is refused without quoting the content', () => {
  rejects('just some text', /first line contains whitespace/);
  rejects('token=s3cr3t-not-a-url', /first line \(22 characters\) is not an http\(s\) URL/);
  rejects('ftp://ctl.example/p', /is a ftp URL; it must be http or https/);
  rejects('file:///etc/shadow', /is a file URL/);
  assert.throws(() => parse('token=s3cr3t-not-a-url'), (err: Error) => !err.message.includes('s3cr3t'));
});

test('an empty first line with content after it is refused; a blank file means "still being written"', () => {
  rejects('\nhttps://ctl.example/p\n', /first line is empty/);
  assert.equal(parse(''), null);
  assert.equal(parse(' \n\n'), null);
});

test('non-UTF-8 bytes are refused', () => {
  rejects(Buffer.from([0x68, 0x74, 0xff, 0xfe]), /not UTF-8/);
});

test('instance id from URL: stable, 16 hex, no token inside, differs per URL', () => {
  const a = instanceIdFromUrl('https://ctl.example/p?token=one');
  assert.match(a, /^url-[0-9a-f]{16}$/);
  assert.equal(instanceIdFromUrl('https://ctl.example/p?token=one'), a);
  assert.notEqual(instanceIdFromUrl('https://ctl.example/p?token=two'), a);
  assert.ok(!a.includes('one'));
});
