/**
 * Lines journald understands: when stderr is the journal (systemd names the stream it connects
 * in JOURNAL_STREAM, "<device>:<inode>"; a redirected stream has another inode), each line
 * starts with its syslog priority ("<3>" …, sd-daemon(3)), so `journalctl -p err` finds the
 * errors. Kept apart from the logger so commands that log nothing need not load pino.
 */
import { fstatSync } from 'node:fs';

/** The syslog priority of each log level. */
const SYSLOG_PRIORITY: Readonly<Record<string, number>> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

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
