/**
 * Payload names: which are refused and why. Pure. The lists are exported so docs and the
 * CLI can show them.
 *
 * Two kinds of refusal:
 *  - SHELL-SPECIAL names are refused always, even when config allows them: a shell cannot
 *    hold them as plain variables (readonly, or rewritten on read or at start-up), so the
 *    export stage's byte-for-byte read-back through sh, bash and dash could never pass.
 *    Checked against real sh/bash/dash by test/integration/payload-shell-names.test.ts.
 *  - DANGEROUS names change how programs run (what gets loaded, executed or trusted). A
 *    payload comes over the network; one that could set LD_PRELOAD or NODE_OPTIONS could run
 *    code in every service. Refused unless `payload.allowNames` lists the exact name.
 */
import { PayloadError } from '../errors';

export const NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;

/** Exact names a shell cannot hold as ordinary variables. */
export const SHELL_SPECIAL_NAMES: Readonly<Record<string, string>> = {
  UID: 'readonly in bash', EUID: 'readonly in bash', PPID: 'readonly in bash, reset by every shell',
  BASHOPTS: 'readonly in bash', SHELLOPTS: 'readonly in bash', BASH: 'set by bash at start-up',
  RANDOM: 'bash returns a random number', SRANDOM: 'bash returns a random number',
  SECONDS: 'bash counts seconds', LINENO: 'bash returns the line number', HISTCMD: 'bash history counter',
  FUNCNAME: 'bash call stack', GROUPS: 'bash group list', DIRSTACK: 'bash directory stack',
  PIPESTATUS: 'bash exit statuses', EPOCHSECONDS: 'bash clock', EPOCHREALTIME: 'bash clock',
  BASHPID: 'bash process id', OPTIND: 'getopts state; dash refuses non-numbers', OPTARG: 'getopts state',
  OPTERR: 'bash resets it at start-up', PWD: 'shells reset it to the working directory',
  OLDPWD: 'bash drops it at start-up', _: 'shells set it to the last argument', SHLVL: 'every shell increments it',
  IFS: 'sh, bash and dash ignore it from the environment', PS1: 'bash unsets it when not interactive',
  PS2: 'bash unsets it when not interactive', PS4: 'bash ignores it from the environment when run as root',
};

/** Name prefixes a shell treats specially (bash's own variables, completion state). */
export const SHELL_SPECIAL_PREFIXES: Readonly<Record<string, string>> = {
  BASH_: 'bash variables (readonly, dynamic, or changing how bash runs)',
  COMP_: 'bash completion state, reset by bash',
};

/** Exact names that change how programs run. */
export const DANGEROUS_NAMES: Readonly<Record<string, string>> = {
  PATH: 'decides which program every command runs',
  BASH_ENV: 'a file bash runs before every script (also refused as BASH_*)',
  ENV: 'a file sh runs at start-up', CDPATH: 'changes where cd goes in scripts',
  GLOBIGNORE: 'changes bash globbing', PROMPT_COMMAND: 'runs a command at every prompt',
  POSIXLY_CORRECT: 'switches bash and GNU tools to other behaviour', SHELL: 'the shell programs run for users',
  HOME: 'where programs read their configuration', TMPDIR: 'where programs create temporary files',
  GCONV_PATH: 'glibc loads charset modules from it', GLIBC_TUNABLES: 'changes glibc internals (CVE-2023-4911)',
  LOCPATH: 'glibc loads locale data from it', NLSPATH: 'glibc loads message catalogs from it',
  HOSTALIASES: 'rewrites host names for the resolver', LOCALDOMAIN: 'changes DNS search domains',
  RES_OPTIONS: 'changes resolver behaviour', RESOLV_HOST_CONF: 'changes resolver configuration',
  NODE_OPTIONS: 'adds Node.js flags, e.g. --require', NODE_PATH: 'where Node.js finds modules',
  NODE_EXTRA_CA_CERTS: 'adds TLS trust to Node.js', PYTHONPATH: 'where Python finds modules',
  PYTHONSTARTUP: 'a file Python runs', PYTHONHOME: 'where Python finds its library',
  PYTHONUSERBASE: 'where Python finds user packages', PYTHONINSPECT: 'makes Python interactive',
  PYTHONBREAKPOINT: 'a callable Python runs on breakpoint()', PERL5LIB: 'where Perl finds modules',
  PERL5OPT: 'adds Perl flags, e.g. -M', PERLLIB: 'where Perl finds modules', PERL5DB: 'code the Perl debugger runs',
  RUBYOPT: 'adds Ruby flags, e.g. -r', RUBYLIB: 'where Ruby finds libraries',
  JAVA_TOOL_OPTIONS: 'adds JVM flags, e.g. -javaagent', _JAVA_OPTIONS: 'adds JVM flags',
  JDK_JAVA_OPTIONS: 'adds JVM flags', CLASSPATH: 'where Java finds classes',
  PHPRC: 'where PHP finds php.ini (auto_prepend_file runs code)', PHP_INI_SCAN_DIR: 'extra php.ini files',
  OPENSSL_CONF: 'OpenSSL config can load engines (code)', OPENSSL_ENGINES: 'where OpenSSL loads engines from',
  SSL_CERT_FILE: 'replaces the TLS trust store', SSL_CERT_DIR: 'replaces the TLS trust store',
  CURL_CA_BUNDLE: 'replaces curl\'s TLS trust store', REQUESTS_CA_BUNDLE: 'replaces Python requests\' TLS trust store',
  GIT_SSH: 'a program git runs', GIT_SSH_COMMAND: 'a command git runs', GIT_EXEC_PATH: 'where git finds its programs',
  GIT_ASKPASS: 'a program git runs', SSH_ASKPASS: 'a program ssh runs', SUDO_ASKPASS: 'a program sudo runs',
  EDITOR: 'a program other programs run', VISUAL: 'a program other programs run', PAGER: 'a program other programs run',
  GIT_PAGER: 'a program git runs', MANPAGER: 'a program man runs', BROWSER: 'a program other programs run',
  LESSOPEN: 'a command less runs on every file', LESSCLOSE: 'a command less runs on every file',
  NOTIFY_SOCKET: 'systemd notification socket: a service could report for another',
  LISTEN_FDS: 'systemd socket activation state', LISTEN_PID: 'systemd socket activation state',
  LISTEN_FDNAMES: 'systemd socket activation state', WATCHDOG_USEC: 'systemd watchdog state',
  WATCHDOG_PID: 'systemd watchdog state',
};

