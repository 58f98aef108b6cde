import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refused } from '../helpers/assertions';
import { detectFormat, parsePayload } from '../../agent/src/payload/parse';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');


describe('parsePayload: launch-params', () => {
  const lp = (s: string) => parsePayload(b(s), 'launch-params').entries;

  it('splits KEY=VALUE pairs on commas', () => {
    assert.deepEqual(lp('SERVICE_NAME=php,CLUSTER_ID=php.my.domain,PORTS=80|443\n'), [
      ['SERVICE_NAME', 'php'], ['CLUSTER_ID', 'php.my.domain'], ['PORTS', '80|443'],
    ]);
  });

  it('keeps "=" in values (split on the first "=" only)', () => {
    assert.deepEqual(lp('DB_URL=mysql://h/db?a=b&c=d,TOKEN=abc==,EQ=='), [
      ['DB_URL', 'mysql://h/db?a=b&c=d'], ['TOKEN', 'abc=='], ['EQ', '='],
    ]);
  });

  it('keeps "," in values when not followed by NAME=', () => {
    assert.deepEqual(lp('MB_URLS=tcp://a:1883,tcp://b:1883,JAVA_OPTS=-Xmx1g,-Dx=y,LABELS=env=prod,tier=web,LAST=1,'), [
      ['MB_URLS', 'tcp://a:1883,tcp://b:1883'], ['JAVA_OPTS', '-Xmx1g,-Dx=y'], ['LABELS', 'env=prod,tier=web'], ['LAST', '1,'],
    ]);
  });

  it('empty values stay empty; "null" stays text', () => {
    assert.deepEqual(lp('A=,B=null,C='), [['A', ''], ['B', 'null'], ['C', '']]);
  });

  it('an empty line is no entries', () => {
    assert.deepEqual(lp(''), []);
    assert.deepEqual(lp('\n'), []);
  });

  it('a first pair without "=" names the position, not the text', () => {
    refused(() => lp('hunter2secret,A=1'), /launch-params: position 1: expected NAME=VALUE/, 'hunter2secret');
  });

  it('more than one line is an error', () => {
    refused(() => lp('A=1\nB=2\n'), /line break at position 4; this format is one line/);
  });
});

describe('parsePayload: dotenv', () => {
  const de = (s: string) => parsePayload(b(s), 'dotenv').entries;

  it('plain, export, comments, blank lines, spaces around =', () => {
    assert.deepEqual(de('# comment\n\nA=1\nexport B=two\n  C = three  \n\tD=\n'), [['A', '1'], ['B', 'two'], ['C', 'three'], ['D', '']]);
  });

  it('inline comments need whitespace before #', () => {
    assert.deepEqual(de('A=value # note\nB=a#b\nC=x\t#tab comment\n'), [['A', 'value'], ['B', 'a#b'], ['C', 'x']]);
  });

  it('single quotes are literal', () => {
    assert.deepEqual(de(`A='$HOME \\n "x" # not a comment'\nB='' # empty\n`), [['A', '$HOME \\n "x" # not a comment'], ['B', '']]);
  });

  it('double quotes: \\n \\" \\\\ \\$ escapes, no interpolation', () => {
    assert.deepEqual(de('A="line1\\nline2"\nB="say \\"hi\\" \\\\ \\$HOME $HOME"\nC="tab\\there"\n'), [
      ['A', 'line1\nline2'], ['B', 'say "hi" \\ $HOME $HOME'], ['C', 'tab\there'],
    ]);
  });

  it('quoted values may span lines; line numbers stay right after them', () => {
    const entries = de(`CERT="-----BEGIN-----\nabc\n-----END-----"\nX='a\nb'\nY=1\n`);
    assert.deepEqual(entries, [['CERT', '-----BEGIN-----\nabc\n-----END-----'], ['X', 'a\nb'], ['Y', '1']]);
    refused(() => de(`CERT="a\nb\nc"\nX='a\nb'\nthis is wrong\n`), /dotenv line 6: expected NAME=VALUE/);
  });

  it('CRLF files read like LF files', () => {
    assert.deepEqual(de('A=1\r\nB="x y"\r\n'), [['A', '1'], ['B', 'x y']]);
  });

  it('quotes inside unquoted values are literal', () => {
    assert.deepEqual(de(`A=it's\nB=say"hi"\n`), [['A', "it's"], ['B', 'say"hi"']]);
  });

  it('a line that is not an assignment names its line number, not its text', () => {
    refused(() => de('A=1\n# c\nmy password is hunter2\n'), /dotenv line 3: expected NAME=VALUE/, 'hunter2');
    refused(() => de('A=1\n=nokey\n'), /dotenv line 2/);
  });

  it('unterminated quotes name the line and key, not the value', () => {
    refused(() => de('A=1\nSECRET="hunter2\nB=2\n'), /dotenv line 2: the double quote opening the value of SECRET is never closed/, 'hunter2');
    refused(() => de("X='abc"), /dotenv line 1: the single quote opening the value of X/);
  });

  it('text after a closing quote is an error', () => {
    refused(() => de('A="x" y\n'), /dotenv line 1: unexpected text after the closing quote of A/);
    assert.deepEqual(de('A="x"   # ok\n'), [['A', 'x']]);
  });

  it('unknown escapes in double quotes are an error', () => {
    refused(() => de('P="C:\\Windows"\n'), /dotenv line 1: unknown escape in the double-quoted value of P/, 'Windows');
  });
});

