/**
 * Names that are special to a shell: sourcing `export NAME='value'` for one of them can run
 * code, change the shell's identity, stop the file half-way, or hand back another value, in at
 * least one shell a login may use. Built from the manuals of bash 5.2 (also --posix and
 * interactive), dash 0.5.12, busybox 1.35 ash, zsh 5.9 (native, --emulate sh, interactive),
 * mksh R59, ksh93u+m 1.0, posh 0.14 and yash 2.52 (Debian 12), and from what each shell really
 * defines (`zsh -c 'typeset +'`, `mksh -c typeset`, `ksh93 -c 'typeset -p'`, `bash -c 'declare -p'`).
 * Only names matching ^[A-Z_][A-Z0-9_]*$ are listed: a payload cannot hold any other.
 *
 * The rule (docs/payload.md §6): these names are left out of the profile.d file
 * (export/render.ts) and kept in payload.env and payload.json. Those that also change how a
 * shell started with them in its environment runs are refused by payload/validate.ts unless
 * `payload.allowNames` lists them; even then they are not written to the profile.d file.
 * test/integration/shell-special-names.test.ts checks the table against the real shells.
 */

export type Shell = 'bash' | 'dash' | 'busybox' | 'zsh' | 'mksh' | 'ksh93' | 'posh' | 'yash';

/**
 * Why a name is special:
 * - arith: integer-typed, so assigning evaluates the value as arithmetic (`a[$(cmd)]` runs cmd,
 *   a non-number stops the file);
 * - readonly: assigning fails, and stops the file in zsh, posix-mode shells and others;
 * - identity: assigning changes the shell's user or group ids;
 * - dynamic: the shell sets or rewrites it, so the exported value is not what is read back;
 * - interactive: an interactive shell expands it as a prompt or message (command substitution
 *   runs code), runs it, or reads or writes the file it names;
 * - behaviour: changes how the shell parses or runs the commands after it.
 */
export type SpecialKind = 'arith' | 'readonly' | 'identity' | 'dynamic' | 'interactive' | 'behaviour';

export interface ShellSpecial {
  readonly shells: readonly Shell[];
  readonly kind: SpecialKind;
  readonly why: string;
}

const POSIX_SHELLS = 'bash dash busybox zsh mksh ksh93 posh yash';

function e(shells: string, kind: SpecialKind, why: string): ShellSpecial {
  return { shells: shells.split(' ') as Shell[], kind, why };
}

