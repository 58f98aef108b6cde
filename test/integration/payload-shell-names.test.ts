/**
 * The shell-special table (payload/shell-special-names.ts) checked against the real shells of
 * test/fixtures/export/shells.ts, interactive too:
 *  - without the table, its names do harm: sourcing `export NAME='…'` runs code, stops the file
 *    or changes the shell's group (so the test can fail);
 *  - every other name a shell manual mentions, and every dangerous name payload.allowNames can
 *    let into the sh file, survives every shell byte for byte with hostile values: if one did
 *    not, it would be missing from the table.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderShFile } from '../../agent/src/export/render';
import { shQuote } from '../../agent/src/export/quote';
import { SHELL_SPECIAL_NAMES } from '../../agent/src/payload/shell-special-names';
import { classifyName, DANGEROUS_NAMES } from '../../agent/src/payload/validate';
import { requireCommands, requireRoot } from '../helpers/env';
import { CANARY_FILE, SPECIAL_HOSTILE_VALUES } from '../fixtures/export/hostile-corpus';
import { SHELL_COMMANDS, SHELL_VARIANTS, sourceAndDump } from '../fixtures/export/shells';

/** Names the manuals mention that we do NOT list: the shells keep them as plain variables. */
const MENTIONED_NOT_SPECIAL = [
  'HOSTNAME', 'HOSTTYPE', 'MACHTYPE', 'OSTYPE', 'CPUTYPE', 'VENDOR', 'HOST', 'TTY', 'CHILD_MAX', 'EMACS', 'INSIDE_EMACS',
  'FIGNORE', 'HISTCONTROL', 'HISTIGNORE', 'HISTTIMEFORMAT', 'IGNOREEOF', 'TIMEFORMAT', 'TIMEFMT', 'TMPSUFFIX', 'WORDCHARS',
  'ZBEEP', 'CORRECT_IGNORE', 'CORRECT_IGNORE_FILE', 'HISTORY_IGNORE', 'ZLE_LINE_ABORTED', 'ZLE_REMOVE_SUFFIX_CHARS',
  'ZLE_SPACE_SUFFIX_CHARS', 'MANPATH', 'PSVAR', 'MENUSELECT', 'TERM', 'TERMINFO', 'TERMINFO_DIRS', 'SH_OPTIONS',
  'SERVICE_NAME', 'PORTS', 'GIT_CONFIGURATION', 'MB_IP',
];

/**
 * Plain in every shell, but only for a real value: ksh93 refuses an unknown locale name (and
 * carries on), and PATH decides whether the dumper is found at all.
 */
const PLAIN_WITH_REAL_VALUE: ReadonlyArray<[string, string]> = [
  ['LANG', 'C.UTF-8'], ['LC_ALL', 'C.UTF-8'], ['LC_CTYPE', 'C.UTF-8'], ['LC_COLLATE', 'C'], ['LC_MESSAGES', 'C'],
  ['LC_NUMERIC', 'C'], ['LC_TIME', 'C'], ['PATH', `${process.env.PATH ?? '/usr/bin:/bin'}:/opt/it's $(x)`],
];

/** Dangerous names allowNames can put into the sh file (those not in the table). */
const ALLOWABLE = Object.keys(DANGEROUS_NAMES).filter((n) => !Object.hasOwn(SHELL_SPECIAL_NAMES, n) && n !== 'PATH');

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'shell-names-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const SENTINEL = 'CARTRIDGE_TEST_SENTINEL';

/** A file as the sh export would write it if it had no table: every name, quoted, then the sentinel. */
function rawShFile(name: string, vars: ReadonlyArray<readonly [string, string]>): string {
  const file = path.join(dir, `${name}.sh`);
  writeFileSync(file, [...vars, [SENTINEL, 'end'] as const].map(([k, v]) => `export ${k}=${shQuote(v)}\n`).join(''));
  return file;
}

