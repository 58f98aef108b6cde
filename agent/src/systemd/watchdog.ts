/**
 * The systemd watchdog (WatchdogSec= → WATCHDOG_USEC). A timer alone proves only that the
 * event loop turns; systemd should restart us when the *work* is stuck too. So a ping is sent
 * at half the interval (sd_watchdog_enabled(3)) only while the daemon's main loop has called
 * heartbeat() recently. A blocked event loop sends nothing at all (the timer never fires); a
 * loop that turns but makes no progress stops calling heartbeat(), and the pings stop.
 *
 * Worst case from the last progress to systemd's kill: staleAfterMs (pings still go out) +
 * the watchdog interval. The default staleAfterMs is the interval itself, so the main loop must
 * beat more often than WatchdogSec (the daemon's reporting tick is; choose WatchdogSec ≥ 2×
 * the report interval).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log';
import type { Notifier } from './notify';

/** Monotonic milliseconds (performance.now in production: wall-clock jumps must not matter). */
export type MonotonicClock = () => number;

export interface WatchdogDeps {
  notifier: Pick<Notifier, 'watchdog'>;
  /** The watchdog interval (WATCHDOG_USEC / 1000), see Notifier.watchdogMs. */
  intervalMs: number;
  log: Logger;
  /** How old the last heartbeat may be for a ping to go out; default intervalMs. */
  staleAfterMs?: number;
  clock?: MonotonicClock;
}

export type PingDecision = { ping: true } | { ping: false; heartbeatAgeMs: number };

/** Pure: ping when the main loop beat within staleAfterMs. */
export function decidePing(nowMs: number, lastHeartbeatMs: number, staleAfterMs: number): PingDecision {
  const heartbeatAgeMs = nowMs - lastHeartbeatMs;
  return heartbeatAgeMs <= staleAfterMs ? { ping: true } : { ping: false, heartbeatAgeMs };
}

/** Half the interval, as sd_watchdog_enabled(3) recommends; never below 10 ms. */
export function pingPeriodMs(intervalMs: number): number {
  return Math.max(10, Math.floor(intervalMs / 2));
}

export class Watchdog {
  readonly periodMs: number;
  readonly staleAfterMs: number;
  private readonly clock: MonotonicClock;
  private lastHeartbeat: number;
  private timer: ReturnType<typeof setInterval> | null = null;
  private stalled = false;
  private pings = 0;

  constructor(private readonly deps: WatchdogDeps) {
    if (!(deps.intervalMs > 0)) throw new Error(`watchdog interval must be positive, got ${deps.intervalMs}`);
    this.periodMs = pingPeriodMs(deps.intervalMs);
    this.staleAfterMs = deps.staleAfterMs ?? deps.intervalMs;
    this.clock = deps.clock ?? (() => performance.now());
    this.lastHeartbeat = this.clock();
  }

  /** The main loop made progress. Cheap: call it from every loop turn. */
  heartbeat(): void {
    this.lastHeartbeat = this.clock();
    if (this.stalled) {
      this.stalled = false;
      this.deps.log.info('main loop making progress again; resuming watchdog pings');
    }
  }

  /** Pings now (startup counts as progress) and every periodMs until stop(). */
  start(): void {
    if (this.timer) return;
    this.heartbeat();
    this.deps.log.info({ intervalMs: this.deps.intervalMs, periodMs: this.periodMs, staleAfterMs: this.staleAfterMs }, 'systemd watchdog enabled');
    this.tick();
    this.timer = setInterval(() => this.tick(), this.periodMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get running(): boolean {
    return this.timer !== null;
  }

  /** For `status`: pings sent so far and how long ago the main loop last beat. */
  snapshot(): { pings: number; heartbeatAgeMs: number; stalled: boolean } {
    return { pings: this.pings, heartbeatAgeMs: Math.round(this.clock() - this.lastHeartbeat), stalled: this.stalled };
  }

  /** One timer turn: ping or withhold. Public so tests can drive it with a fake clock. */
  tick(): boolean {
    const d = decidePing(this.clock(), this.lastHeartbeat, this.staleAfterMs);
    if (d.ping) {
      this.pings++;
      void this.deps.notifier.watchdog();
      return true;
    }
    if (!this.stalled) {
      this.stalled = true;
      this.deps.log.error(
        { heartbeatAgeMs: Math.round(d.heartbeatAgeMs), staleAfterMs: this.staleAfterMs },
        'main loop made no progress; withholding WATCHDOG=1 so systemd restarts the agent',
      );
    }
    return false;
  }
}

/** A started-on-demand watchdog when systemd asked for one (notifier.watchdogMs), else null. */
export function createWatchdog(
  notifier: Pick<Notifier, 'watchdog' | 'watchdogMs'>,
  log: Logger,
  opts: Pick<WatchdogDeps, 'staleAfterMs' | 'clock'> = {},
): Watchdog | null {
  if (notifier.watchdogMs === null) return null;
  return new Watchdog({ notifier, intervalMs: notifier.watchdogMs, log, ...opts });
}
