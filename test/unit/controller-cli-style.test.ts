/** cartridge-controller's command line behaves like cartridge-agent's: help, version, unknown flags. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main, type CliIo } from '../../controller-stub/src/cli';

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) } as unknown as CliIo;
  const code = await main(argv, io);
  return { code, out, err };
}

test('no command, --help and help print the help on stdout and exit 0 (as the agent)', async () => {
  for (const argv of [[], ['--help'], ['-h'], ['help']]) {
    const r = await run(...argv);
    assert.equal(r.code, 0, argv.join(' '));
    assert.match(r.out, /^Usage: cartridge-controller <command> \[options\]/);
    assert.equal(r.err, '');
  }
});

test('help COMMAND and COMMAND --help print that command\'s help', async () => {
  for (const cmd of ['serve', 'register', 'fleet', 'terminate', 'mosquitto-config']) {
    const a = await run('help', cmd);
    const b = await run(cmd, '--help');
    assert.equal(a.code, 0);
    assert.match(a.out, new RegExp(`^Usage: cartridge-controller ${cmd}`));
    assert.equal(a.out, b.out);
  }
  const unknown = await run('help', 'frobnicate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /help: unknown command "frobnicate"/);
});

test('version and --version print the version', async () => {
  for (const argv of [['version'], ['--version']]) {
    const r = await run(...argv);
    assert.equal(r.code, 0);
    assert.match(r.out, /^cartridge-controller (dev|\d+\.\d+\.\d+)\n$/);
  }
});

test('unknown flags and commands are usage errors (exit 2)', async () => {
  const flag = await run('fleet', '--bogus');
  assert.equal(flag.code, 2);
  assert.match(flag.err, /fleet: .*--bogus/);
  const cmd = await run('frobnicate');
  assert.equal(cmd.code, 2);
  assert.match(cmd.err, /unknown command "frobnicate"; commands: serve, register, fleet, terminate, mosquitto-config, version, help/);
});
