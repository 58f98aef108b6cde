/**
 * Payload names: which are refused and why. Pure. The lists are exported so docs and the
 * CLI can show them.
 *
 * DANGEROUS names change how programs run (what gets loaded, executed or trusted), or are
 * set by systemd for a service and would be overridden by the EnvironmentFile. A payload comes
 * over the network; one that could set LD_PRELOAD or NODE_OPTIONS could run code in every
 * service. Refused unless `payload.allowNames` lists the exact name.
 *
 * Names that are special to a SHELL (integer-typed, read-only, prompt hooks …) are not refused:
 * they are listed in ./shell-special-names.ts and left out of the profile.d file only (see
 * export/render.ts), because sourcing them could run code or stop half-way. Those that also
 * change how a shell started with them in its environment runs (SHELLOPTS, PS4, BASH_ENV,
 * ZDOTDIR …) are dangerous here as well.
 */
import { PayloadError } from '../errors';

export { SHELL_SPECIAL_NAMES } from './shell-special-names';

export const NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;

/** No shell reserves a prefix of valid names: its special names are all exact (shell-special-names.ts). */
export const SHELL_SPECIAL_PREFIXES: Readonly<Record<string, string>> = {};

const SYSTEMD_SET = 'set by systemd for the service (systemd.exec(5)); an EnvironmentFile= would override it';

/** Exact names that change how programs run. */
export const DANGEROUS_NAMES: Readonly<Record<string, string>> = {
  PATH: 'decides which program every command runs',
  BASH_ENV: 'a file bash runs before every script', ENV: 'a file sh runs at start-up',
  CDPATH: 'changes where cd goes in scripts', GLOBIGNORE: 'changes bash globbing', PROMPT_COMMAND: 'runs a command at every prompt',
  POSIXLY_CORRECT: 'switches bash and GNU tools to other behaviour', SHELL: 'the shell programs run for users',
  // Read by a shell from its environment at start-up, so they reach every script a service runs:
  SHELLOPTS: 'bash turns these options on at start-up (xtrace with PS4 runs code)',
  BASHOPTS: 'bash turns these shopt options on at start-up', PS4: 'bash expands it (command substitution) for every traced line',
  BASH_XTRACEFD: 'bash writes its trace to this file descriptor', BASH_COMPAT: 'changes how bash runs scripts',
  BASH_LOADABLES_PATH: 'where bash loads builtins (shared objects) from', EXECIGNORE: 'makes bash skip matching programs',
  FUNCNEST: 'limits function nesting: scripts fail', FPATH: 'ksh93 and zsh load functions (code) from it',
  ZDOTDIR: 'zsh runs .zshenv (code) from it for every script', EXECSHELL: 'the shell mksh and posh run scripts with',
  YASH_AFTER_CD: 'yash runs it as commands after every cd', COMMAND_NOT_FOUND_HANDLER: 'yash runs it when a command is missing',
  YASH_LOADPATH: 'where yash finds scripts for `. -L`', NULLCMD: 'a command zsh runs for a bare redirection',
  READNULLCMD: 'a command zsh runs for a bare input redirection',
  HOME: 'where programs read their configuration', TMPDIR: 'where programs create temporary files',
  GCONV_PATH: 'glibc loads charset modules from it', GLIBC_TUNABLES: 'changes glibc internals (CVE-2023-4911)',
  LOCPATH: 'glibc loads locale data from it', NLSPATH: 'glibc loads message catalogs from it',
  HOSTALIASES: 'rewrites host names for the resolver', LOCALDOMAIN: 'changes DNS search domains',
  RES_OPTIONS: 'changes resolver behaviour', RESOLV_HOST_CONF: 'changes resolver configuration',
  MALLOC_CHECK_: 'changes glibc malloc behaviour', MALLOC_TOP_PAD_: 'changes glibc malloc behaviour',
  MALLOC_PERTURB_: 'changes glibc malloc behaviour', MALLOC_MMAP_THRESHOLD_: 'changes glibc malloc behaviour',
  MALLOC_TRIM_THRESHOLD_: 'changes glibc malloc behaviour', MALLOC_MMAP_MAX_: 'changes glibc malloc behaviour',
  MALLOC_ARENA_MAX: 'changes glibc malloc behaviour', MALLOC_ARENA_TEST: 'changes glibc malloc behaviour',
  MALLOC_CONF: 'jemalloc options (profiling writes files)',
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
  GIT_ASKPASS: 'a program git runs', GIT_EDITOR: 'a program git runs', GIT_SEQUENCE_EDITOR: 'a program git runs',
  GIT_EXTERNAL_DIFF: 'a program git runs', GIT_PROXY_COMMAND: 'a command git runs',
  GIT_TEMPLATE_DIR: 'hooks (code) copied into every new repository',
  GIT_CONFIG: 'adds git configuration (core.sshCommand, hooks)', GIT_CONFIG_GLOBAL: 'replaces the global git configuration',
  GIT_CONFIG_SYSTEM: 'replaces the system git configuration', GIT_CONFIG_NOSYSTEM: 'drops the system git configuration',
  GIT_CONFIG_COUNT: 'adds git configuration (with GIT_CONFIG_KEY_<n>/GIT_CONFIG_VALUE_<n>)',
  GIT_CONFIG_PARAMETERS: 'adds git configuration (what git -c passes on)',
  SSH_ASKPASS: 'a program ssh runs', SUDO_ASKPASS: 'a program sudo runs',
  EDITOR: 'a program other programs run', VISUAL: 'a program other programs run', PAGER: 'a program other programs run',
  GIT_PAGER: 'a program git runs', MANPAGER: 'a program man runs', BROWSER: 'a program other programs run',
  LESSOPEN: 'a command less runs on every file', LESSCLOSE: 'a command less runs on every file',
  NOTIFY_SOCKET: 'systemd notification socket: a service could report for another',
  LISTEN_FDS: SYSTEMD_SET, LISTEN_PID: SYSTEMD_SET, LISTEN_FDNAMES: SYSTEMD_SET, WATCHDOG_USEC: SYSTEMD_SET,
  WATCHDOG_PID: SYSTEMD_SET, INVOCATION_ID: SYSTEMD_SET, JOURNAL_STREAM: SYSTEMD_SET, MAINPID: SYSTEMD_SET,
  MANAGERPID: SYSTEMD_SET, CREDENTIALS_DIRECTORY: SYSTEMD_SET, RUNTIME_DIRECTORY: SYSTEMD_SET,
  STATE_DIRECTORY: SYSTEMD_SET, CACHE_DIRECTORY: SYSTEMD_SET, LOGS_DIRECTORY: SYSTEMD_SET,
  CONFIGURATION_DIRECTORY: SYSTEMD_SET, XDG_RUNTIME_DIR: SYSTEMD_SET, LOG_NAMESPACE: SYSTEMD_SET,
  SERVICE_RESULT: SYSTEMD_SET, EXIT_CODE: SYSTEMD_SET, EXIT_STATUS: SYSTEMD_SET, PIDFILE: SYSTEMD_SET,
  MONITOR_SERVICE_RESULT: SYSTEMD_SET, MONITOR_EXIT_CODE: SYSTEMD_SET, MONITOR_EXIT_STATUS: SYSTEMD_SET,
  MONITOR_INVOCATION_ID: SYSTEMD_SET, MONITOR_UNIT: SYSTEMD_SET, TRIGGER_UNIT: SYSTEMD_SET, TRIGGER_PATH: SYSTEMD_SET,
  TRIGGER_TIMER_REALTIME_USEC: SYSTEMD_SET, TRIGGER_TIMER_MONOTONIC_USEC: SYSTEMD_SET,
  REMOTE_ADDR: 'set by systemd for an Accept=yes socket service (systemd.socket(5))',
  REMOTE_PORT: 'set by systemd for an Accept=yes socket service (systemd.socket(5))',
  USER: 'set by systemd for a service with User= (programs trust it as the user name)',
  LOGNAME: 'set by systemd for a service with User= (programs trust it as the user name)',
  // Newer systemd (254+), refused ahead so an image upgrade does not open them.
  FDSTORE: 'set by systemd 254+ for the service', MEMORY_PRESSURE_WATCH: 'set by systemd 254+ for the service',
  MEMORY_PRESSURE_WRITE: 'set by systemd 254+ for the service',
};

