import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refused } from '../helpers/assertions';
import {
  classifyName, DANGEROUS_NAMES, DANGEROUS_PATTERNS, DANGEROUS_PREFIXES, SHELL_SPECIAL_NAMES, validateEntries,
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

  it('accepts names special to a shell (the sh export leaves them out), unless they are also dangerous', () => {
    const harmless = ['UID', 'PPID', 'BASH_VERSINFO', 'RANDOM', 'SECONDS', 'LINENO', 'PWD', '_', 'IFS', 'SHLVL', 'OPTIND', 'LINES', 'PS1', 'ARGC', 'KSH_VERSION'];
    assert.deepEqual([...validateEntries(harmless.map((n) => [n, 'x']), opts).keys()], harmless);
    for (const name of ['SHELLOPTS', 'BASHOPTS', 'PS4', 'BASH_ENV', 'ENV', 'ZDOTDIR', 'FPATH', 'PROMPT_COMMAND']) {
      refused(() => validateEntries([[name, 'x']], opts), new RegExp(`${name}: refused, it changes how programs run`));
      assert.equal(validateEntries([[name, 'x']], { ...opts, allowNames: [name] }).get(name), 'x');
    }
  });

  it('refuses what systemd sets for a service unless allowed', () => {
    for (const name of ['CREDENTIALS_DIRECTORY', 'RUNTIME_DIRECTORY', 'STATE_DIRECTORY', 'CACHE_DIRECTORY', 'LOGS_DIRECTORY',
      'CONFIGURATION_DIRECTORY', 'INVOCATION_ID', 'JOURNAL_STREAM', 'NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES',
      'WATCHDOG_USEC', 'WATCHDOG_PID', 'MAINPID', 'MANAGERPID', 'SYSTEMD_EXEC_PID', 'TRIGGER_UNIT', 'TRIGGER_PATH',
      'MONITOR_SERVICE_RESULT', 'MONITOR_UNIT', 'EXIT_CODE', 'EXIT_STATUS', 'SERVICE_RESULT', 'XDG_RUNTIME_DIR']) {
      refused(() => validateEntries([[name, 'x']], opts), new RegExp(`${name}: refused, .*payload\\.allowNames`));
      assert.equal(validateEntries([[name, 'x']], { ...opts, allowNames: [name] }).get(name), 'x');
    }
  });

  it('prefix and pattern rules refuse the family, not its neighbours', () => {
    for (const name of ['GIT_CONFIG', 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_12', 'GIT_CONFIG_PARAMETERS',
      'GIT_CONFIG_GLOBAL', 'GIT_CONFIG_SYSTEM', 'GIT_CONFIG_NOSYSTEM', 'LD_AUDIT', 'SYSTEMD_PAGER', 'MALLOC_ARENA_MAX']) {
      assert.equal(classifyName(name).status, 'dangerous', name);
    }
    for (const name of ['GIT_CONFIGURATION', 'GIT_CONFIG_KEY_X', 'GIT_CONFIG_KEY_', 'GIT_CONFIG_VALUE', 'MALLOC_LIMIT', 'LDAP_URL',
      'TRIGGER_URL', 'MONITOR_HOST', 'EXIT_CODE_FILE', 'USER_NAME', 'STATE_DIR']) {
      assert.deepEqual(classifyName(name), { status: 'ok' }, name);
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
    const entries: Array<[string, string]> = [['PATH', 'x'], ['ok', 'x'], ['NOTIFY_SOCKET', 'x'], ...Array.from({ length: 12 }, (_, i) => [`bad${i}`, 'x'] as [string, string])];
    refused(() => validateEntries(entries, opts), /^payload refused: PATH: .*"ok": invalid name.*NOTIFY_SOCKET: refused.*; and 5 more$/);
  });

  it('cuts long invalid names short in errors (they may be value fragments)', () => {
    const name = `x${'s'.repeat(100)}`;
    refused(() => validateEntries([[name, 'v']], opts), /"xs{39}…": invalid name/);
  });
});

describe('name lists', () => {
  it('every listed name classifies as listed', () => {
    for (const n of Object.keys(SHELL_SPECIAL_NAMES)) assert.notEqual(classifyName(n).status, 'invalid', n);
    for (const n of Object.keys(DANGEROUS_NAMES)) assert.equal(classifyName(n).status, 'dangerous', n);
    for (const p of Object.keys(DANGEROUS_PREFIXES)) assert.equal(classifyName(`${p}X`).status, 'dangerous', p);
    for (const [re] of DANGEROUS_PATTERNS) assert.ok(!re.test('GIT_CONFIGURATION'), String(re));
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