describe('parsePayload: json', () => {
  const js = (s: string) => parsePayload(b(s), 'json').entries;

  it('an object of strings, in document order (integer-like keys too)', () => {
    assert.deepEqual(js('{"B": "2", "A": "x \\"q\\" \\u00e9", "1": "one"}'), [['B', '2'], ['A', 'x "q" é'], ['1', 'one']]);
  });

  it('keeps duplicate keys so validation can refuse them', () => {
    assert.deepEqual(js('{"A": "1", "A": "2"}'), [['A', '1'], ['A', '2']]);
  });

  it('a non-string value names the key and suggests quoting, without the value', () => {
    refused(() => js('{"PORT": 8080}'), /key "PORT" has a number value; every value must be a string — quote it/, '8080');
    refused(() => js('{"A": "x", "DEBUG": true}'), /key "DEBUG" has a boolean value/);
    refused(() => js('{"N": null}'), /key "N" has null value/);
    refused(() => js('{"O": {"x": "y"}}'), /key "O" has an object value/);
  });

  it('not an object', () => {
    refused(() => js('["A=1"]'), /must be an object of strings, not an array/);
  });

  it('syntax errors give line and column, never the input', () => {
    refused(() => js('{\n  "A": "hunter2",\n  "B": oops\n}'), /JSON payload is not valid JSON at line 3, column 8$/, 'hunter2');
  });
});

describe('parsePayload: encoding and auto', () => {
  it('invalid UTF-8 names the byte offset', () => {
    refused(() => parsePayload(Buffer.concat([b('A=caf'), Buffer.from([0xe9]), b(',B=1')]), 'auto'), /not valid UTF-8 \(first bad byte at offset 5\)/);
    refused(() => parsePayload(Buffer.from([0x41, 0x3d, 0xc0, 0x80]), 'dotenv'), /offset 2/); // overlong NUL
    refused(() => parsePayload(Buffer.from([0x41, 0x3d, 0xed, 0xa0, 0x80]), 'dotenv'), /offset 2/); // surrogate
  });

  it('a UTF-8 BOM is dropped', () => {
    assert.deepEqual(parsePayload(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b('A=1')]), 'auto').entries, [['A', '1']]);
  });

  it('auto picks json, dotenv or launch-params by shape', () => {
    assert.equal(detectFormat('  {"A":"1"}'), 'json');
    assert.equal(detectFormat('A=1\nB=2'), 'dotenv');
    assert.equal(detectFormat('# only comment\nA=1'), 'dotenv');
    assert.equal(detectFormat('export A=1'), 'dotenv');
    assert.equal(detectFormat('A=1,B=2\n'), 'launch-params');
    assert.equal(detectFormat('\nA=1,B=x=y\n\n'), 'launch-params');
    const parsed = parsePayload(b('A=1,B=2'), 'auto');
    assert.deepEqual(parsed, { format: 'launch-params', entries: [['A', '1'], ['B', '2']] });
  });

  it('a forced format is used even when auto would pick another', () => {
    assert.deepEqual(parsePayload(b('A=1,B=2'), 'dotenv').entries, [['A', '1,B=2']]);
  });
});
