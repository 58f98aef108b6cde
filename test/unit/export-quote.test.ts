import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shQuote, systemdQuote } from '../../agent/src/export/quote';

describe('shQuote (POSIX sh single quotes)', () => {
  const cases: Array<[string, string, string]> = [
    ['empty value is an empty quoted word', '', `''`],
    ['plain text is wrapped', 'hello world', `'hello world'`],
    ['a single quote closes, escapes and reopens', "it's", `'it'\\''s'`],
    ['a lone single quote', "'", `''\\'''`],
    ['two quotes in a row', "''", `''\\'''\\'''`],
    ['$, backticks, backslash and ! are literal inside single quotes', '$(id) `id` \\ !!', `'$(id) \`id\` \\ !!'`],
    ['double quotes are literal', '"x"', `'"x"'`],
    ['newlines and CR are kept raw', 'a\nb\r\n', `'a\nb\r\n'`],
    ['tabs and surrounding spaces are kept', '\t x \t', `'\t x \t'`],
    ['multibyte UTF-8 is kept', 'é🙂', `'é🙂'`],
  ];
  for (const [what, input, expected] of cases) {
    it(what, () => assert.equal(shQuote(input), expected));
  }

  it('is only quoted segments and escaped quotes, which concatenate back to the value', () => {
    const value = "a'b''c' $x";
    const quoted = shQuote(value);
    let i = 0;
    let decoded = '';
    while (i < quoted.length) {
      if (quoted.startsWith("\\'", i)) {
        decoded += "'";
        i += 2;
      } else {
        assert.equal(quoted[i], "'", `unexpected unquoted character at ${i} in ${quoted}`);
        const close = quoted.indexOf("'", i + 1);
        assert.ok(close > i, 'unterminated quote');
        decoded += quoted.slice(i + 1, close);
        i = close + 1;
      }
    }
    assert.equal(decoded, value);
  });
});

describe('systemdQuote (EnvironmentFile= double quotes)', () => {
  const cases: Array<[string, string, string]> = [
    ['empty value', '', '""'],
    ['plain text', 'hello world', '"hello world"'],
    ['double quote is escaped', 'say "hi"', '"say \\"hi\\""'],
    ['backslash is escaped', 'a\\b', '"a\\\\b"'],
    ['trailing backslash is escaped, so it cannot escape the closing quote', 'end\\', '"end\\\\"'],
    ['backtick is escaped', '`id`', '"\\`id\\`"'],
    ['dollar is escaped', '$HOME ${X}', '"\\$HOME \\${X}"'],
    ['single quote is literal', "it's", `"it's"`],
    ['newline stays raw inside the quotes', 'a\nb', '"a\nb"'],
    ['backslash before newline cannot become a continuation', 'a\\\nb', '"a\\\\\nb"'],
    ['CR stays raw inside the quotes', 'a\r\nb', '"a\r\nb"'],
    ['leading and trailing whitespace is protected by the quotes', '  x\t', '"  x\t"'],
    ['# and ; are literal', '#x;y', '"#x;y"'],
    ['% is literal (no specifiers in env files)', '%h', '"%h"'],
    ['other backslash-able characters are left alone', '\\n\\t', '"\\\\n\\\\t"'],
    ['non-ASCII is kept', 'ü🙂', '"ü🙂"'],
  ];
  for (const [what, input, expected] of cases) {
    it(what, () => assert.equal(systemdQuote(input), expected));
  }

  it('escapes every ", \\, ` and $ and nothing else', () => {
    const all = Array.from({ length: 128 }, (_, i) => String.fromCharCode(i)).join('').slice(1);
    const body = systemdQuote(all).slice(1, -1);
    const escapedChars = [...body.matchAll(/\\(.)/gs)].map((m) => m[1]);
    assert.deepEqual(escapedChars.sort(), ['"', '$', '\\', '`'].sort());
    assert.equal(body.length, all.length + 4);
  });
});
