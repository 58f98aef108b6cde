/**
 * The bounded outage buffer. Pure: no timers, no I/O. Every health report and event goes
 * through it, connected or not, so order on the wire is the order of creation.
 *
 * Policy when full (capacity = config health.bufferMessages): drop the OLDEST health report
 * first (a newer one says more), and only when no health report is left the oldest event.
 * Drops are counted per kind and reported in the next health report. An entry leaves the
 * buffer only when the broker acknowledged it (QoS 1) or it was written (QoS 0), so a
 * connection lost mid-flush re-sends it on the next connection (at least once).
 */

export type OutboxKind = 'health' | 'event';

export interface OutboxMessage {
  kind: OutboxKind;
  topic: string;
  body: string;
  qos: 0 | 1;
}

export interface OutboxEntry extends OutboxMessage {
  readonly id: number;
}

export interface DropCounts {
  health: number;
  event: number;
}

export class Outbox {
  private entries: OutboxEntry[] = [];
  private readonly inFlight = new Set<number>();
  private nextId = 1;
  readonly dropped: DropCounts = { health: 0, event: 0 };

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`outbox capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.entries.length;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Queue a message; returns it and what had to be dropped to stay within capacity (possibly itself). */
  push(msg: OutboxMessage): { entry: OutboxEntry; dropped: OutboxEntry[] } {
    const entry: OutboxEntry = { ...msg, id: this.nextId++ };
    this.entries.push(entry);
    const dropped: OutboxEntry[] = [];
    while (this.entries.length > this.capacity) {
      let victim = this.entries.findIndex((e) => e.kind === 'health');
      if (victim < 0) victim = 0;
      const [gone] = this.entries.splice(victim, 1) as [OutboxEntry];
      this.inFlight.delete(gone.id);
      this.dropped[gone.kind]++;
      dropped.push(gone);
    }
    return { entry, dropped };
  }

  /** The oldest entry not already being sent, now marked in flight; undefined when none. */
  takeNext(): OutboxEntry | undefined {
    const next = this.entries.find((e) => !this.inFlight.has(e.id));
    if (next) this.inFlight.add(next.id);
    return next;
  }

  /** Delivered (or refused for good): remove it. Unknown ids (dropped meanwhile) are ignored. */
  settle(id: number): void {
    this.inFlight.delete(id);
    const i = this.entries.findIndex((e) => e.id === id);
    if (i >= 0) this.entries.splice(i, 1);
  }

  /** Not delivered (connection lost): it stays in place and is sent again later. */
  release(id: number): void {
    this.inFlight.delete(id);
  }

  releaseAll(): void {
    this.inFlight.clear();
  }

  /** Current content, oldest first (status and tests). */
  snapshot(): readonly OutboxEntry[] {
    return [...this.entries];
  }

  countOf(kind: OutboxKind): number {
    return this.entries.reduce((n, e) => n + (e.kind === kind ? 1 : 0), 0);
  }
}
