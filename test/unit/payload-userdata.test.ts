import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { PayloadError } from '../../agent/src/errors';
import { decodeUserData, decodeWholeBodyBase64 } from '../../agent/src/payload/userdata';
import { PAYLOAD_PART_CONTENT_TYPE } from '../../agent/src/protocol/payload-http';

const FIXTURES = join(__dirname, '..', 'fixtures', 'payload');
const limits = { maxBytes: 64 * 1024 };
const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

function inlineText(ref: Awaited<ReturnType<typeof decodeUserData>>): string {
  assert.equal(ref.kind, 'inline');
  return ref.kind === 'inline' ? ref.bytes.toString('utf8') : '';
}

async function refused(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof PayloadError, `expected PayloadError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('decodeUserData: plain content', () => {
  it('an inline launch-params payload stays byte for byte', async () => {
    const raw = b('SERVICE_NAME=php,PORTS=80|443\n');
    const ref = await decodeUserData(raw, limits);
    assert.equal(ref.kind, 'inline');
    assert.ok(ref.kind === 'inline' && ref.bytes.equals(raw));
  });

  it('a lone URL (surrounded by blank lines) is a pointer', async () => {
    assert.deepEqual(await decodeUserData(b('\n  https://ctl.example:8443/p/i-1?token=abc  \n\n'), limits), {
      kind: 'urls',
      urls: ['https://ctl.example:8443/p/i-1?token=abc'],
    });
  });

  it('a URL followed by another line is not a lone URL', async () => {
    assert.equal((await decodeUserData(b('http://a.example/p\nKEY=1\n'), limits)).kind, 'inline');
  });

  it('ftp:// alone is not a pointer', async () => {
    assert.equal((await decodeUserData(b('ftp://a.example/p'), limits)).kind, 'inline');
  });

  it('#include: URLs in order, comments and blank lines skipped, URL on the #include line', async () => {
    const ref = await decodeUserData(b('#include https://a.example/p\n# mirror:\n\nhttp://b.example/p?t=1\r\n  https://c.example/p  \n'), limits);
    assert.deepEqual(ref, { kind: 'urls', urls: ['https://a.example/p', 'http://b.example/p?t=1', 'https://c.example/p'] });
  });

  it('#include-once works like #include (any case)', async () => {
    assert.deepEqual(await decodeUserData(b('#Include-Once\nhttps://a.example/x\n'), limits), { kind: 'urls', urls: ['https://a.example/x'] });
  });

  it('#include with a non-http line names the line and the scheme', async () => {
    await refused(() => decodeUserData(b('#include\nhttps://a.example/p\nftp://b.example/p\n'), limits), /#include line 3 .*scheme "ftp:"/);
    await refused(() => decodeUserData(b('#include\nnot a url\n'), limits), /#include line 2 is not an http\(s\) URL/);
  });

  it('#include with no URL is an error', async () => {
    await refused(() => decodeUserData(b('#include\n# nothing\n'), limits), /#include list has no URL/);
  });

  for (const [text, what] of [
    ['#cloud-config\npackages: [htop]\n', /#cloud-config document/],
    ['  #Cloud-Config-Archive\n- type: x\n', /#cloud-config-archive document/],
    ['#!/bin/bash\necho hi\n', /script \(#!\)/],
    ['#cloud-boothook\necho\n', /#cloud-boothook/],
    ['## template: jinja\n#cloud-config\n', /jinja template/],
  ] as const) {
    it(`refuses cloud-init content: ${text.split('\n')[0]}`, async () => {
      await refused(() => decodeUserData(b(text), limits), new RegExp(`not for cartridge-agent: it is .*${what.source}.*text/x-cartridge-payload`));
    });
  }

  it('names other compression formats instead of treating them as a payload', async () => {
    await refused(() => decodeUserData(Buffer.from('fd377a585a000004e6d6b446', 'hex'), limits), /xz-compressed; only gzip/);
    await refused(() => decodeUserData(Buffer.from('BZh91AY&SY\x00\x01', 'latin1'), limits), /bzip2-compressed/);
  });
});

describe('decodeUserData: gzip', () => {
  it('gunzips by magic bytes, then classifies', async () => {
    assert.equal(inlineText(await decodeUserData(gzipSync(b('A=1\nB=2\n')), limits)), 'A=1\nB=2\n');
    assert.deepEqual(await decodeUserData(gzipSync(b('https://x.example/p\n')), limits), { kind: 'urls', urls: ['https://x.example/p'] });
  });

  it('a gzip bomb is refused without inflating it', async () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024)); // ~50 KiB → 50 MiB
    assert.ok(bomb.length < 64 * 1024);
    const started = process.hrtime.bigint();
    await refused(() => decodeUserData(bomb, limits), /^user data: gzip data inflates past the 65536 bytes that payload\.maxUserDataBytes allows in total \(all gzip layers and MIME parts of the user data together\); refusing it$/);
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 1000, 'stopped early');
  });

  it('corrupt gzip is a clear error', async () => {
    const gz = gzipSync(b('A=1\n'.repeat(100)));
    await refused(() => decodeUserData(Buffer.concat([gz.subarray(0, 12), Buffer.from('garbage-garbage')]), limits), /gzip magic bytes \(1f 8b\) but does not decompress/);
  });

  it('size limit applies to the raw bytes', async () => {
    await refused(() => decodeUserData(Buffer.alloc(100, 0x41), { maxBytes: 99 }), /user data is 100 bytes, more than the 99 allowed by payload\.maxUserDataBytes/);
    assert.equal((await decodeUserData(Buffer.from('A='.padEnd(99, 'x')), { maxBytes: 99 })).kind, 'inline');
  });
});

describe('decodeUserData: whole-body base64', () => {
  it('decodes base64 of a payload, also wrapped in lines', async () => {
    const encoded = b64('SERVICE_NAME=php,PORTS=80').replace(/(.{8})/g, '$1\n');
    assert.equal(inlineText(await decodeUserData(b(encoded), limits)), 'SERVICE_NAME=php,PORTS=80');
  });

  it('decodes base64 of gzip, and base64 of a URL', async () => {
    assert.equal(inlineText(await decodeUserData(b(b64(gzipSync(b('K=v\nL=w\n')))), limits)), 'K=v\nL=w\n');
    assert.deepEqual(await decodeUserData(b(b64('https://x.example/p')), limits), { kind: 'urls', urls: ['https://x.example/p'] });
  });

  it('does not mangle payloads that happen to be valid base64', async () => {
    // "KEY=" is valid base64 ("(F"), "ABCD" decodes to binary, "AB==" and "HOST==" are assignments.
    for (const text of ['KEY=', 'ABCD', 'ABCD\n', 'ABC=', 'HOST==', 'AB12==']) {
      assert.equal(decodeWholeBodyBase64(b(text)), undefined, text);
      assert.equal(inlineText(await decodeUserData(b(text), limits)), text);
    }
  });

  it('does not decode non-canonical base64 or text that merely looks like base64', async () => {
    assert.equal(decodeWholeBodyBase64(b('QUJ=')), undefined); // stray bits in the last char
    assert.equal(decodeWholeBodyBase64(b('aGVsbG8gd29ybGQ=')), undefined); // "hello world": no user data shape
    assert.equal(decodeWholeBodyBase64(b('')), undefined);
  });

  it('size limit applies after base64 and gzip steps', async () => {
    const inner = Buffer.from(`A=${'x'.repeat(2000)}`);
    await refused(() => decodeUserData(b(b64(gzipSync(inner))), { maxBytes: 1000 }), /^user data \(layer 2\): gzip data inflates past the 1000 bytes that payload\.maxUserDataBytes allows in total/);
  });
});

describe('decodeUserData: MIME multipart', () => {
  it('picks our part from make-mime style user data (base64 part, utf-8)', async () => {
    const text = inlineText(await decodeUserData(readFileSync(join(FIXTURES, 'mime-make-mime.txt')), limits));
    assert.equal(text, 'SERVICE_NAME=php,CLUSTER_ID=php.domain,DB_URL=mysql://u@h/db?a=b,GREETING=grüße,PORTS=80|443');
  });

  it('also when the whole MIME document is gzipped', async () => {
    const gz = gzipSync(readFileSync(join(FIXTURES, 'mime-make-mime.txt')));
    assert.match(inlineText(await decodeUserData(gz, limits)), /^SERVICE_NAME=php,/);
  });

  const mime = (parts: string[], boundary = 'XyZ'): Buffer =>
    b(`MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\npreamble\r\n${parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('')}--${boundary}--\r\nepilogue\r\n`);

  it('our part with a 7bit body holding an #include list', async () => {
    const ref = await decodeUserData(mime([
      'Content-Type: text/cloud-config\r\n\r\n#cloud-config\r\nx: 1',
      `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\n#include\r\nhttps://a.example/p\r\nhttps://b.example/p`,
    ]), limits);
    assert.deepEqual(ref, { kind: 'urls', urls: ['https://a.example/p', 'https://b.example/p'] });
  });

  it('our part base64-encoded gzip (gzip detected inside the part)', async () => {
    const body = b64(gzipSync(b('A=1\nB="two words"\n'))).replace(/(.{76})/g, '$1\r\n');
    const ref = await decodeUserData(mime([`Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}`]), limits);
    assert.equal(inlineText(ref), 'A=1\nB="two words"\n');
  });

  it('a gzip-typed part holding a MIME document with our part', async () => {
    const innerDoc = mime([`Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\nK=v`], 'inner');
    const ref = await decodeUserData(mime([
      'Content-Type: text/x-shellscript\r\n\r\n#!/bin/sh\r\ntrue',
      `Content-Type: application/x-gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(gzipSync(innerDoc))}`,
    ]), limits);
    assert.equal(inlineText(ref), 'K=v');
  });

  it('a gzip bomb inside a part is refused', async () => {
    const body = b64(gzipSync(Buffer.alloc(10 * 1024 * 1024)));
    await refused(() => decodeUserData(mime([`Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}`]), limits), /^MIME user data part 1: gzip data inflates past the 65536 bytes/);
  });

  it('nested multipart, quoted-printable, folded header', async () => {
    const inner = 'Content-Type: multipart/alternative;\r\n  boundary=in1\r\n\r\n--in1\r\n' +
      `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGREETING=3Dgr=C3=BC=C3=9Fe,LONG=3Dab=\r\ncd\r\n--in1--`;
    assert.equal(inlineText(await decodeUserData(mime([inner]), limits)), 'GREETING=grüße,LONG=abcd');
  });

  it('part bodies are exact: trailing line breaks before the boundary belong to it', async () => {
    const ref = await decodeUserData(b(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: ${PAYLOAD_PART_CONTENT_TYPE}\n\nA=1\n\n--b--\n`), limits);
    assert.equal(inlineText(ref), 'A=1\n');
  });

  it('a single-part MIME message of our type', async () => {
    const ref = await decodeUserData(b(`MIME-Version: 1.0\r\nContent-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\nhttps://a.example/p\r\n`), limits);
    assert.deepEqual(ref, { kind: 'urls', urls: ['https://a.example/p'] });
  });

  it('no part of ours: error lists the types found', async () => {
    await refused(() => decodeUserData(mime(['Content-Type: text/cloud-config\r\n\r\n#cloud-config', 'Content-Type: text/x-shellscript\r\n\r\n#!/bin/sh']), limits),
      /no part of type text\/x-cartridge-payload \(found: text\/cloud-config, text\/x-shellscript\)/);
  });

  it('two parts of ours are ambiguous', async () => {
    const part = `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\nA=1`;
    await refused(() => decodeUserData(mime([part, part]), limits), /2 parts of type text\/x-cartridge-payload; expected exactly one/);
  });

  it('broken MIME is a clear error', async () => {
    await refused(() => decodeUserData(b('MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nx'), limits), /without a boundary parameter/);
    await refused(() => decodeUserData(b('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\nno delimiters'), limits), /no "--q" boundary line/);
    await refused(() => decodeUserData(mime([`Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\nContent-Transfer-Encoding: base64\r\n\r\n!!not base64!!`]), limits), /part 1: Content-Transfer-Encoding is base64 but the body is not valid base64/);
    await refused(() => decodeUserData(mime([`Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx`]), limits), /unsupported Content-Transfer-Encoding "x-uuencode"/);
  });

  it('the size limit applies to decoded parts', async () => {
    const big = `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\nA=${'x'.repeat(500)}`;
    await refused(() => decodeUserData(mime([big]), { maxBytes: 600 }), /more than the 600 allowed/);
  });
});
