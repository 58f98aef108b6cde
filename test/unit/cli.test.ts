import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMANDS, HELP, parseCli } from '../../agent/src/cli';
import { UsageError } from '../../agent/src/errors';
import { main } from '../../agent/src/main';

test('commands and options parse', () => {
  const once = parseCli(['once', '--root', '/tmp/r', '--config', '/etc/x.json', '--json']);
  assert.equal(once.command, 'once');
  assert.equal(once.root, '/tmp/r');
  assert.equal(once.config, '/etc/x.json');
  assert.equal(once.json, true);
  assert.equal(parseCli(['env', '--format', 'sh']).format, 'sh');
  assert.equal(parseCli(['env']).format, 'env');
  assert.equal(parseCli([]).help, true);
  assert.equal(parseCli(['--version']).command, 'version');
  assert.equal(parseCli(['help', 'once']).helpTopic, 'once');
});

test('bad command lines are usage errors that say what was wrong', () => {
  assert.throws(() => parseCli(['frobnicate']), (e) => e instanceof UsageError && /unknown command "frobnicate"/.test(e.message));
  assert.throws(() => parseCli(['env', '--format', 'yaml']), /--format must be one of env, sh, json, got "yaml"/);
  assert.throws(() => parseCli(['once', '--format', 'sh']), /--format applies to 'env' only/);
  assert.throws(() => parseCli(['once', '--bogus']), /Unknown option '--bogus'/);
  assert.throws(() => parseCli(['once', 'extra']), /unexpected argument "extra"/);
  // A flag of another command is refused too: `once --version` must not run the boot work.
  for (const cmd of ['once', 'run', 'firewall', 'env']) {
    assert.throws(() => parseCli([cmd, '--version']), (e) => e instanceof UsageError && new RegExp(`--version is not an option of '${cmd}'`).test(e.message));
  }
  assert.throws(() => parseCli(['once', '--root', '/r', '--config', 'rel.json']), /absolute in-image path/);
});

test('every command has --help', async () => {
  for (const command of COMMANDS) {
    let out = '';
    const code = await main([command, '--help'], { out: (t) => (out += t), err: () => undefined, env: {} });
    assert.equal(code, 0, command);
    assert.match(out, /^Usage: cartridge-agent/, command);
    assert.equal(out, HELP[command === 'help' ? 'main' : command] + '\n');
  }
});

test('usage errors exit 2 with a message on stderr', async () => {
  let err = '';
  const code = await main(['nope'], { out: () => undefined, err: (t) => (err += t), env: {} });
  assert.equal(code, 2);
  assert.match(err, /cartridge-agent: unknown command "nope"/);
});

test('firewall actions parse; a missing or unknown action is a usage error', () => {
  assert.equal(parseCli(['firewall', 'plan']).action, 'plan');
  assert.equal(parseCli(['firewall', 'check', '--root', '/r']).action, 'check');
  assert.equal(parseCli(['firewall', '--help']).help, true);
  assert.throws(() => parseCli(['firewall']), /'firewall' needs an action: plan, apply, check, remove/);
  assert.throws(() => parseCli(['firewall', 'open']), /got "open"/);
  assert.throws(() => parseCli(['firewall', 'plan', 'x']), /unexpected argument "x"/);
});
