/**
 * Per-connection session numbers that only grow (see protocol/mqtt.ts "Sessions"): the next
 * one is max(last + 1, now in ms). The last one is kept in the state dir so a reboot with a
 * clock behind the previous boot still moves forward; the clock floor keeps them growing when
 * the state dir was lost. Writing is best effort: a failed write is logged, sessions stay
 * unique within this process.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../io/staged-write';
import type { Logger } from '../log';

export const SESSION_FILE = 'mqtt-session';

/** Pure: the session after `last`. */
export function nextSession(last: number, nowMs: number): number {
  return Math.max(last + 1, Math.floor(nowMs));
}

export interface SessionSource {
  next(): number;
}

export class PersistedSessionCounter implements SessionSource {
  private last: number;

  /** `file`: host path, e.g. paths.resolve(`${cfg.state.dir}/mqtt-session`). */
  constructor(
    private readonly file: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.last = 0;
    try {
      const text = readFileSync(file, 'utf8').trim();
      if (/^\d{1,16}$/.test(text)) this.last = Number(text);
      else log.warn({ file }, 'ignoring unreadable MQTT session counter');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ file, err: (err as Error).message }, 'cannot read MQTT session counter');
    }
  }

  next(): number {
    this.last = nextSession(this.last, this.now());
    try {
      writeFileAtomicSync(this.file, `${this.last}\n`, { mode: 0o644, stage: 'mqtt session' });
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, 'cannot persist MQTT session counter');
    }
    return this.last;
  }
}
