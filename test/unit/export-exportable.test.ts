import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayloadError } from '../../agent/src/errors';
import { assertExportable, MAX_ARG_STRLEN, MAX_EXPORT_ENV_BYTES } from '../../agent/src/export/exportable';

function refusal(vars: Map<string, string>): PayloadError {
  try {
    assertExportable(vars);
  } catch (err) {
    assert.ok(err instanceof PayloadError, `expected PayloadError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the payload to be refused');
}

describe('assertExportable', () => {
  it('accepts ordinary, empty, multibyte and BOM-holding values', () => {
    assert.doesNotThrow(() =>
      assertExportable(new Map([['A', 'x'], ['EMPTY', ''], ['U', 'é🙂\u202E'], ['BOM', '\uFEFFx'], ['CTRL', '\x01\x7f\r\n\t']])),
    );
  });

  const refused: Array<[string, string, RegExp]> = [
    ['NUL', 'a\0b', /NUL byte \(at byte 1\)/],
    ['lone high surrogate', 'ab\uD800', /lone UTF-16 surrogate U\+D800 \(at byte 2\)/],
    ['lone low surrogate', '\uDC00', /lone UTF-16 surrogate U\+DC00/],
    ['reversed surrogate pair', '\uDE00\uD83D', /lone UTF-16 surrogate U\+DE00/],
    ['noncharacter U+FDD0', '\uFDD0', /noncharacter U\+FDD0/],
    ['noncharacter U+FDEF', 'é\uFDEF', /noncharacter U\+FDEF \(at byte 2\)/],
    ['noncharacter U+FFFE', '\uFFFE', /noncharacter U\+FFFE/],
    ['noncharacter U+FFFF', '\uFFFF', /noncharacter U\+FFFF/],
    ['noncharacter U+1FFFF', '\u{1FFFF}', /noncharacter U\+1FFFF/],
    ['noncharacter U+10FFFE', '\u{10FFFE}', /noncharacter U\+10FFFE/],
  ];
  for (const [what, value, reason] of refused) {
    it(`refuses ${what}, naming the key and not the value`, () => {
      const err = refusal(new Map([['OK', 'fine'], ['MY_SECRET', value]]));
      assert.match(err.message, /payload key "MY_SECRET" cannot be exported/);
      assert.match(err.message, reason);
      assert.equal(err.context.key, 'MY_SECRET');
      if (value.length > 1) assert.ok(!err.message.includes(value), 'the value must not appear in the message');
    });
  }

  it('accepts the code points next to the noncharacters', () => {
    assert.doesNotThrow(() => assertExportable(new Map([['A', '\uFDCF\uFDF0\uFFFD\u{1FFFD}\u{10FFFD}']])));
  });

  it('refuses a name that is not an environment variable name (defence in depth)', () => {
    assert.match(refusal(new Map([['bad name', 'x']])).message, /"bad name".*not an environment variable name/);
    assert.match(refusal(new Map([['A;B', 'x']])).message, /"A;B"/);
  });

  it('accepts KEY=VALUE of exactly MAX_ARG_STRLEN bytes with its NUL, refuses one byte more', () => {
    const fits = 'v'.repeat(MAX_ARG_STRLEN - 'K='.length - 1);
    assert.doesNotThrow(() => assertExportable(new Map([['K', fits]])));
    const err = refusal(new Map([['K', `${fits}v`]]));
    assert.match(err.message, /131073 bytes.*MAX_ARG_STRLEN \(131072\)/);
  });

  it('counts bytes, not UTF-16 units, against MAX_ARG_STRLEN', () => {
    // 50 000 × 'é' is 50 000 UTF-16 units but 100 000 bytes; 70 000 of them exceed the limit.
    assert.doesNotThrow(() => assertExportable(new Map([['K', 'é'.repeat(50_000)]])));
    assert.match(refusal(new Map([['K', 'é'.repeat(70_000)]])).message, /140003 bytes/);
  });

  it('refuses a payload whose total environment size exceeds MAX_EXPORT_ENV_BYTES', () => {
    const value = 'z'.repeat(100_000);
    const count = Math.ceil(MAX_EXPORT_ENV_BYTES / 100_000) + 1;
    const vars = new Map(Array.from({ length: count }, (_, i) => [`K${i}`, value] as [string, string]));
    const err = refusal(vars);
    assert.match(err.message, new RegExp(`its ${count} variables take \\d+ bytes.*${MAX_EXPORT_ENV_BYTES}-byte limit`));
    // Just under the bound passes: drop enough keys.
    const under = new Map([...vars].slice(0, Math.floor(MAX_EXPORT_ENV_BYTES / 100_020)));
    assert.doesNotThrow(() => assertExportable(under));
  });

  it('accepts several thousand small keys', () => {
    const vars = new Map(Array.from({ length: 5000 }, (_, i) => [`KEY_${i}`, `value number ${i}`] as [string, string]));
    assert.doesNotThrow(() => assertExportable(vars));
  });
});
