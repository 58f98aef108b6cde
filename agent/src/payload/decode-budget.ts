/**
 * The work ONE user-data decode may do, shared by every gzip layer and every MIME part:
 *  - bytes inflated in total (payload.maxUserDataBytes): not per part, so a small document
 *    with a fan-out of gzip parts, or gzip nested in base64 in MIME, cannot multiply it;
 *  - wall time (DECODE_TIME_LIMIT_MS): many cheap parts cost time without inflating much;
 *  - the agent's stop signal: SIGTERM during a decode ends it at the next chunk or part.
 * The decoders call spend() as inflated bytes arrive and pause() between parts and layers,
 * which also yields to the event loop so signals and timers run.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { NoPointerError, PayloadError } from '../errors';

export const USER_DATA_BUDGET_KEY = 'payload.maxUserDataBytes';
/** Far above what real user data needs (milliseconds), far below a boot timeout. */
export const DECODE_TIME_LIMIT_MS = 10_000;

export interface DecodeBudgetOptions {
  /** Bytes all gzip layers and parts may inflate to, together. */
  maxInflatedBytes: number;
  timeLimitMs?: number;
  signal?: AbortSignal;
  now?: () => number;
}

export class DecodeBudget {
  private inflated = 0;
  private readonly deadline: number;
  private readonly now: () => number;
  readonly maxInflatedBytes: number;
  readonly timeLimitMs: number;
  readonly signal: AbortSignal | undefined;

  constructor(opts: DecodeBudgetOptions) {
    this.maxInflatedBytes = opts.maxInflatedBytes;
    this.timeLimitMs = opts.timeLimitMs ?? DECODE_TIME_LIMIT_MS;
    this.signal = opts.signal;
    this.now = opts.now ?? Date.now;
    this.deadline = this.now() + this.timeLimitMs;
  }

  /** Count `bytes` more inflated at `where`; refuses the user data once the total passes the budget. */
  spend(bytes: number, where: string): void {
    this.inflated += bytes;
    if (this.inflated > this.maxInflatedBytes) {
      throw new PayloadError(
        `${where}: gzip data inflates past the ${this.maxInflatedBytes} bytes that ${USER_DATA_BUDGET_KEY} allows in total (all gzip layers and MIME parts of the user data together); refusing it`,
        { limit: this.maxInflatedBytes, setting: USER_DATA_BUDGET_KEY },
      );
    }
  }

  /** Throws when the agent is stopping or the time is up. */
  check(where: string): void {
    if (this.signal?.aborted) {
      throw new NoPointerError([{ source: 'user data', reason: 'stopped while decoding it (the agent is stopping)' }]);
    }
    if (this.now() > this.deadline) {
      throw new PayloadError(
        `${where}: decoding the user data took more than ${this.timeLimitMs} ms (its gzip layers and MIME parts are too much work); refusing it`,
        { limitMs: this.timeLimitMs },
      );
    }
  }

  /** Let signals and timers run, then check(). */
  async pause(where: string): Promise<void> {
    await nextTurn();
    this.check(where);
  }
}
