import pino, { type Logger } from 'pino';
import type { LogLevel } from './log-levels';
import { redactDeep, redactUrl } from './redact';

export type { Logger };
export { LOG_LEVELS, type LogLevel } from './log-levels';

/**
 * JSON lines to a file descriptor (stderr by default, so command output on stdout stays clean;
 * under systemd both go to the journal). Every record passes through redaction.
 */
export function createLogger(level: LogLevel = 'info', fd = 2, name = 'cartridge-agent'): Logger {
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
    pino.destination({ fd, sync: true }),
  );
}

/** A logger that drops everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
