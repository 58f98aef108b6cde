/**
 * The generated man pages render without a single groff or man-db warning (what lintian
 * checks), carry every command, exit code and config key; the generated bash completions
 * complete commands, actions, options and option values in a real bash.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS, FIREWALL_ACTIONS } from '../../agent/src/cli';
import { LOG_LEVELS } from '../../agent/src/log';
import { OPTIONS as CONTROLLER_OPTIONS } from '../../controller-stub/src/cli';
import { REPO } from '../../scripts/gen-docs';
import { configKeys } from '../../scripts/lib/gen/config-doc';
import { requireCommands } from '../helpers/env';

const GEN = path.join(REPO, 'packaging/generated');
const PAGES = ['man/cartridge-agent.1', 'man/cartridge-controller.1', 'man/agent.json.5'];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, maxBuffer: 8 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The page as man shows it (plain text, 80 columns), with every warning man-db and groff give. */
function render(page: string): { code: number | null; out: string; err: string } {
  const r = run('man', ['--warnings', '-E', 'UTF-8', '-l', '-Tutf8', path.join(GEN, page)], { LC_ALL: 'C.UTF-8', MANWIDTH: '80' });
  // Bold and underline are overstrikes (c BS c, _ BS c); man-db's hyphens and minus signs are Unicode.
  // eslint-disable-next-line no-control-regex -- the backspace of man's overstrikes
  return { ...r, out: r.out.replace(/.\x08/gu, '').replace(/[\u2010\u2212]/g, '-') };
}

describe('the man pages', () => {
  for (const page of PAGES) {
    it(`${page}: groff -man -ww and man --warnings print no warning`, (t) => {
      if (!requireCommands(t, 'groff', 'man')) return;
      const g = run('groff', ['-man', '-Tutf8', '-ww', '-z', path.join(GEN, page)]);
      assert.equal(g.code, 0);
      assert.equal(g.err, '');
      const m = render(page);
      assert.equal(m.code, 0, m.err);
      assert.equal(m.err, '');
    });
  }

  it('cartridge-agent(1) has every command, the exit codes of docs/cli.md, the environment and files', (t) => {
    if (!requireCommands(t, 'groff', 'man')) return;
    const text = render('man/cartridge-agent.1').out;
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SEE ALSO']) assert.match(text, new RegExp(`^${s}$`, 'm'));
    for (const c of COMMANDS) assert.match(text, new RegExp(`^ {3}cartridge-agent ${c}\\b`, 'm'), `command ${c}`);
    for (let code = 0; code <= 13; code += 1) assert.match(text, new RegExp(`^ {7}${code} {2,}\\S`, 'm'), `exit code ${code}`);
    assert.match(text, /^ {7}13 +status: the daemon is not running/m);
    assert.match(text, /CARTRIDGE_AGENT_WAIT_SECONDS\n +overrides sources\.waitSeconds/);
    assert.match(text, /\/usr\/share\/cartridge-agent\/agent\.schema\.json/);
  });

  it('agent.json(5) describes every key with its type and default', (t) => {
    if (!requireCommands(t, 'groff', 'man')) return;
    const text = render('man/agent.json.5').out;
    for (const k of configKeys()) assert.match(text, new RegExp(`^ {7}${k.key.replace(/[.$]/g, '\\$&')}\\n`, 'm'), k.key);
    assert.match(text, /sources\.waitSeconds\n +integer 0–3600; default 60\./);
    assert.match(text.replace(/\n +/g, " "), /firewall\.mode "enforce", "plan", "off"; default "enforce" \("plan" under --root\)\./);
  });

  it('cartridge-controller(1) has every command and its options', (t) => {
    if (!requireCommands(t, 'groff', 'man')) return;
    const text = render('man/cartridge-controller.1').out;
    for (const [c, opts] of Object.entries(CONTROLLER_OPTIONS)) {
      assert.match(text, new RegExp(`^ {3}cartridge-controller ${c}\\b`, 'm'), `command ${c}`);
      for (const o of Object.keys(opts)) assert.ok(text.includes(`--${o}`), `${c} --${o}`);
    }
  });
});