describe('shell-special names against real shells', () => {
  // [name, value, shell variant, what happens]
  const HARM: ReadonlyArray<[string, string, string, 'runs code' | 'stops the file']> = [
    ['LINES', SPECIAL_HOSTILE_VALUES[0] as string, 'mksh', 'runs code'],
    ['LINES', SPECIAL_HOSTILE_VALUES[1] as string, 'zsh', 'runs code'],
    ['SAVEHIST', SPECIAL_HOSTILE_VALUES[1] as string, 'zsh -i', 'runs code'],
    ['REPORTTIME', SPECIAL_HOSTILE_VALUES[1] as string, 'zsh -i', 'runs code'],
    ['OPTIND', SPECIAL_HOSTILE_VALUES[0] as string, 'bash', 'runs code'],
    ['RANDOM', SPECIAL_HOSTILE_VALUES[0] as string, 'bash --posix', 'runs code'],
    ['USER_ID', SPECIAL_HOSTILE_VALUES[0] as string, 'mksh', 'runs code'],
    ['PS1', SPECIAL_HOSTILE_VALUES[2] as string, 'bash -i', 'runs code'],
    ['PS1', SPECIAL_HOSTILE_VALUES[2] as string, 'dash -i', 'runs code'],
    ['PS0', SPECIAL_HOSTILE_VALUES[3] as string, 'bash -i', 'runs code'],
    ['PROMPT_COMMAND', `touch ${CANARY_FILE}`, 'yash -i', 'runs code'],
    ['ARGC', '1', 'zsh', 'stops the file'],
    ['ZSH_SUBSHELL', '1', 'zsh --emulate sh -i', 'stops the file'],
    ['KSH_VERSION', 'x', 'mksh', 'stops the file'],
    ['POSH_VERSION', 'x', 'posh', 'stops the file'],
    ['BASH_VERSINFO', 'x', 'bash --posix', 'stops the file'],
    ['GID', SPECIAL_HOSTILE_VALUES[2] as string, 'zsh', 'stops the file'],
  ];
  for (const [name, value, variant, harm] of HARM) {
    it(`without the table, ${name} ${harm} in ${variant}; the sh export leaves it out`, (t) => {
      if (!requireCommands(t, ...SHELL_COMMANDS)) return;
      const shell = SHELL_VARIANTS.find((v) => v.name === variant);
      assert.ok(shell, variant);
      assert.ok(Object.hasOwn(SHELL_SPECIAL_NAMES, name), `${name} is in the table`);
      rmSync(CANARY_FILE, { force: true });
      const raw = sourceAndDump(shell, rawShFile(`raw-${name}`, [[name, value]]), dir, false);
      if (harm === 'runs code') assert.equal(existsSync(CANARY_FILE), true, `${variant} did not run ${name}'s value`);
      else assert.notEqual(raw.env?.get(SENTINEL)?.toString(), 'end', `${variant} went on after ${name}`);
      rmSync(CANARY_FILE, { force: true });

      const file = path.join(dir, `rendered-${name}.sh`);
      writeFileSync(file, renderShFile(new Map([[name, value], [SENTINEL, 'end']])));
      const rendered = sourceAndDump(shell, file, dir);
      assert.equal(existsSync(CANARY_FILE), false, `${variant} ran a value of the rendered file`);
      assert.equal(rendered.env?.get(SENTINEL)?.toString(), 'end', `${variant} did not source the rendered file to its end`);
    });
  }

  it('without the table, GID changes zsh\'s group (root)', (t) => {
    if (!requireCommands(t, 'zsh') || !requireRoot(t)) return;
    const r = spawnSync('zsh', ['-c', `. ${shQuote(rawShFile('gid', [['GID', '4242']]))}; id -g`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(r.stdout.trim(), '4242');
  });

  for (const [round, hostile] of SPECIAL_HOSTILE_VALUES.entries()) {
    it(`names not in the table read back byte for byte in every shell (hostile value ${round + 1})`, (t) => {
      if (!requireCommands(t, ...SHELL_COMMANDS)) return;
      rmSync(CANARY_FILE, { force: true });
      const vars: Array<[string, string]> = [
        ...[...MENTIONED_NOT_SPECIAL, ...ALLOWABLE].map((n): [string, string] => [n, `${hostile} ${n}`]),
        ...PLAIN_WITH_REAL_VALUE,
      ];
      const file = rawShFile(`plain-${round}`, vars);
      const problems: string[] = [];
      for (const shell of SHELL_VARIANTS) {
        const r = sourceAndDump(shell, file, dir);
        const bad = vars.filter(([k, v]) => r.env?.get(k)?.toString('utf8') !== v).map(([k]) => k);
        if (r.env?.get(SENTINEL)?.toString() !== 'end') problems.push(`${shell.name}: stopped before the end (first name not read back: ${bad[0]})`);
        else if (bad.length > 0) problems.push(`${shell.name}: ${bad.join(', ')} not read back`);
      }
      assert.deepEqual(problems, []);
      assert.equal(existsSync(CANARY_FILE), false, 'a value was run as code');
    });
  }

  // What a service's EnvironmentFile= could do with them: these are refused unless allowed.
  const FROM_ENVIRONMENT: ReadonlyArray<[name: string, shell: string, script: string, value: (dir: string) => string]> = [
    ['ZDOTDIR', 'zsh', 'true', (d) => d],
    ['FPATH', 'ksh93', 'hook', (d) => d],
    ['BASH_ENV', 'bash', 'true', (d) => path.join(d, 'hook')],
    ['YASH_AFTER_CD', 'yash', 'cd /', () => `touch ${CANARY_FILE}`],
    ['COMMAND_NOT_FOUND_HANDLER', 'yash', 'no-such-command-here', () => `touch ${CANARY_FILE}`],
  ];
  for (const [name, shell, script, value] of FROM_ENVIRONMENT) {
    it(`${name} in the environment makes ${shell} run code, so it is refused unless allowed`, (t) => {
      if (!requireCommands(t, shell)) return;
      assert.equal(classifyName(name).status, 'dangerous');
      const hooks = mkdtempSync(path.join(dir, 'hooks-'));
      for (const f of ['.zshenv', 'hook']) writeFileSync(path.join(hooks, f), `touch ${CANARY_FILE}\nhook() { :; }\n`);
      rmSync(CANARY_FILE, { force: true });
      spawnSync(shell, ['-c', script], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, [name]: value(hooks) }, stdio: 'ignore' });
      assert.equal(existsSync(CANARY_FILE), true, `${shell} did not run code from ${name}`);
      rmSync(CANARY_FILE, { force: true });
    });
  }
});