/** Name → which shells treat it specially and why. */
export const SHELL_SPECIAL_NAMES: Readonly<Record<string, ShellSpecial>> = {
  // Integer-typed: the value is evaluated as arithmetic on assignment.
  RANDOM: e('bash zsh mksh ksh93 posh yash busybox', 'arith', 'integer-typed random number generator (bash and mksh run `a[$(cmd)]`)'),
  SRANDOM: e('bash', 'arith', 'integer-typed random number (bash runs `a[$(cmd)]`)'),
  SECONDS: e('bash zsh mksh ksh93 posh busybox', 'arith', 'integer (ksh93: float) seconds counter'),
  LINENO: e('bash zsh mksh ksh93 posh yash dash busybox', 'arith', 'current line number; readonly integer in zsh'),
  OPTIND: e(POSIX_SHELLS, 'arith', 'integer-typed getopts index (bash and mksh run `a[$(cmd)]`); dash and posh stop on a non-number'),
  LINES: e('zsh mksh ksh93', 'arith', 'integer-typed terminal height'),
  COLUMNS: e('zsh mksh ksh93', 'arith', 'integer-typed terminal width'),
  HISTSIZE: e('zsh mksh ksh93', 'arith', 'integer-typed history size'),
  SAVEHIST: e('zsh', 'arith', 'integer-typed saved history size'),
  HISTFILESIZE: e('bash', 'interactive', 'bash truncates the history file to it'),
  HISTCMD: e('bash zsh ksh93', 'arith', 'integer-typed history number (bash runs `a[$(cmd)]`); readonly in zsh and ksh93'),
  MAILCHECK: e('bash zsh ksh93', 'arith', 'integer-typed mail check interval (bash runs `a[$(cmd)]`)'),
  TMOUT: e('mksh ksh93 bash zsh posh', 'arith', 'integer-typed in mksh and ksh93; an interactive shell logs out after it'),
  KEYTIMEOUT: e('zsh', 'arith', 'integer-typed key timeout'),
  LISTMAX: e('zsh', 'arith', 'integer-typed completion list limit'),
  DIRSTACKSIZE: e('zsh', 'arith', 'evaluated as an integer'),
  REPORTTIME: e('zsh', 'arith', 'evaluated as an integer after every command (`path[$(cmd)]` runs cmd)'),
  REPORTMEMORY: e('zsh', 'arith', 'evaluated as an integer after every command'),
  PERIOD: e('zsh', 'arith', 'evaluated as an integer; zsh runs the periodic hook by it'),
  BAUD: e('zsh', 'arith', 'evaluated as an integer by the line editor'),
  LOGCHECK: e('zsh', 'arith', 'evaluated as an integer when logins are watched'),
  MENUSCROLL: e('zsh', 'arith', 'evaluated as an integer by menu selection'),
  ZFTP_TMOUT: e('zsh', 'arith', 'evaluated as an integer by zftp'),
  ZLE_RPROMPT_INDENT: e('zsh', 'arith', 'evaluated as an integer by the line editor'),
  FUNCNEST: e('zsh bash', 'arith', 'integer-typed in zsh; bash refuses deeper function calls'),
  SHLVL: e('zsh ksh93 bash dash busybox mksh yash', 'arith', 'integer-typed in zsh and ksh93; other shells increment it'),
  TRY_BLOCK_ERROR: e('zsh', 'arith', 'integer-typed always-block state'),
  TRY_BLOCK_INTERRUPT: e('zsh', 'arith', 'integer-typed always-block state'),
  ERRNO: e('zsh posh', 'arith', 'integer-typed errno'),
  JOBMAX: e('ksh93', 'arith', 'integer-typed job limit'),
  PGRP: e('mksh', 'arith', 'integer-typed process group'),
  BASHPID: e('bash mksh', 'arith', 'integer-typed process id'),
  PIPESTATUS: e('bash mksh', 'arith', 'exit statuses; integer array in mksh'),
  HISTRMDUP: e('yash', 'arith', 'evaluated as a number'),
  // Identity: assigning changes who the shell runs as (when it may).
  UID: e('zsh bash', 'identity', 'zsh calls setuid() with it; readonly in bash'),
  EUID: e('zsh bash', 'identity', 'zsh calls seteuid() with it; readonly in bash'),
  GID: e('zsh', 'identity', 'zsh calls setgid() with it'),
  EGID: e('zsh', 'identity', 'zsh calls setegid() with it'),
  USERNAME: e('zsh', 'identity', 'zsh switches user, uid and gid to it'),
  KSHUID: e('mksh', 'identity', 'integer-typed user id of the shell'),
  KSHGID: e('mksh', 'identity', 'integer-typed group id of the shell'),
  KSHEGID: e('mksh', 'identity', 'integer-typed effective group id of the shell'),
  USER_ID: e('mksh', 'identity', 'integer-typed effective user id of the shell'),
  // Read-only: assigning fails and stops the file.
  PPID: e(POSIX_SHELLS, 'readonly', 'parent process id; readonly in bash, zsh and ksh93, integer-typed in mksh'),
  ARGC: e('zsh', 'readonly', 'readonly integer argument count'),
  ZSH_SUBSHELL: e('zsh', 'readonly', 'readonly integer subshell depth'),
  ZSH_EVAL_CONTEXT: e('zsh', 'readonly', 'readonly evaluation context'),
  TTYIDLE: e('zsh', 'readonly', 'readonly integer terminal idle time'),
  KSH_VERSION: e('mksh ksh93', 'readonly', 'readonly in mksh; a reference to .sh.version in ksh93; scripts use it to detect ksh'),
  POSH_VERSION: e('posh', 'readonly', 'readonly shell version'),
  BASH_VERSINFO: e('bash', 'readonly', 'readonly version array'),
  BASHOPTS: e('bash', 'readonly', 'readonly shopt list; imported from the environment'),
  SHELLOPTS: e('bash', 'readonly', 'readonly option list; imported from the environment'),
  // Dynamic: set, rewritten or ignored by the shell, or used by scripts to tell shells apart.
  _: e(POSIX_SHELLS, 'dynamic', 'the last argument of the previous command'),
  PWD: e(POSIX_SHELLS, 'dynamic', 'the working directory, reset by every shell'),
  OLDPWD: e(POSIX_SHELLS, 'dynamic', 'the previous directory, reset or dropped at start-up'),
  OPTARG: e(POSIX_SHELLS, 'dynamic', 'getopts state'),
  OPTERR: e('bash busybox', 'dynamic', 'getopts state, reset at start-up'),
  IFS: e(POSIX_SHELLS, 'behaviour', 'changes how every later expansion splits words'),
  REPLY: e('bash zsh mksh ksh93 posh', 'dynamic', 'set by read and select'),
  EPOCHSECONDS: e('bash busybox zsh', 'dynamic', 'the clock'),
  EPOCHREALTIME: e('bash busybox zsh mksh', 'dynamic', 'the clock'),
  BASH: e('bash', 'dynamic', 'the path of bash, set at start-up'),
  BASH_VERSION: e('bash', 'dynamic', 'set by bash; scripts use it to detect bash'),
  ZSH_VERSION: e('zsh', 'dynamic', 'set by zsh; scripts use it to detect zsh'),
  ZSH_PATCHLEVEL: e('zsh', 'dynamic', 'set by zsh'),
  ZSH_NAME: e('zsh', 'dynamic', 'set by zsh'),
  ZSH_ARGZERO: e('zsh', 'dynamic', 'set by zsh'),
  ZSH_SCRIPT: e('zsh', 'dynamic', 'set by zsh'),
  ZSH_EXECUTION_STRING: e('zsh', 'dynamic', 'set by zsh'),
  YASH_VERSION: e('yash', 'dynamic', 'set by yash; scripts use it to detect yash'),
  BASH_ARGC: e('bash', 'dynamic', 'bash call stack'),
  BASH_ARGV: e('bash', 'dynamic', 'bash call stack'),
  BASH_ARGV0: e('bash', 'behaviour', 'assigning sets $0'),
  BASH_LINENO: e('bash', 'dynamic', 'bash call stack'),
  BASH_SOURCE: e('bash', 'dynamic', 'bash call stack'),
  BASH_SUBSHELL: e('bash', 'dynamic', 'subshell depth'),
  BASH_COMMAND: e('bash', 'dynamic', 'the command being run'),
  BASH_EXECUTION_STRING: e('bash', 'dynamic', 'the -c string'),
  BASH_REMATCH: e('bash', 'dynamic', 'regex match results'),
  BASH_ALIASES: e('bash', 'behaviour', 'assigning defines an alias'),
  BASH_CMDS: e('bash', 'behaviour', 'assigning adds to the command hash table'),
  FUNCNAME: e('bash busybox', 'dynamic', 'call stack'),
  GROUPS: e('bash', 'dynamic', 'group list'),
  DIRSTACK: e('bash yash', 'dynamic', 'directory stack'),
  HANDLED: e('yash', 'dynamic', 'set by the command-not-found handler'),
  COPROC: e('bash', 'dynamic', 'coprocess file descriptors'),
  MAPFILE: e('bash', 'dynamic', 'set by mapfile'),
  COMPREPLY: e('bash', 'dynamic', 'completion results'),
  COMP_CWORD: e('bash', 'dynamic', 'completion state'),
  COMP_KEY: e('bash', 'dynamic', 'completion state'),
  COMP_LINE: e('bash', 'dynamic', 'completion state'),
  COMP_POINT: e('bash', 'dynamic', 'completion state'),
  COMP_TYPE: e('bash', 'dynamic', 'completion state'),
  COMP_WORDS: e('bash', 'dynamic', 'completion state'),
  COMP_WORDBREAKS: e('bash', 'dynamic', 'completion word separators, dropped when reset'),
  READLINE_ARGUMENT: e('bash', 'dynamic', 'readline state'),
  READLINE_LINE: e('bash', 'dynamic', 'readline state'),
  READLINE_MARK: e('bash', 'dynamic', 'readline state'),
  READLINE_POINT: e('bash', 'dynamic', 'readline state'),
  KSH_MATCH: e('mksh', 'dynamic', 'regex match results'),
  PATHSEP: e('mksh', 'dynamic', 'the PATH separator, set by mksh'),
  MATCH: e('zsh', 'dynamic', 'set by pattern matching'),
  KEYBOARD_HACK: e('zsh', 'dynamic', 'zsh keeps only its first character'),
  MBEGIN: e('zsh', 'arith', 'integer set by pattern matching'),
  MEND: e('zsh', 'arith', 'integer set by pattern matching'),
  // Interactive: prompts and messages (command substitution runs), hooks, files read or written.
  PS0: e('bash', 'interactive', 'expanded (command substitution) before every command'),
  PS1: e(POSIX_SHELLS, 'interactive', 'the prompt: expanded with command substitution'),
  PS2: e(POSIX_SHELLS, 'interactive', 'the continuation prompt: expanded'),
  PS3: e('bash zsh mksh ksh93', 'interactive', 'the select prompt: expanded'),
  PS4: e(POSIX_SHELLS, 'interactive', 'the trace prompt: expanded for every traced line'),
  PS1R: e('yash', 'interactive', 'right prompt: expanded'),
  PS1S: e('yash', 'interactive', 'prompt style: expanded'),
  PS2R: e('yash', 'interactive', 'right prompt: expanded'),
  PS2S: e('yash', 'interactive', 'prompt style: expanded'),
  PS4S: e('yash', 'interactive', 'trace style: expanded'),
  PROMPT: e('zsh', 'interactive', 'the prompt (PS1)'),
  PROMPT2: e('zsh', 'interactive', 'the continuation prompt (PS2)'),
  PROMPT3: e('zsh', 'interactive', 'the select prompt (PS3)'),
  PROMPT4: e('zsh', 'interactive', 'the trace prompt (PS4)'),
  RPROMPT: e('zsh', 'interactive', 'the right prompt'),
  RPS1: e('zsh', 'interactive', 'the right prompt'),
  RPROMPT2: e('zsh', 'interactive', 'the right continuation prompt'),
  RPS2: e('zsh', 'interactive', 'the right continuation prompt'),
  SPROMPT: e('zsh', 'interactive', 'the spelling-correction prompt'),
  PROMPT_EOL_MARK: e('zsh', 'interactive', 'expanded as a prompt (runs `$(cmd)` under --emulate sh)'),
  POSTEDIT: e('zsh', 'interactive', 'written to the terminal after every edit'),
  PROMPT_COMMAND: e('bash yash', 'interactive', 'run as commands before every prompt'),
  PROMPT_DIRTRIM: e('bash', 'arith', 'evaluated as an integer at every prompt'),
  COMMAND_NOT_FOUND_HANDLER: e('yash', 'interactive', 'run as commands when a command is missing'),
  YASH_AFTER_CD: e('yash', 'interactive', 'run as commands after every cd'),
  YASH_LOADPATH: e('yash', 'behaviour', 'where `. -L` loads scripts from'),
  YASH_LE_TIMEOUT: e('yash', 'arith', 'evaluated as a number by the line editor'),
  ECHO_STYLE: e('yash', 'behaviour', 'changes what echo does'),
  MAIL: e('bash dash busybox zsh mksh ksh93 yash', 'interactive', 'a file the shell reads at every prompt'),
  MAILPATH: e('bash dash busybox zsh mksh ksh93 yash', 'interactive', 'files read at every prompt; the messages are expanded'),
  HISTFILE: e(POSIX_SHELLS, 'interactive', 'a file the shell writes (mksh truncates it on assignment)'),
  HISTCHARS: e('zsh', 'behaviour', 'changes which characters start history expansion'),
  HOSTFILE: e('bash', 'interactive', 'a file read for host completion'),
  INPUTRC: e('bash', 'interactive', 'the readline configuration file'),
  FCEDIT: e('bash zsh mksh ksh93 posh yash', 'interactive', 'the program fc runs'),
  HISTEDIT: e('ksh93', 'interactive', 'the program hist runs'),
  STTY: e('zsh', 'interactive', 'zsh runs stty with it'),
  WATCH: e('zsh', 'interactive', 'users whose logins zsh reports at every prompt (reads utmp)'),
  WATCHFMT: e('zsh', 'interactive', 'expanded as a prompt when logins are reported'),
  TMPPREFIX: e('zsh', 'interactive', 'where zsh creates temporary files'),
  ZDOTDIR: e('zsh', 'interactive', 'zsh reads its start-up files (code) from it'),
  FPATH: e('zsh mksh ksh93 posh', 'interactive', 'functions (code) are loaded from it'),
  MODULE_PATH: e('zsh', 'interactive', 'zmodload loads shared objects from it'),
  NULLCMD: e('zsh', 'interactive', 'the command a bare redirection runs'),
  READNULLCMD: e('zsh', 'interactive', 'the command a bare input redirection runs'),
  ENV: e('bash dash busybox mksh ksh93 posh yash', 'interactive', 'a file an interactive shell runs after the profile'),
  BASH_ENV: e('bash', 'interactive', 'a file every bash script run from the login shell runs'),
  EXECSHELL: e('mksh posh', 'interactive', 'the shell that runs scripts without #!'),
  // Behaviour: changes how later commands are parsed or run.
  CDPATH: e(POSIX_SHELLS, 'behaviour', 'changes where cd goes (and makes it print)'),
  GLOBIGNORE: e('bash', 'behaviour', 'changes globbing (and turns on dotglob)'),
  EXECIGNORE: e('bash', 'behaviour', 'makes bash skip matching programs'),
  POSIXLY_CORRECT: e('bash yash', 'behaviour', 'assigning switches the shell to posix mode'),
  BASH_COMPAT: e('bash', 'behaviour', 'changes how bash runs commands'),
  BASH_XTRACEFD: e('bash busybox', 'behaviour', 'bash writes its trace to this descriptor (and closes it when reset)'),
  BASH_LOADABLES_PATH: e('bash', 'behaviour', 'where enable -f loads builtins (shared objects) from'),
  ARGV0: e('zsh', 'behaviour', 'exported, it becomes argv[0] of every program zsh runs'),
};

/** The table entry for `name`, if a shell treats it specially. */
export function shellSpecial(name: string): ShellSpecial | undefined {
  return Object.hasOwn(SHELL_SPECIAL_NAMES, name) ? SHELL_SPECIAL_NAMES[name] : undefined;
}