/**
 * Prefixes of names that change how programs run. Only whole namespaces a program owns: every
 * LD_* name is the dynamic loader's (glibc's rtld matches the prefix and reads new ones over
 * releases), every SYSTEMD_* name is systemd's (docs/ENVIRONMENT.md). Anything narrower is an
 * exact name above or a pattern below, so harmless names (GIT_CONFIGURATION) are not refused.
 */
export const DANGEROUS_PREFIXES: Readonly<Record<string, string>> = {
  LD_: 'the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …) loads code from it',
  SYSTEMD_: 'systemd\'s own variables (SYSTEMD_EXEC_PID is set for the service; the rest change how systemd tools behave)',
};

/** Families of names with a number in them. */
export const DANGEROUS_PATTERNS: ReadonlyArray<readonly [pattern: RegExp, why: string]> = [
  [/^GIT_CONFIG_(KEY|VALUE)_[0-9]+$/, 'adds git configuration (core.sshCommand, hooks)'],
];

export type NameVerdict =
  | { status: 'ok' }
  | { status: 'invalid' | 'dangerous'; reason: string };

function byPrefix(name: string, table: Readonly<Record<string, string>>): string | undefined {
  for (const [prefix, why] of Object.entries(table)) if (name.startsWith(prefix)) return why;
  return undefined;
}

/** What this module thinks of a name, before allowNames are applied. */
export function classifyName(name: string): NameVerdict {
  if (!NAME_PATTERN.test(name)) return { status: 'invalid', reason: 'names must match ^[A-Z_][A-Z0-9_]*$' };
  const dangerous = Object.hasOwn(DANGEROUS_NAMES, name)
    ? DANGEROUS_NAMES[name]
    : byPrefix(name, DANGEROUS_PREFIXES) ?? DANGEROUS_PATTERNS.find(([re]) => re.test(name))?.[1];
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
