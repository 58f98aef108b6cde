import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refused } from '../helpers/assertions';
import {
  classifyName, DANGEROUS_NAMES, DANGEROUS_PREFIXES, SHELL_SPECIAL_NAMES, SHELL_SPECIAL_PREFIXES, validateEntries,
} from '../../agent/src/payload/validate';
import { buildPayload } from '../../agent/src/payload';
import { createHash } from 'node:crypto';

const opts = { allowNames: [] as string[], maxKeys: 100 };


describe('validateEntries', () => {
  it('keeps order and values', () => {
    const vars = validateEntries([['B', '2'], ['A', ''], ['_X9', 'v']], opts);
    assert.deepEqual([...vars], [['B', '2'], ['A', ''], ['_X9', 'v']]);
  });

  it('refuses names outside ^[A-Z_][A-Z0-9_]*$', () => {
    for (const name of ['lower', '1ABC', 'A-B', 'A.B', '', 'Ä', 'A B']) {
      refused(() => validateEntries([[name, 'v']], opts), /invalid name \(names must match/);
    }
  });

  it('refuses dangerous names unless allowed, exact name only', () => {
    for (const name of ['PATH', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'NODE_OPTIONS', 'PYTHONPATH', 'ENV', 'MALLOC_CHECK_', 'GLIBC_TUNABLES', 'JAVA_TOOL_OPTIONS']) {
      refused(() => validateEntries([[name, 'x']], opts), new RegExp(`${name}: refused, it changes how programs run .*payload\\.allowNames`));
    }
    const vars = validateEntries([['PATH', '/opt/app/bin:/usr/bin'], ['LD_LIBRARY_PATH', '/opt/lib']], { ...opts, allowNames: ['PATH', 'LD_LIBRARY_PATH'] });
    assert.equal(vars.get('PATH'), '/opt/app/bin:/usr/bin');
    refused(() => validateEntries([['LD_PRELOAD', 'x']], { ...opts, allowNames: ['LD_LIBRARY_PATH'] }), /LD_PRELOAD: refused/);
  });

  it('refuses shell-special names always, even when allowed', () => {
    for (const name of ['UID', 'PPID', 'SHELLOPTS', 'BASH_VERSINFO', 'BASH_ENV', 'BASH_FOO', 'RANDOM', 'SECONDS', 'LINENO', 'PWD', 'OLDPWD', '_', 'IFS', 'SHLVL', 'OPTIND', 'COMP_WORDBREAKS']) {
      refused(() => validateEntries([[name, 'x']], { ...opts, allowNames: [name] }), new RegExp(`${name}: refused always, a shell cannot hold it`));
    }
  });

  it('refuses duplicates and NUL bytes, never showing values', () => {
    refused(() => validateEntries([['A', 'hunter2'], ['A', 'x']], opts), /A: appears more than once/, 'hunter2');
    refused(() => validateEntries([['TOKEN', 'hunter2\0x']], opts), /TOKEN: the value contains a NUL byte/, 'hunter2');
  });

  it('refuses more than maxKeys', () => {
    const entries = Array.from({ length: 11 }, (_, i) => [`K${i}`, 'v'] as [string, string]);
    refused(() => validateEntries(entries, { ...opts, maxKeys: 10 }), /payload has 11 keys, more than the 10 allowed by payload\.maxKeys/);
    assert.equal(validateEntries(entries.slice(0, 10), { ...opts, maxKeys: 10 }).size, 10);
  });

  it('reports every problem at once (up to 10)', () => {
    const entries: Array<[string, string]> = [['PATH', 'x'], ['ok', 'x'], ['UID', 'x'], ...Array.from({ length: 12 }, (_, i) => [`bad${i}`, 'x'] as [string, string])];
    refused(() => validateEntries(entries, opts), /^payload refused: PATH: .*"ok": invalid name.*UID: refused always.*; and 5 more$/);
  });

  it('cuts long invalid names short in errors (they may be value fragments)', () => {
    const name = `x${'s'.repeat(100)}`;
    refused(() => validateEntries([[name, 'v']], opts), /"xs{39}…": invalid name/);
  });
});

describe('name lists', () => {
  it('every listed name classifies as listed', () => {
    for (const n of Object.keys(SHELL_SPECIAL_NAMES)) assert.equal(classifyName(n).status, 'shell-special', n);
    for (const p of Object.keys(SHELL_SPECIAL_PREFIXES)) assert.equal(classifyName(`${p}X`).status, 'shell-special', p);
    for (const n of Object.keys(DANGEROUS_NAMES).filter((x) => !x.startsWith('BASH_'))) assert.equal(classifyName(n).status, 'dangerous', n);
    for (const p of Object.keys(DANGEROUS_PREFIXES)) assert.equal(classifyName(`${p}X`).status, 'dangerous', p);
    assert.deepEqual(classifyName('SERVICE_NAME'), { status: 'ok' });
    assert.deepEqual(classifyName('PORTS'), { status: 'ok' });
  });
});

describe('buildPayload', () => {
  const build = { format: 'auto' as const, allowNames: [], maxKeys: 100, maxBytes: 1024 };

  it('parses, validates and digests the raw bytes', () => {
    const raw = Buffer.from('SERVICE_NAME=php,PORTS=80|443\n');
    const payload = buildPayload(raw, build);
    assert.equal(payload.format, 'launch-params');
    assert.deepEqual([...payload.vars], [['SERVICE_NAME', 'php'], ['PORTS', '80|443']]);
    assert.equal(payload.digest, createHash('sha256').update(raw).digest('hex'));
    assert.notEqual(buildPayload(Buffer.from('SERVICE_NAME=php,PORTS=80|443'), build).digest, payload.digest);
  });

  it('refuses oversized payloads before parsing', () => {
    refused(() => buildPayload(Buffer.alloc(1025, 0x41), build), /payload is 1025 bytes, more than the 1024 allowed by payload\.maxBytes/);
  });

  it('refuses a payload with a forbidden name as a whole', () => {
    refused(() => buildPayload(Buffer.from('{"A": "1", "LD_PRELOAD": "/tmp/x.so"}'), build), /LD_PRELOAD: refused/, '/tmp/x.so');
  });
});
