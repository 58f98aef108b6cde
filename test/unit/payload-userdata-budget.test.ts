/**
 * One budget for the whole user-data decode: bytes inflated by every gzip layer and MIME part
 * together (payload.maxUserDataBytes), a time limit, and the stop signal. Plus the mbox
 * `From ` line Python's email module writes before a MIME document.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { NoPointerError, PayloadError } from '../../agent/src/errors';
import { decodeUserData } from '../../agent/src/payload/userdata';
import { PAYLOAD_PART_CONTENT_TYPE } from '../../agent/src/protocol/payload-http';

const FIXTURES = join(__dirname, '..', 'fixtures', 'payload');
const MiB = 1024 * 1024;

function mime(parts: string[], boundary = 'fan'): Buffer {
  return Buffer.from(`MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n${parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('')}--${boundary}--\r\n`, 'latin1');
}
const gzipPart = (type: string, content: Buffer | string): string =>
  `Content-Type: ${type}\r\nContent-Transfer-Encoding: base64\r\n\r\n${gzipSync(content).toString('base64')}`;
const ours = (text: string): string => `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\n${text}`;

async function refused(p: Promise<unknown>, pattern: RegExp): Promise<PayloadError> {
  const err = await p.then(() => assert.fail('expected a PayloadError'), (e: unknown) => e);
  assert.ok(err instanceof PayloadError, `expected PayloadError, got ${String(err)}`);
  assert.match(err.message, pattern);
  return err;
}

const BUDGET = /gzip data inflates past the 1048576 bytes that payload\.maxUserDataBytes allows in total \(all gzip layers and MIME parts of the user data together\); refusing it$/;

describe('decodeUserData: one inflate budget for all layers and parts', () => {
  it('a fan-out of gzip parts of ours, each under the limit alone, is refused by their total', async () => {
    const part = gzipPart(PAYLOAD_PART_CONTENT_TYPE, Buffer.alloc(256 * 1024, 0x41)); // ~400 bytes → 256 KiB
    const doc = mime(Array.from({ length: 64 }, () => part));
    assert.ok(doc.length < 64 * 1024);
    const err = await refused(decodeUserData(doc, { maxBytes: MiB }), BUDGET);
    assert.match(err.message, /^MIME user data part [45]: /, 'stopped at the part that passed the budget');
    assert.equal(err.context.setting, 'payload.maxUserDataBytes');
  });

  it('the issue\'s bomb: <1 MB of MIME with hundreds of 1 MiB gzip parts is refused at once', async () => {
    const bomb = gzipPart('application/gzip', Buffer.concat([Buffer.from('MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n'), Buffer.alloc(MiB - 64)]));
    const doc = mime(Array.from({ length: 600 }, () => bomb));
    assert.ok(doc.length < MiB, `${doc.length} bytes`);
    await refused(decodeUserData(doc, { maxBytes: MiB }), BUDGET);
  });

  it('gzip in base64 in MIME, nested: every level draws from the same budget', async () => {
    // MIME-looking padding, so each one is inflated in full; each alone is well under the budget.
    const padding = (kib: number): Buffer => Buffer.concat([Buffer.from('MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n'), Buffer.alloc(kib * 1024, 0x20)]);
    const inner = mime([gzipPart('application/gzip', padding(300)), ours('A=1')], 'inner');
    const outer = mime([gzipPart('application/gzip', padding(400)), gzipPart('application/x-gzip', padding(400)), gzipPart('application/gzip', inner)], 'outer');
    const userData = Buffer.from(gzipSync(outer).toString('base64')); // whole-body base64 of gzip of MIME
    assert.ok(userData.length < 16 * 1024);
    await refused(decodeUserData(userData, { maxBytes: MiB }), /^MIME user data part 3 \(gunzipped\) part 1: gzip data inflates past the 1048576 bytes/);
    // The same document is fine with a budget that covers its total (about 1.1 MiB inflated).
    const ok = await decodeUserData(userData, { maxBytes: 2 * MiB });
    assert.ok(ok.kind === 'inline' && ok.bytes.toString() === 'A=1');
  });

  it('a foreign gzip part costs only its head: a big gzipped cloud-config beside our part is fine', async () => {
    const cloudConfig = `#cloud-config\nwrite_files:\n${'  - {path: /x, content: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n'.repeat(100_000)}`; // ~3.5 MB
    const doc = mime([gzipPart('application/gzip', cloudConfig), ours('SERVICE_NAME=php')]);
    const ref = await decodeUserData(doc, { maxBytes: MiB });
    assert.ok(ref.kind === 'inline' && ref.bytes.toString() === 'SERVICE_NAME=php');
  });

  it('a whole-body gzip bomb stops at the budget', async () => {
    await refused(decodeUserData(gzipSync(Buffer.alloc(200 * MiB)), { maxBytes: MiB }), /^user data: gzip data inflates past the 1048576 bytes/);
  });
});

describe('decodeUserData: time limit and stop signal', () => {
  const manyParts = mime(Array.from({ length: 300 }, () => gzipPart('application/gzip', 'not mime')));

  it('too much work for the time limit is refused, naming the limit', async () => {
    let clock = 0;
    const now = (): number => clock++; // every look at the clock is 1 ms later
    await refused(decodeUserData(manyParts, { maxBytes: MiB, timeLimitMs: 100, now }), /: decoding the user data took more than 100 ms \(its gzip layers and MIME parts are too much work\); refusing it$/);
  });

  const stopped = (err: unknown): boolean => {
    assert.ok(err instanceof NoPointerError, `expected NoPointerError, got ${String(err)}`);
    assert.match(err.message, /^no payload pointer found; user data: stopped while decoding it \(the agent is stopping\)$/);
    assert.equal(err.exitCode, 4);
    return true;
  };

  it('an aborted signal stops the decode before any work', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(decodeUserData(gzipSync('A=1'), { maxBytes: MiB, signal: ac.signal }), stopped);
  });

  it('a stop between parts ends the walk', async () => {
    const ac = new AbortController();
    let looks = 0;
    const now = (): number => (++looks === 40 && ac.abort(), 0);
    await assert.rejects(decodeUserData(manyParts, { maxBytes: MiB, signal: ac.signal, now }), stopped);
    assert.ok(looks < 60, `stopped soon after the abort (${looks} clock reads)`);
  });

  it('a stop in the middle of one large inflate destroys the stream', async () => {
    const ac = new AbortController();
    let looks = 0;
    const now = (): number => (++looks === 5 && ac.abort(), 0);
    await assert.rejects(decodeUserData(gzipSync(Buffer.alloc(60 * MiB, 0x41)), { maxBytes: 64 * MiB, signal: ac.signal, now }), stopped);
  });
});

describe('decodeUserData: the mbox "From " line', () => {
  it('a document written by Python\'s email module with unixfrom=True is parsed', async () => {
    const ref = await decodeUserData(readFileSync(join(FIXTURES, 'mime-unixfrom.txt')), { maxBytes: MiB });
    assert.ok(ref.kind === 'inline');
    assert.equal(ref.bytes.toString(), 'SERVICE_NAME=php,CLUSTER_ID=php.domain,PORTS=80|443');
  });

  it('with CRLF line breaks, gzipped, and on a part of its own', async () => {
    const inner = `From nobody Mon Jan  1 00:00:00 2024\r\n${ours('B=2')}`;
    const doc = Buffer.concat([Buffer.from('From MAILER-DAEMON Thu Jan  1 00:00:00 1970\r\n'), mime([inner])]);
    const ref = await decodeUserData(gzipSync(doc), { maxBytes: MiB });
    assert.ok(ref.kind === 'inline' && ref.bytes.toString() === 'B=2');
  });

  it('only the first line is an envelope: a "From " line among the headers is still an error', async () => {
    const doc = Buffer.from(`MIME-Version: 1.0\r\nFrom nobody\r\nContent-Type: ${PAYLOAD_PART_CONTENT_TYPE}\r\n\r\nA=1`);
    await refused(decodeUserData(doc, { maxBytes: MiB }), /header line 2 is not "Name: value"/);
  });
});
