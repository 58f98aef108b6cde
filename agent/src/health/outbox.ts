/**
 * The bounded outage buffer. Pure: no timers, no I/O. Every health report and event goes
 * through it, connected or not, so order on the wire is the order of creation.
 *
 * Policy when full (capacity = config health.bufferMessages): drop the OLDEST health report
 * first (a newer one says more), and only when no health report is left the oldest event.
 * Drops are counted per kind and reported in the next health report. An entry leaves the
 * buffer only when the broker acknowledged it (QoS 1) or it was written (QoS 0), so a
 * connection lost mid-flush re-sends it on the next connection (at least once).
 *
 * A message the broker will never take must not block the rest: refused outright (MQTT 5
 * PUBACK ≥ 0x80) it leaves at once; a connection lost while it was in flight is a strike
 * against it (a 3.1.1 broker such as aedes closes the connection on a publish its ACL denies,
 * NATS on a topic it cannot map). A message with a strike travels alone, so later strikes fall
 * on the culprit only, and at `maxStrikes` it is dropped. Both count as refused, per kind.
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
  /** Connections lost while it was in flight. */
  strikes: number;
}

export interface DropCounts {
  health: number;
  event: number;
}

export class Outbox {
  private entries: OutboxEntry[] = [];
  private readonly inFlight = new Set<number>();
  private nextId = 1;
  /** The in-flight entry that has a strike (it travels alone), or null. */
  private suspect: number | null = null;
  readonly dropped: DropCounts = { health: 0, event: 0 };
  /** Refused by the broker, or dropped after maxStrikes lost connections. */
  readonly refused: DropCounts = { health: 0, event: 0 };

  constructor(
    readonly capacity: number,
    readonly maxStrikes = 3,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`outbox capacity must be a positive integer, got ${capacity}`);
    if (!Number.isSafeInteger(maxStrikes) || maxStrikes < 1) throw new RangeError(`outbox maxStrikes must be a positive integer, got ${maxStrikes}`);
  }

  get size(): number {
    return this.entries.length;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Queue a message; returns it and what had to be dropped to stay within capacity (possibly itself). */
  push(msg: OutboxMessage): { entry: OutboxEntry; dropped: OutboxEntry[] } {
    const entry: OutboxEntry = { ...msg, id: this.nextId++, strikes: 0 };
    this.entries.push(entry);
    const dropped: OutboxEntry[] = [];
    while (this.entries.length > this.capacity) {
      let victim = this.entries.findIndex((e) => e.kind === 'health');
      if (victim < 0) victim = 0;
      const [gone] = this.entries.splice(victim, 1) as [OutboxEntry];
      this.forget(gone.id);
      this.dropped[gone.kind]++;
      dropped.push(gone);
    }
    return { entry, dropped };
  }

  /**
   * The oldest entry not already being sent, now marked in flight; undefined when none, or
   * when a suspect (an entry with a strike) is in flight or is next and others still are.
   */
  takeNext(): OutboxEntry | undefined {
    if (this.suspect !== null) return undefined;
    const next = this.entries.find((e) => !this.inFlight.has(e.id));
    if (!next) return undefined;
    if (next.strikes > 0) {
      if (this.inFlight.size > 0) return undefined;
      this.suspect = next.id;
    }
    this.inFlight.add(next.id);
    return next;
  }

  /** Delivered: remove it. Unknown ids (dropped meanwhile) are ignored. */
  settle(id: number): void {
    this.forget(id);
    const i = this.entries.findIndex((e) => e.id === id);
    if (i >= 0) this.entries.splice(i, 1);
  }

  /** Refused by the broker for good: remove it and count it. Returns it (undefined if already gone). */
  refuse(id: number): OutboxEntry | undefined {
    const i = this.entries.findIndex((e) => e.id === id);
    this.forget(id);
    if (i < 0) return undefined;
    const [gone] = this.entries.splice(i, 1) as [OutboxEntry];
    this.refused[gone.kind]++;
    return gone;
  }

  /**
   * The connection was lost while it was in flight: a strike. It stays in place to be sent
   * again (alone), unless this was strike maxStrikes: then it is refused and returned.
   */
  strike(id: number): OutboxEntry | undefined {
    const entry = this.entries.find((e) => e.id === id);
    this.forget(id);
    if (!entry) return undefined;
    entry.strikes++;
    return entry.strikes >= this.maxStrikes ? this.refuse(id) : undefined;
  }

  /** Not sent after all (not connected): it stays in place, no strike. */
  release(id: number): void {
    this.forget(id);
  }

  releaseAll(): void {
    this.inFlight.clear();
    this.suspect = null;
  }

  private forget(id: number): void {
    this.inFlight.delete(id);
    if (this.suspect === id) this.suspect = null;
  }

  /** Current content, oldest first (status and tests). */
  snapshot(): readonly OutboxEntry[] {
    return [...this.entries];
  }

  countOf(kind: OutboxKind): number {
    return this.entries.reduce((n, e) => n + (e.kind === kind ? 1 : 0), 0);
  }
}
