/**
 * Command-line parsing and help text (pure: argv in, a parsed command or a UsageError out).
 * Exit codes and messages are part of the contract (docs/cli.md).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from './errors';

export const COMMANDS = ['once', 'run', 'status', 'discover', 'env', 'firewall', 'config', 'version', 'help'] as const;
export type CommandName = (typeof COMMANDS)[number];
export const ENV_FORMATS = ['env', 'sh', 'json'] as const;
export type EnvFormat = (typeof ENV_FORMATS)[number];
export const FIREWALL_ACTIONS = ['plan', 'apply', 'check', 'remove', 'restore', 'baseline'] as const;
export type FirewallAction = (typeof FIREWALL_ACTIONS)[number];

export const CONFIG_ACTIONS = ['check'] as const;

/** What an option's value is: a word from a list, a file, a directory, or a log level. */
export type OptionValue = readonly string[] | 'file' | 'dir' | 'log-level' | null;
/** The options every command takes (version and help take only --help). */
export const COMMON_OPTIONS: Readonly<Record<string, OptionValue>> = { '--config': 'file', '--root': 'dir', '--log-level': 'log-level', '--help': null };
/**
 * Per command: its actions (a required first word) and its own options. parseCli checks
 * against it, and the bash completion is generated from it (scripts/gen-docs.ts).
 */
export const COMMAND_TABLE: Readonly<Record<CommandName, { actions?: readonly string[]; options: Readonly<Record<string, OptionValue>> }>> = {
  once: { options: { '--json': null } },
  run: { options: {} },
  status: { options: { '--json': null } },
  discover: { options: { '--json': null } },
  env: { options: { '--format': ENV_FORMATS } },
  firewall: { actions: FIREWALL_ACTIONS, options: { '--write': null } }, // --write: 'firewall baseline' only
  config: { actions: CONFIG_ACTIONS, options: {} },
  version: { options: {} },
  help: { actions: COMMANDS, options: {} },
};

/** The commands that take `option`, as "'a', 'b' and 'c'". */
function takers(option: string): string {
  const names = COMMANDS.filter((c) => option in COMMAND_TABLE[c].options).map((c) => `'${c}'`);
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : (names[0] ?? 'no command');
}

export interface ParsedCli {
  command: CommandName;
  help: boolean;
  /** For `help <command>`. */
  helpTopic?: CommandName;
  config?: string;
  root: string;
  json: boolean;
  format: EnvFormat;
  /** For `firewall <action>`. */
  action?: FirewallAction;
  /** `firewall baseline --write`. */
  write?: boolean;
  logLevel?: string;
}

export const COMMON = `Options for every command:
  --config PATH      config file (default /etc/cartridge-agent/agent.json, resolved under --root;
                     env CARTRIDGE_AGENT_CONFIG)
  --root DIR         resolve every absolute path the agent reads or writes under DIR (default /;
                     env CARTRIDGE_AGENT_ROOT)
  --log-level LEVEL  fatal|error|warn|info|debug|trace|silent (overrides log.level)
  -h, --help         show help for the command`;

