import { writeSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import { isJournalStream, journalPrefix } from './io/journal';
import type { LogLevel } from './log-levels';
import { redactDeep, redactUrl } from './redact';

export type { Logger };
export { LOG_LEVELS, type LogLevel } from './log-levels';

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
