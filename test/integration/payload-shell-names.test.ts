/**
 * The name lists in payload/validate.ts checked against real sh, bash and dash: every name a
 * shell rewrites or refuses (read back from the environment, or after an `export NAME='…'`
 * as the profile.d export does) must be refused ALWAYS, and every name that may be allowed
 * through payload.allowNames must survive all three shells byte for byte.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { classifyName, DANGEROUS_NAMES, SHELL_SPECIAL_NAMES } from '../../agent/src/payload/validate';
import { requireCommands } from '../helpers/env';

const SHELLS = ['sh', 'bash', 'dash'];
const VALUE = "v-1 two 'three'";

/** Names worth probing: both lists, examples of the prefixes, and shell variables we chose NOT to refuse. */
const CANDIDATES = [
  ...Object.keys(SHELL_SPECIAL_NAMES),
  ...Object.keys(DANGEROUS_NAMES),
  'BASH_XTRACEFD', 'BASH_COMPAT', 'BASH_ARGV0', 'BASH_SUBSHELL', 'BASH_COMMAND', 'BASH_LINENO', 'COMP_WORDBREAKS',
  'LD_X', 'MALLOC_X', 'GIT_CONFIG_X', 'SYSTEMD_X',
  'HOSTNAME', 'HOSTTYPE', 'MACHTYPE', 'OSTYPE', 'PS3', 'MAILCHECK', 'HISTFILE', 'HISTSIZE', 'COLUMNS', 'LINES', 'TERM',
  'FUNCNEST', 'TIMEFORMAT', 'INPUTRC', 'REPLY', 'TMOUT', 'HISTCONTROL', 'FCEDIT', 'LANG', 'MAIL', 'USER', 'LOGNAME',
  'SERVICE_NAME', 'PORTS', 'MB_IP',
];

const paths = new Map<string, string>();
function shellPath(shell: string): string {
  let p = paths.get(shell);
  if (p === undefined) paths.set(shell, (p = spawnSync('sh', ['-c', `command -v ${shell}`], { encoding: 'utf8' }).stdout.trim()));
  return p;
}

// stdin must not be Node's default pipe: that is a socketpair, and Debian's bash, seeing a
// socket on stdin, thinks sshd started it and sources ~/.bashrc even for `bash -c`.
const run = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], encoding: 'utf8' as const };

/** Which ways (if any) a shell fails to hand the value back. */
function rewrites(shell: string, name: string): string[] {
  const path = shellPath(shell);
  const read = `printf %s "\${${name}-<unset>}"`;
  const quoted = `'${VALUE.replace(/'/g, `'\\''`)}'`;
  const viaEnv = spawnSync(path, ['-c', read], { ...run, env: { [name]: VALUE } });
  const viaExport = spawnSync(path, ['-c', `${name}=${quoted}; export ${name}; ${read}`], { ...run, env: {} });
  const problems: string[] = [];
  if (viaEnv.stdout !== VALUE) problems.push(`${shell} from env → ${JSON.stringify(viaEnv.stdout || viaEnv.stderr.trim())}`);
  if (viaExport.stdout !== VALUE) problems.push(`${shell} after export → ${JSON.stringify(viaExport.stdout || viaExport.stderr.trim())}`);
  return problems;
}

describe('payload name lists against real shells', () => {
  const results = new Map<string, string[]>();
  const probe = (name: string): string[] => {
    let r = results.get(name);
    if (!r) results.set(name, (r = SHELLS.flatMap((s) => rewrites(s, name))));
    return r;
  };

  it('the probe sees what shells are known to do (it is not vacuous)', (t) => {
    if (!requireCommands(t, ...SHELLS)) return;
    for (const name of ['SHLVL', 'RANDOM', 'PPID', 'IFS', 'UID', 'PWD']) assert.ok(probe(name).length > 0, `${name} not seen as rewritten`);
    assert.deepEqual(probe('SERVICE_NAME'), []);
  });

  it('every name a shell rewrites or refuses is refused always', (t) => {
    if (!requireCommands(t, ...SHELLS)) return;
    const missing = [...new Set(CANDIDATES)]
      .filter((name) => probe(name).length > 0 && classifyName(name).status !== 'shell-special')
      .map((name) => `${name} (${classifyName(name).status}): ${probe(name).join('; ')}`);
    assert.deepEqual(missing, []);
  });

  it('every name allowNames can let through survives sh, bash and dash byte for byte', (t) => {
    if (!requireCommands(t, ...SHELLS)) return;
    const broken = [...new Set(CANDIDATES)]
      .filter((name) => ['dangerous', 'ok'].includes(classifyName(name).status) && probe(name).length > 0)
      .map((name) => `${name}: ${probe(name).join('; ')}`);
    assert.deepEqual(broken, []);
  });
});