export const HELP: Record<CommandName | 'main', string> = {
  main: `Usage: cartridge-agent <command> [options]

Boot-time agent for cartridge VM images: finds the payload pointer (personality file or
cloud user data), fetches the payload, exports it as environment variables.

Commands:
  once       do the boot work (discover, fetch, export) and exit; non-zero on failure
  run        the daemon: boot work, READY=1, then health reporting over MQTT until stopped
  status     what the running daemon is doing (--json)
  discover   show what each configured source yields (no side effects)
  env        print the exported payload (--format env|sh|json)
  firewall   the port allowlist: plan | apply | check | remove | restore | baseline
  config     check: validate the config, print the effective one
  version    print the version
  help [CMD]  show help

${COMMON}

Exit codes: 0 ok, 1 internal error, 2 usage, 3 config invalid, 4 no payload pointer,
5 payload fetch failed, 6 payload refused, 7 a file of the boot work could not be written
(nothing of that run in force), 8 firewall failed, 9 firewall drift found by 'firewall check',
10 another cartridge-agent holds the run lock, 11 a state file of the agent is damaged,
12 nothing is exported yet ('env', 'firewall plan|apply'), 13 the daemon is not running ('status').

Logs are JSON lines on stderr (pipe through pino-pretty to read them).`,
  once: `Usage: cartridge-agent once [options]

Discover the payload pointer (sources in config order, waiting up to sources.waitSeconds),
fetch the payload (or use the cached one if the controller is unreachable and the instance
id matches), validate it and write the exports (payload.env, profile.d script, payload.json,
optional launch-params). Prints a summary; exits non-zero with a clear message on failure.

  --json             print the summary as JSON

${COMMON}`,
  run: `Usage: cartridge-agent run [options]

The long-running daemon (a systemd Type=notify service): the boot work as in 'once', then
READY=1, then health reports, lifecycle events and hooks over MQTT until SIGTERM
(offline + ready-to-shutdown, then exit 0). SIGHUP re-reads the config and the payload.
STATUS= lines and 'cartridge-agent status' say what it is doing or waiting for.

${COMMON}`,
  status: `Usage: cartridge-agent status [--json] [options]

What the running daemon is doing: pointer source, payload digest, exports, firewall, broker
connection, last report, buffered messages, app readiness. Read from
/run/cartridge-agent/status.json (under --root); exit 13 when the daemon is not running.

  --json             print the raw status as JSON

${COMMON}`,
  discover: `Usage: cartridge-agent discover [options]

Probe every configured source once (no waiting) and print what each yields or why it
yielded nothing. Reads only; block devices are mounted read-only and unmounted again.
Payload URLs are printed with their tokens redacted.

  --json             print the result as JSON

${COMMON}`,
  env: `Usage: cartridge-agent env [--format env|sh|json] [options]

Print the exported payload (read back from export.jsonFile) in the given format:
  env   systemd EnvironmentFile syntax (default)
  sh    POSIX sh, safe to source
  json  a JSON object

${COMMON}`,
  firewall: `Usage: cartridge-agent firewall <plan|apply|check|remove|restore|baseline> [options]

The inbound port allowlist (docs/firewall.md). The allowlist comes from the exported payload
(export.jsonFile: PORTS, PORT_MAPPINGS, FIREWALL_ALLOW) and the config (firewall.*).
  plan     print the ruleset this host's backend would get; changes nothing
  apply    apply it now (one transaction per family; rolled back if the controller becomes unreachable)
  check    compare the rules in the kernel with the last applied ones; exit 9 on drift
  remove   remove the agent's rules (stopping the agent never does)
  restore  early boot, before the network: put the last applied ruleset back exactly as
           recorded in <state.dir>/firewall.json (no payload, no controller); nothing
           recorded (first boot): put the baseline in force (firewall.baseline), exit 0;
           a damaged record: the baseline, exit 8. firewall.mode plan: only say what it
           would do; off: do nothing. (The early unit runs firewall-restore.sh, which does
           the same from the files below without starting Node; docs/packaging.md)
  baseline print the baseline ruleset for every backend; changes nothing. --write: record
           it, with the early restore's decision for /etc/cartridge-agent/agent.json (mode,
           firewall.baseline), in <state.dir>/firewall-baseline.restore and
           <state.dir>/firewall-rules/ (bake.sh does this; once and run keep it current)

${COMMON}`,
  config: `Usage: cartridge-agent config check [options]

Validate the config file (--config, default /etc/cartridge-agent/agent.json, under --root) with
the environment overrides, as every command does at start, and print the effective config
(every key, defaults filled in) as JSON on stdout. Exit 0 when valid; 3 with the file and the
key when not. Image bakers run it before baking a config in.

${COMMON}`,
  version: `Usage: cartridge-agent version

Print the agent's version.`,
  help: `Usage: cartridge-agent help [COMMAND]

Show help for the agent or one command.`,
};

