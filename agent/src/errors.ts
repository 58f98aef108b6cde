/**
 * Typed errors. Every failure the agent reports carries an exit code (part of the CLI
 * contract, see docs/cli.md) and enough context to say exactly what was wrong and where.
 */

export const ExitCode = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  CONFIG: 3,
  NO_POINTER: 4,
  FETCH: 5,
  PAYLOAD_REJECTED: 6,
  EXPORT: 7,
  FIREWALL: 8,
  /** `firewall check` found the kernel's rules differ from the applied ones. */
  DRIFT: 9,
  /** Another cartridge-agent holds the run lock of this root (docs/cli.md). */
  BUSY: 10,
  /** One of the agent's own state files is unreadable or damaged; the message names it. */
  STATE: 11,
  /** `env`, `firewall plan|apply`: no payload has been exported (yet) on this boot. */
  NOTHING_EXPORTED: 12,
  /** `status`: the daemon is not running (no status file, or its writer is gone). */
  NOT_RUNNING: 13,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class AgentError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** Extra, log-safe context (never secrets). */
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Wrong command line: unknown command, bad flag. */
export class UsageError extends AgentError {
  constructor(message: string) {
    super(message, ExitCode.USAGE);
  }
}

/** agent.json (or an environment override) is invalid; `key` names the offending key. */
export class ConfigError extends AgentError {
  constructor(
    readonly key: string,
    detail: string,
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ''}config key "${key}": ${detail}`, ExitCode.CONFIG, { setting: key, file });
  }
}

/** No source yielded a payload pointer; `reasons` says why each one did not. */
export class NoPointerError extends AgentError {
  constructor(readonly reasons: ReadonlyArray<{ source: string; reason: string }>) {
    super(
      `no payload pointer found; ${reasons.map((r) => `${r.source}: ${r.reason}`).join('; ')}`,
      ExitCode.NO_POINTER,
      { reasons },
    );
  }
}

/** A source found something meant for us that is broken (e.g. a personality file that is not a URL). */
export class SourceError extends AgentError {
  constructor(
    readonly source: string,
    readonly where: string,
    detail: string,
  ) {
    super(`${source} (${where}): ${detail}`, ExitCode.NO_POINTER, { source, where });
  }
}

/** The payload could not be fetched. `terminal` means retrying would not help (e.g. 403). */
export class FetchError extends AgentError {
  constructor(
    message: string,
    readonly terminal: boolean,
    context: Record<string, unknown> = {},
  ) {
    super(message, ExitCode.FETCH, context);
  }
}

/** The payload arrived but is refused: bad signature, bad format, forbidden name, unexportable value. */
export class PayloadError extends AgentError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(message, ExitCode.PAYLOAD_REJECTED, context);
  }
}

/**
 * Writing one of the boot work's files failed (an export, the payload cache, the firewall
 * record …). `stage` names the part of the boot work; nothing of the failed run is in force:
 * the previous files are left as they were.
 */
export class WriteError extends AgentError {
  constructor(
    readonly stage: string,
    readonly path: string,
    detail: string,
  ) {
    super(`${stage}: cannot write ${path}: ${detail}`, ExitCode.EXPORT, { stage, path });
  }
}

/** One of the agent's own state files (payload.json, status.json, a cache entry …) is unreadable or damaged. */
export class StateFileError extends AgentError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`, ExitCode.STATE, { file });
  }
}

/** Another cartridge-agent process is working on this root (the run lock is held). */
export class BusyError extends AgentError {
  constructor(message: string, readonly lockFile: string) {
    super(message, ExitCode.BUSY, { lockFile });
  }
}

/**
 * Rendering, checking or applying the port allowlist failed. The previous rules are in force
 * (a failed transaction changes nothing; a failed guard check rolls back). `stderr` is the
 * tool's own message, `ruleset` the text that was being applied (context for the log).
 */
export class FirewallError extends AgentError {
  constructor(
    message: string,
    readonly step: string,
    readonly backend: string | null,
    readonly stderr = '',
    readonly ruleset?: string,
  ) {
    super(message, ExitCode.FIREWALL, { step, backend, ...(stderr ? { stderr } : {}), ...(ruleset ? { ruleset } : {}) });
  }
}
