import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMetaData } from '../../agent/src/sources/meta-data';

test('plain key: value lines', () => {
  const m = parseMetaData('instance-id: iid-123\nlocal-hostname: web-1\n');
  assert.equal(m.get('instance-id'), 'iid-123');
  assert.equal(m.get('local-hostname'), 'web-1');
});

test('quoted values: single (with doubled quote) and double (with escapes)', () => {
  const m = parseMetaData(`instance-id: 'i''d # not a comment'\nlocal-hostname: "a\\"b\\tc"\nkey3: "x" # trailing comment\n`);
  assert.equal(m.get('instance-id'), "i'd # not a comment");
  assert.equal(m.get('local-hostname'), 'a"b\tc');
  assert.equal(m.get('key3'), 'x');
});

test('comments, document markers, CRLF and a BOM are handled', () => {
  const m = parseMetaData('\uFEFF---\r\n# comment\r\ninstance-id: iid-crlf   # the id\r\n...\r\n');
  assert.equal(m.get('instance-id'), 'iid-crlf');
  assert.equal(m.size, 1);
});

test('nested values are skipped, not mistaken for top-level keys', () => {
  const text = 'network-interfaces:\n  instance-id: nested-wrong\n  iface: eth0\ninstance-id: top-right\n';
  const m = parseMetaData(text);
  assert.equal(m.get('instance-id'), 'top-right');
  assert.equal(m.get('network-interfaces'), '');
  assert.equal(m.has('iface'), false);
});

test('block scalars: literal keeps newlines, folded joins with spaces', () => {
  const m = parseMetaData('a: |\n  line1\n  line2\nb: >-\n  one\n  two\ninstance-id: z\n');
  assert.equal(m.get('a'), 'line1\nline2');
  assert.equal(m.get('b'), 'one two');
  assert.equal(m.get('instance-id'), 'z');
});

test('JSON meta-data (what cloud-localds writes without a meta-data file)', () => {
  const m = parseMetaData('{\n"instance-id": "iid-local01"\n}\n');
  assert.equal(m.get('instance-id'), 'iid-local01');
});

test('YAML flow mapping that is not JSON', () => {
  const m = parseMetaData("{instance-id: iid-flow, local-hostname: 'h1'}");
  assert.equal(m.get('instance-id'), 'iid-flow');
  assert.equal(m.get('local-hostname'), 'h1');
});

test('a colon inside a plain value and a key without a space are not split wrongly', () => {
  const m = parseMetaData('seedfrom: http://10.0.0.1:8000/\nnot:a-key\n');
  assert.equal(m.get('seedfrom'), 'http://10.0.0.1:8000/');
  assert.equal(m.has('not'), false);
});