/** Prefixes of names that change how programs run. */
export const DANGEROUS_PREFIXES: Readonly<Record<string, string>> = {
  LD_: 'the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …) loads code from it',
  MALLOC_: 'changes glibc malloc behaviour',
  GIT_CONFIG: 'adds git configuration (core.sshCommand, hooks)',
  SYSTEMD_: 'changes how systemd tools behave',
};

export type NameVerdict =
  | { status: 'ok' }
  | { status: 'invalid' | 'shell-special' | 'dangerous'; reason: string };

function byPrefix(name: string, table: Readonly<Record<string, string>>): string | undefined {
  for (const [prefix, why] of Object.entries(table)) if (name.startsWith(prefix)) return why;
  return undefined;
}

/** What this module thinks of a name, before allowNames are applied. */
export function classifyName(name: string): NameVerdict {
  if (!NAME_PATTERN.test(name)) return { status: 'invalid', reason: 'names must match ^[A-Z_][A-Z0-9_]*$' };
  const special = Object.hasOwn(SHELL_SPECIAL_NAMES, name) ? SHELL_SPECIAL_NAMES[name] : byPrefix(name, SHELL_SPECIAL_PREFIXES);
  if (special !== undefined) return { status: 'shell-special', reason: special };
  const dangerous = Object.hasOwn(DANGEROUS_NAMES, name) ? DANGEROUS_NAMES[name] : byPrefix(name, DANGEROUS_PREFIXES);
  if (dangerous !== undefined) return { status: 'dangerous', reason: dangerous };
  return { status: 'ok' };
}

export interface ValidateOptions {
  allowNames: readonly string[];
  maxKeys: number;
}

const MAX_REPORTED = 10;

/** A name as shown in an error: invalid names may be fragments of a value, so they are cut short. */
function showName(name: string): string {
  return NAME_PATTERN.test(name) ? name : JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);
}

/**
 * Entries → the payload's variables, in order. Every problem found is reported at once (up to
 * MAX_REPORTED), so a payload author fixes them in one round; values never appear.
 */
export function validateEntries(entries: ReadonlyArray<readonly [string, string]>, opts: ValidateOptions): Map<string, string> {
  if (entries.length > opts.maxKeys) {
    throw new PayloadError(`payload has ${entries.length} keys, more than the ${opts.maxKeys} allowed by payload.maxKeys`, { variables: entries.length });
  }
  const allowed = new Set(opts.allowNames);
  const problems: string[] = [];
  const vars = new Map<string, string>();
  for (const [name, value] of entries) {
    const verdict = classifyName(name);
    if (verdict.status === 'invalid') problems.push(`${showName(name)}: invalid name (${verdict.reason})`);
    else if (verdict.status === 'shell-special') problems.push(`${name}: refused always, a shell cannot hold it as a plain variable (${verdict.reason})`);
    else if (verdict.status === 'dangerous' && !allowed.has(name)) problems.push(`${name}: refused, it changes how programs run (${verdict.reason}); list it in payload.allowNames to allow it`);
    else if (vars.has(name)) problems.push(`${name}: appears more than once`);
    else if (value.includes('\0')) problems.push(`${name}: the value contains a NUL byte, which no environment variable can hold`);
    vars.set(name, value);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_REPORTED);
    const more = problems.length > MAX_REPORTED ? `; and ${problems.length - MAX_REPORTED} more` : '';
    throw new PayloadError(`payload refused: ${shown.join('; ')}${more}`, { problems: problems.length });
  }
  return vars;
}
