/**
 * The pure parts of lifecycle hooks: which directory entries run and in what order, the
 * environment a hook gets, and secret scrubbing of its output. Real processes:
 * test/integration/hooks-run.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildHookEnv, HOOK_EVENTS, ignoredHookNameReason, orderHookNames, secretScrubber } from '../../agent/src/lifecycle/hooks';

test('orderHookNames: C-locale byte order, like run-parts (digits < upper < lower, no natural sort)', () => {
  const { run, ignored } = orderHookNames(['b-second', '10-ten', '9-nine', 'B-upper', 'a', '_under', 'ä-umlaut', '01-first']);
  assert.deepEqual(run, ['01-first', '10-ten', '9-nine', 'B-upper', '_under', 'a', 'b-second', 'ä-umlaut']);
  assert.deepEqual(ignored, []);
});

test('orderHookNames: dotfiles, editor backups and package-manager leftovers are ignored with a reason', () => {
  const { run, ignored } = orderHookNames(['.hidden', 'hook~', '#hook#', 'hook.swp', 'hook.dpkg-old', 'hook.dpkg-dist', 'hook.rpmnew', 'hook.ucf-old', 'hook.sh', 'keep.dpkg']);
  assert.deepEqual(run, ['hook.sh', 'keep.dpkg']);
  assert.deepEqual(
    ignored.map((i) => `${i.name}: ${i.reason}`),
    [
      '.hidden: hidden file',
      'hook~: editor backup',
      '#hook#: editor backup',
      'hook.swp: editor backup',
      'hook.dpkg-old: package manager leftover',
      'hook.dpkg-dist: package manager leftover',
      'hook.rpmnew: package manager leftover',
      'hook.ucf-old: package manager leftover',
    ],
  );
  assert.equal(ignoredHookNameReason('50-warm-cache'), null);
});

test('buildHookEnv: agent env < payload < CARTRIDGE_EVENT and extras; systemd plumbing removed', () => {
  const base = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', APP_MODE: 'agent', NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1', LISTEN_FDS: '1', MALLOC_MMAP_THRESHOLD_: '131072', UNSET: undefined };
  const payload = new Map([
    ['APP_MODE', 'payload'],
    ['QUOTED', `it's "quoted" $HOME \`x\`\nline2`],
    ['CARTRIDGE_EVENT', 'forged'],
  ]);
  const { env, dropped } = buildHookEnv(base, payload, 'activated', { CARTRIDGE_FAULT_REASON: 'port 80 never answered' });
  assert.deepEqual(dropped, []);
  assert.deepEqual(env, {
    PATH: '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    APP_MODE: 'payload',
    QUOTED: `it's "quoted" $HOME \`x\`\nline2`,
    CARTRIDGE_EVENT: 'activated',
    CARTRIDGE_FAULT_REASON: 'port 80 never answered',
  });
});

test('buildHookEnv: values with NUL are dropped and named; extras must be CARTRIDGE_*', () => {
  const { env, dropped } = buildHookEnv({}, new Map([['BAD', 'a\0b'], ['GOOD', 'ok']]), 'fault');
  assert.deepEqual(dropped, ['BAD']);
  assert.deepEqual(env, { GOOD: 'ok', CARTRIDGE_EVENT: 'fault' });
  assert.throws(() => buildHookEnv({}, new Map(), 'fault', { PATH: '/tmp' }), /hook extra "PATH" must be named CARTRIDGE_\*/);
});

test('secretScrubber: values of secret-named payload keys are replaced in output, longest first', () => {
  const scrub = secretScrubber(
    new Map([
      ['DB_PASSWORD', 's3cr3t'],
      ['API_TOKEN', 's3cr3t-and-more'],
      ['PIN_KEY', 'abc'], // too short to scrub safely
      ['PUBLIC_NAME', 's3cr3t'], // not a secret name, but the same value is scrubbed via DB_PASSWORD
    ]),
  );
  assert.equal(scrub('pw=s3cr3t token=s3cr3t-and-more abc'), 'pw=[REDACTED] token=[REDACTED] abc');
  assert.equal(secretScrubber(new Map([['HOST', 'db']]))('db'), 'db');
});

test('HOOK_EVENTS are the lifecycle events of the MQTT contract', () => {
  assert.deepEqual([...HOOK_EVENTS], ['started', 'activated', 'ready-to-shutdown', 'maintenance', 'fault']);
});
