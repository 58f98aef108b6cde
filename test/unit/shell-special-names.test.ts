import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SHELL_SPECIAL_NAMES, shellSpecial } from '../../agent/src/payload/shell-special-names';
import { classifyName, NAME_PATTERN } from '../../agent/src/payload/validate';

const SHELLS = new Set(['bash', 'dash', 'busybox', 'zsh', 'mksh', 'ksh93', 'posh', 'yash']);

describe('shell-special name table', () => {
  it('documents itself: every entry is a payload name with known shells, a kind and a reason', () => {
    for (const [name, entry] of Object.entries(SHELL_SPECIAL_NAMES)) {
      assert.match(name, NAME_PATTERN);
      assert.ok(entry.shells.length > 0 && entry.shells.every((s) => SHELLS.has(s)), `${name}: ${entry.shells.join(' ')}`);
      assert.ok(entry.why.length > 5, name);
    }
  });

  it('holds the names the shells are known for', () => {
    for (const name of ['LINES', 'COLUMNS', 'SECONDS', 'RANDOM', 'HISTSIZE', 'UID', 'EUID', 'GID', 'EGID', 'USERNAME',
      'KSH_VERSION', 'POSH_VERSION', 'ZSH_SUBSHELL', 'ARGC', 'BASHPID', 'BASH_VERSINFO', 'PPID', 'SHELLOPTS', 'PS0', 'PS1',
      'PS4', 'PROMPT_COMMAND', 'RPROMPT', 'RPS1', 'MAIL', 'MAILPATH', 'MAILCHECK', 'FPATH', 'HISTFILE', 'PROMPT', 'PROMPT4']) {
      assert.ok(shellSpecial(name), name);
    }
    assert.equal(shellSpecial('SERVICE_NAME'), undefined);
    assert.equal(shellSpecial('toString'), undefined);
  });

  it('is separate from refusal: most entries are accepted, the rest are refused as dangerous', () => {
    for (const name of Object.keys(SHELL_SPECIAL_NAMES)) assert.notEqual(classifyName(name).status, 'invalid', name);
    assert.equal(classifyName('LINES').status, 'ok');
    assert.equal(classifyName('SHELLOPTS').status, 'dangerous');
  });
});
