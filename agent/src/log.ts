import { fstatSync, writeSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import { redactDeep, redactUrl } from './redact';

export type { Logger };
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The syslog priority of each level, as journald reads it from a `<N>` line prefix (sd-daemon(3)). */
const SYSLOG_PRIORITY: Readonly<Record<string, number>> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/**
 * Is `fd` the journal? systemd connects a service's stdout/stderr to journald and names that
 * stream in JOURNAL_STREAM ("<device>:<inode>"); a redirected stream has another inode.
 */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const want = env.JOURNAL_STREAM;
  if (!want) return false;
  try {
    const st = fstatSync(fd);
    return want === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** "<3>" for an error line, "" when not writing to the journal. */
export function journalPrefix(journal: boolean, level: string): string {
  return journal ? `<${SYSLOG_PRIORITY[level] ?? 6}>` : '';
}

/** pino's lines to `fd`, each prefixed with its syslog priority (the JSON stays as it is). */
function journalDestination(fd: number): DestinationStream {
  return {
    write(line: string) {
      const level = /^\{"level":"(\w+)"/.exec(line)?.[1] ?? 'info';
      writeSync(fd, journalPrefix(true, level) + line);
    },
  };
}

/**
 * JSON lines to a file descriptor (stderr by default, so command output on stdout stays clean;
 * under systemd both go to the journal, and then each line carries its syslog priority, so
 * `journalctl -p err` finds the errors). Every record passes through redaction.
 */
export function createLogger(level: LogLevel = 'info', fd = 2, name = 'cartridge-agent', env: NodeJS.ProcessEnv = process.env): Logger {
  return pino(
    {
      level,
      base: { name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactDeep(obj) as Record<string, unknown>,
      },
      hooks: {
        // Messages are redacted too: a URL with a token may be interpolated into one.
        logMethod(args, method) {
          const redacted = args.map((a) => (typeof a === 'string' ? redactUrl(a) : a)) as typeof args;
          method.apply(this, redacted);
        },
      },
    },
    isJournalStream(fd, env) ? journalDestination(fd) : pino.destination({ fd, sync: true }),
  );
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
