/**
 * buildPayload's rule for empty payloads: an empty body, or one that parses to zero
 * variables in any format, is refused unless payload.allowEmpty is set; the error names the
 * source and the key that allows it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadError } from '../../agent/src/errors';
import { buildPayload } from '../../agent/src/payload';

const opts = { format: 'auto' as const, allowNames: [], maxKeys: 100, maxBytes: 1024, source: 'http://ctl.example/payload/m1?token=[REDACTED]' };

const EMPTY_BODIES: Array<[string, string]> = [
  ['an empty body', ''],
  ['a line break', '\n'],
  ['blanks', '  \r\n\t\n'],
  ['dotenv comments only', '# nothing here\n# yet\n'],
  ['an empty JSON object', '{}\n'],
];

describe('buildPayload: empty payloads', () => {
  for (const [what, body] of EMPTY_BODIES) {
    it(`refuses ${what} by default, naming the source and payload.allowEmpty`, () => {
      assert.throws(() => buildPayload(Buffer.from(body), opts), (err: unknown) => {
        assert.ok(err instanceof PayloadError, String(err));
        assert.equal(err.exitCode, 6);
        assert.match(err.message, /^the payload from http:\/\/ctl\.example\/payload\/m1\?token=\[REDACTED\] (is empty \(0 bytes\)|has no variables \(\d+ bytes that hold no NAME=VALUE\)); refused, so the last good payload and exports stay as they are\. Set payload\.allowEmpty to true to accept an empty payload$/);
        return true;
      });
    });
  }

  it('says "is empty" for 0 bytes and "has no variables" otherwise', () => {
    assert.throws(() => buildPayload(Buffer.alloc(0), opts), /is empty \(0 bytes\)/);
    assert.throws(() => buildPayload(Buffer.from('{}'), opts), /has no variables \(2 bytes/);
  });

  it('a forced format refuses its empty forms too', () => {
    for (const format of ['dotenv', 'json', 'launch-params'] as const) {
      const body = format === 'json' ? '{ }' : '';
      assert.throws(() => buildPayload(Buffer.from(body), { ...opts, format }), /payload\.allowEmpty/, format);
    }
  });

  it('without allowEmpty in the options (callers that do not pass it) the payload is refused', () => {
    const { source: _source, ...bare } = opts;
    assert.throws(() => buildPayload(Buffer.alloc(0), bare), /the payload from the payload source is empty/);
  });

  it('payload.allowEmpty: true accepts them as zero variables', () => {
    for (const [, body] of EMPTY_BODIES) {
      const payload = buildPayload(Buffer.from(body), { ...opts, allowEmpty: true });
      assert.equal(payload.vars.size, 0);
    }
  });

  it('a payload with one variable is not affected', () => {
    assert.deepEqual([...buildPayload(Buffer.from('A=\n'), opts).vars], [['A', '']]);
  });
});
