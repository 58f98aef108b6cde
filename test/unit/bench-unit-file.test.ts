/**
 * The daemon bench reads node flags, environment and watchdog from the agent's systemd unit
 * (bench/lib/unit-file.ts): pure parsing, including the real unit in packaging/systemd/.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { requireFile } from '../helpers/env';
import { expandSpecifiers, parseTimeSpanUsec, parseUnitDeployment, splitWords } from '../../bench/lib/unit-file';

const UNIT = `
[Unit]
Description=x
ExecStart=/usr/bin/false --not-this-one

[Service]
Type=notify
# ExecStart=/usr/bin/node --commented-out
ExecStartPre=+/bin/touch /run/xtables.lock
ExecStart=/usr/bin/node --max-semi-space-size=1 --jitless /usr/lib/cartridge-agent/cartridge-agent.js run
Environment=CARTRIDGE_AGENT_CODE_CACHE=%C/cartridge-agent
Environment="A=two words" B=plain
WatchdogSec=30s

[Install]
WantedBy=multi-user.target
`;

test('node flags, environment and watchdog come from [Service]', () => {
  const d = parseUnitDeployment(UNIT, 'x.service');
  assert.equal(d.program, '/usr/bin/node');
  assert.deepEqual(d.nodeFlags, ['--max-semi-space-size=1', '--jitless']);
  assert.deepEqual(d.environment, [
    ['CARTRIDGE_AGENT_CODE_CACHE', '%C/cartridge-agent'],
    ['A', 'two words'],
    ['B', 'plain'],
  ]);
  assert.equal(d.watchdogUsec, 30_000_000);
});

test('ExecStart prefixes and continuation lines; no flags is an empty list', () => {
  const d = parseUnitDeployment('[Service]\nExecStart=-/usr/bin/node \\\n  --jitless \\\n  /x.js run\n', 'y');
  assert.deepEqual(d.nodeFlags, ['--jitless']);
  assert.deepEqual(parseUnitDeployment('[Service]\nExecStart=/usr/bin/node /x.js run\n', 'y').nodeFlags, []);
  assert.equal(parseUnitDeployment('[Service]\nExecStart=/usr/bin/node /x.js run\n', 'y').watchdogUsec, null);
});

test('a unit the bench cannot read is an error naming the file and line', () => {
  assert.throws(() => parseUnitDeployment('[Service]\nType=notify\n', 'u.service'), /u\.service: expected one ExecStart= in \[Service\], found 0/);
  assert.throws(() => parseUnitDeployment('[Service]\nExecStart=/usr/bin/python3 x.py\n', 'u.service'), /u\.service line 2: ExecStart= runs "\/usr\/bin\/python3", not node/);
  assert.throws(() => parseUnitDeployment('[Service]\nExecStart=/usr/bin/node --jitless\n', 'u.service'), /line 2: ExecStart= names no script/);
  assert.throws(() => parseUnitDeployment('[Service]\nExecStart=/usr/bin/node x.js\nWatchdogSec=soon\n', 'u.service'), /line 3: WatchdogSec=soon is not a time span/);
  assert.throws(() => parseUnitDeployment('[Service]\nExecStart=/usr/bin/node x.js\nEnvironment=NOVALUE\n', 'u.service'), /line 3: Environment= entry "NOVALUE" is not NAME=value/);
  assert.throws(() => parseUnitDeployment('[Service]\nExecStart=/usr/bin/node "x.js\n', 'u.service'), /u\.service line 2: unterminated " quote/);
});

test('words, time spans and specifiers', () => {
  assert.deepEqual(splitWords(`a "b c" 'd "e"' f\\ g`, () => 'w'), ['a', 'b c', 'd "e"', 'f g']);
  assert.equal(parseTimeSpanUsec('1min 30s'), 90_000_000);
  assert.equal(parseTimeSpanUsec('500ms'), 500_000);
  assert.equal(parseTimeSpanUsec('20'), 20_000_000);
  assert.equal(parseTimeSpanUsec('3 fortnights'), null);
  assert.deepEqual(expandSpecifiers('%C/cartridge-agent', { C: '/tmp/c' }), { value: '/tmp/c/cartridge-agent' });
  assert.deepEqual(expandSpecifiers('100%%', {}), { value: '100%' });
  assert.deepEqual(expandSpecifiers('%S/x', { C: '/tmp/c' }), { unknown: '%S' });
});

test('the packaged unit runs node with flags the bench can read', (t) => {
  const file = 'packaging/systemd/cartridge-agent.service';
  if (!requireFile(t, existsSync(file) ? file : null, `no ${file}`)) return;
  const d = parseUnitDeployment(readFileSync(file, 'utf8'), file);
  assert.equal(d.program, '/usr/bin/node');
  assert.ok(d.nodeFlags.every((f) => f.startsWith('--')), `flags: ${d.nodeFlags.join(' ')}`);
});