/** COMPREPLY of the program's completion function for the words typed so far (the last is the one being completed). */
function complete(program: string, words: string[], cwd = REPO): string[] {
  const fn = `_${program.replace(/-/g, '_')}`;
  const script = `set -u; source "$1"; shift; complete -p ${program}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'bash', path.join(GEN, 'completion', program), program, ...words], { encoding: 'utf8', cwd });
  assert.equal(r.status, 0, r.stderr);
  const [registration, ...reply] = r.stdout.split('\n').filter(Boolean);
  assert.equal(registration, `complete -F ${fn} ${program}`);
  return reply;
}

describe('bash completion (real bash)', () => {
  it('cartridge-agent: commands, actions, per-command options, option values', (t) => {
    if (!requireCommands(t, 'bash')) return;
    assert.deepEqual(complete('cartridge-agent', ['']), [...COMMANDS, '--help', '--version']);
    assert.deepEqual(complete('cartridge-agent', ['fi']), ['firewall']);
    assert.deepEqual(complete('cartridge-agent', ['firewall', '']), [...FIREWALL_ACTIONS]);
    assert.deepEqual(complete('cartridge-agent', ['firewall', 're']), ['remove', 'restore']);
    assert.deepEqual(complete('cartridge-agent', ['config', '']), ['check']);
    assert.deepEqual(complete('cartridge-agent', ['config', 'check', '--']), ['--config', '--root', '--log-level', '--help']);
    assert.deepEqual(complete('cartridge-agent', ['once', '--']), ['--json', '--config', '--root', '--log-level', '--help']);
    assert.deepEqual(complete('cartridge-agent', ['run', '--j']), [], 'run takes no --json');
    assert.deepEqual(complete('cartridge-agent', ['env', '--format', '']), ['env', 'sh', 'json']);
    assert.deepEqual(complete('cartridge-agent', ['--root', '/x', 'env', '--log-level', '']), [...LOG_LEVELS]);
    assert.deepEqual(complete('cartridge-agent', ['help', 'st']), ['status']);
    // After an option's value the command is still found: `--config FILE firewall <TAB>`.
    assert.deepEqual(complete('cartridge-agent', ['--config', '/etc/x.json', 'firewall', 'p']), ['plan']);
    assert.deepEqual(complete('cartridge-agent', ['once', '--config', 'packaging/generated/agent.sch']), ['packaging/generated/agent.schema.json']);
    assert.deepEqual(complete('cartridge-agent', ['once', '--root', 'packaging/gen']), ['packaging/generated']);
  });

  it('cartridge-controller: commands, per-command options, option values', (t) => {
    if (!requireCommands(t, 'bash')) return;
    assert.deepEqual(complete('cartridge-controller', ['']), [...Object.keys(CONTROLLER_OPTIONS), 'version', 'help', '--help', '--version']);
    assert.deepEqual(complete('cartridge-controller', ['mo']), ['mosquitto-config']);
    assert.deepEqual(complete('cartridge-controller', ['fleet', '--']), ['--state', '--help', '--url', '--json']);
    assert.deepEqual(complete('cartridge-controller', ['register', '--pa']), ['--payload-file']);
    assert.deepEqual(complete('cartridge-controller', ['serve', '--log-level', 'd']), ['debug']);
    assert.deepEqual(complete('cartridge-controller', ['serve', '--http', '']), [], 'a free value: nothing to offer');
    assert.deepEqual(complete('cartridge-controller', ['help', 'te']), ['terminate']);
    assert.deepEqual(complete('cartridge-controller', ['register', '--payload-file', 'packaging/generated/agent.sch']), ['packaging/generated/agent.schema.json']);
  });
});
