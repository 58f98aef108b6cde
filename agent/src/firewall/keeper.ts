/**
 * Drift: every driftCheckSeconds, read our rules back and compare the fingerprint with the one
 * recorded right after applying. On a mismatch (someone flushed our chain, deleted our jump or
 * our table) say what differed — throttled, not on every tick for the same difference — and
 * re-apply the same ruleset (already guard-approved, so no guard round-trip).
 */
import type { Logger } from '../log';
import { firewallOps, type FirewallOps, type FirewallSnapshot } from './apply';
import type { CommandRunner } from './exec';
import { diffReadBack, fingerprint } from './readback';
import { stateFromApplied, type AppliedFirewall } from './state';
import type { FirewallState } from './types';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.(); // the drift loop alone must not keep the process alive
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface DriftReport {
  checkedAt: string;
  drifted: boolean;
  /** What differed, in words ("missing: -A INPUT -j CARTRIDGE-INPUT", …); empty when none. */
  differences: string[];
  /** Drifted and re-applied, and the read-back matches again. */
  healed: boolean;
  error: string | null;
}

export interface Comparison {
  drifted: boolean;
  differences: string[];
  /** What the comparison read: lets a re-apply skip listing the rules again. */
  snapshot: FirewallSnapshot;
}

/** Compare the kernel's read-back with the recorded one (no change made). */
export async function compareWithApplied(ops: FirewallOps, applied: AppliedFirewall): Promise<Comparison> {
  const snapshot = await ops.snapshot();
  const actual = ops.snapshotReadBack(snapshot);
  if (fingerprint(actual) === applied.fingerprint) return { drifted: false, differences: [], snapshot };
  return { drifted: true, differences: diffReadBack(applied.readBack, actual), snapshot };
}

/** Logs a given difference once per window; a new difference is logged at once. */
export class DriftLogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly windowMs: number) {}

  /** null: stay quiet; otherwise how many identical reports were suppressed since the last one. */
  admit(key: string, now: number): number | null {
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return null;
    }
    this.last.set(key, { at: now, suppressed: 0 });
    return seen?.suppressed ?? 0;
  }
}

export interface KeeperOptions {
  runner: CommandRunner;
  applied: AppliedFirewall;
  intervalSeconds: number;
  log: Logger;
  clock?: Clock;
  /** Same-difference log window (default 15 min). */
  logThrottleMs?: number;
  /** Prebuilt backend operations (else built from applied.backend + runner). */
  ops?: FirewallOps;
  onState?: (state: FirewallState) => void;
}

export class FirewallKeeper {
  private ops: FirewallOps | null;
  private timer: unknown = null;
  private running = false;
  private readonly clock: Clock;
  private readonly throttle: DriftLogThrottle;
  private current: FirewallState;

  constructor(private readonly opts: KeeperOptions) {
    this.ops = opts.ops ?? null;
    this.clock = opts.clock ?? systemClock;
    this.throttle = new DriftLogThrottle(opts.logThrottleMs ?? 15 * 60_000);
    this.current = stateFromApplied('enforce', opts.applied);
  }

  get state(): FirewallState {
    return { ...this.current };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    // Deliberately no rule removal: the rules outlive the agent (a crash must not open the host).
  }

  private schedule(): void {
    if (!this.running) return;
    // A chain of timeouts, not an interval: a slow check never overlaps the next one.
    this.timer = this.clock.setTimeout(() => {
      void this.checkOnce().finally(() => this.schedule());
    }, this.opts.intervalSeconds * 1000);
  }

  private update(patch: Partial<FirewallState>): void {
    this.current = { ...this.current, ...patch };
    this.opts.onState?.(this.state);
  }

  async checkOnce(): Promise<DriftReport> {
    const { applied, log } = this.opts;
    const checkedAt = new Date(this.clock.now()).toISOString();
    let found: Pick<Comparison, 'drifted' | 'differences'> = { drifted: false, differences: [] };
    try {
      this.ops ??= await firewallOps(applied.backend, this.opts.runner);
      const compared = await compareWithApplied(this.ops, applied);
      found = compared;
      if (!found.drifted) {
        if (this.current.lastError) this.update({ lastError: null });
        return { checkedAt, drifted: false, differences: [], healed: false, error: null };
      }
      const summary = found.differences.join('; ');
      const suppressed = this.throttle.admit(summary, this.clock.now());
      if (suppressed !== null) {
        log.warn({ backend: applied.backend, differences: found.differences, suppressedSinceLast: suppressed }, `firewall drift: our rules were changed (${summary}); re-applying`);
      }
      await this.ops.apply(applied.rendered, compared.snapshot);
      const after = await compareWithApplied(this.ops, applied);
      const error = after.drifted ? `re-applied but the rules still differ: ${after.differences.join('; ')}` : null;
      if (error) log.error({ backend: applied.backend, differences: after.differences }, `firewall drift not healed: ${error}`);
      else if (suppressed !== null) log.info({ backend: applied.backend, digest: applied.digest }, 'firewall drift healed: ruleset re-applied');
      this.update({ lastDriftAt: checkedAt, lastDrift: summary, lastError: error });
      return { checkedAt, drifted: true, differences: found.differences, healed: !after.drifted, error };
    } catch (err) {
      const message = (err as Error).message;
      if (this.throttle.admit(`error: ${message}`, this.clock.now()) !== null) log.error({ err }, `firewall drift check failed: ${message}`);
      this.update(found.drifted ? { lastDriftAt: checkedAt, lastDrift: found.differences.join('; '), lastError: message } : { lastError: message });
      return { checkedAt, drifted: found.drifted, differences: found.differences, healed: false, error: message };
    }
  }
}