export function parseCli(argv: readonly string[]): ParsedCli {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        root: { type: 'string' },
        'log-level': { type: 'string' },
        json: { type: 'boolean' },
        format: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        write: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/\. To specify.*$/s, '')}; see 'cartridge-agent --help'`);
  }
  const { values, positionals } = parsed;
  const [first, ...rest] = positionals;
  if (values.version && !first) return base('version', values);
  // `once --version` must not quietly run the boot work.
  if (values.version) throw new UsageError(`--version is not an option of '${first}'; for the version: cartridge-agent version`);
  if (!first) return { ...base('help', values), help: true };
  if (!(COMMANDS as readonly string[]).includes(first)) {
    throw new UsageError(`unknown command "${first}"; commands: ${COMMANDS.join(', ')}`);
  }
  const command = first as CommandName;
  if (command !== 'firewall' && command !== 'config') {
    // The options a command does not take are errors (COMMAND_TABLE; firewall and config say it their own way).
    const own = COMMAND_TABLE[command].options;
    if (values.format !== undefined && !('--format' in own)) throw new UsageError(`--format applies to ${takers('--format')} only`);
    if (values.json && !('--json' in own)) throw new UsageError(`--json applies to ${takers('--json')} only`);
  }
  if (command === 'firewall') {
    const action = rest[0];
    if (action === undefined && values.help) return { ...base('firewall', values), help: true };
    if (action === undefined || !(FIREWALL_ACTIONS as readonly string[]).includes(action)) {
      throw new UsageError(`'firewall' needs an action: ${FIREWALL_ACTIONS.join(', ')}${action === undefined ? '' : `; got "${action}"`}`);
    }
    if (rest.length > 1) throw new UsageError(`unexpected argument "${rest[1]}" for 'firewall ${action}'`);
    if (values.format !== undefined || values.json) throw new UsageError(`'firewall' takes neither --format nor --json`);
    if (values.write && action !== 'baseline') throw new UsageError(`--write applies to 'firewall baseline' only`);
    return { ...base('firewall', values), action: action as FirewallAction, ...(action === 'baseline' ? { write: Boolean(values.write) } : {}) };
  }
  if (command === 'config') {
    const action = rest[0];
    if (action === undefined && values.help) return { ...base('config', values), help: true };
    if (action !== 'check') throw new UsageError(`'config' needs an action: ${CONFIG_ACTIONS.join(', ')}${action === undefined ? '' : `; got "${action}"`}`);
    if (rest.length > 1) throw new UsageError(`unexpected argument "${rest[1]}" for 'config check'`);
    if (values.format !== undefined || values.json || values.write) throw new UsageError(`'config check' takes neither --format, --json nor --write (it prints JSON)`);
    return base('config', values);
  }
  if (command === 'help') {
    const topic = rest[0];
    if (topic !== undefined && !(COMMANDS as readonly string[]).includes(topic)) {
      throw new UsageError(`no help for unknown command "${topic}"`);
    }
    return { ...base('help', values), help: true, ...(topic ? { helpTopic: topic as CommandName } : {}) };
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}" for '${command}'`);
  if (values.write) throw new UsageError(`--write applies to 'firewall baseline' only`);
  const format = values.format ?? 'env';
  if (!(ENV_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format must be one of ${ENV_FORMATS.join(', ')}, got "${format}"`);
  }
  return { ...base(command, values), format: format as EnvFormat };
}

function base(
  command: CommandName,
  values: { config?: string; root?: string; 'log-level'?: string; json?: boolean; help?: boolean },
): ParsedCli {
  if (values.root !== undefined && values.root === '') throw new UsageError('--root needs a directory');
  const root = values.root ?? process.env.CARTRIDGE_AGENT_ROOT ?? '/';
  let config = values.config ?? process.env.CARTRIDGE_AGENT_CONFIG;
  if (config !== undefined && !config.startsWith('/')) {
    // Relative paths are a convenience for interactive use; under --root they would be ambiguous.
    if (root !== '/') throw new UsageError(`--config must be an absolute in-image path when --root is given, got "${config}"`);
    config = path.resolve(config);
  }
  return {
    command,
    help: Boolean(values.help),
    root,
    json: Boolean(values.json),
    format: 'env',
    ...(config !== undefined ? { config } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
  };
}
