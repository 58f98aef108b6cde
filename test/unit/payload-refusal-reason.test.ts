import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_REASON_CHARS, refusalReason } from '../../agent/src/payload/refusal-reason';

const r = (s: string | Buffer): string | undefined => refusalReason(Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));

describe('refusalReason', () => {
  it('plain text: one trimmed line', () => {
    assert.equal(r('forbidden: expired: the token expired at 2024-01-01T00:00:00.000Z\n'), 'forbidden: expired: the token expired at 2024-01-01T00:00:00.000Z');
    assert.equal(r('line one\r\nline two\n\n\tthree'), 'line one line two three');
  });

  it('JSON {"error"} or {"message"} shows just the text; other JSON is shown as text', () => {
    assert.equal(r('{"error": "token revoked", "code": 3}'), 'token revoked');
    assert.equal(r('{"message": "gone"}'), 'gone');
    assert.equal(r('{"error": {"nested": 1}}'), '{"error": {"nested": 1}}');
    assert.equal(r('{"error": "cut'), '{"error": "cut');
  });

  it('ANSI sequences are dropped; control, bidi, zero-width and bad UTF-8 become "?"', () => {
    assert.equal(r('\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok'), 'red ok');
    assert.equal(r('a\x00b\x07c\x7fd\u202ee\u200bf'), 'a?b?c?d?e?f');
    assert.equal(r(Buffer.from([0x61, 0xff, 0x62])), 'a?b');
    assert.equal(r('\u009b31mC1'), 'C1');
  });

  it('nothing printable, or nothing at all: no reason', () => {
    assert.equal(r(''), undefined);
    assert.equal(r(' \n\t '), undefined);
    assert.equal(r('\x00\x01'), undefined);
    assert.equal(r('\x1b[2J'), undefined);
  });

  it('at most MAX_REASON_CHARS characters, the cut marked with …', () => {
    const long = r('é'.repeat(1000)) as string;
    assert.equal([...long].length, MAX_REASON_CHARS);
    assert.ok(long.endsWith('é…'));
    assert.equal(r('x'.repeat(MAX_REASON_CHARS)), 'x'.repeat(MAX_REASON_CHARS));
  });

  it('URL tokens are redacted before the cut, so no token prefix survives', () => {
    const text = `${'p'.repeat(150)} http://c.example/p?token=${'s'.repeat(200)}`;
    assert.ok(!(r(text) as string).includes('sss'));
  });
});
