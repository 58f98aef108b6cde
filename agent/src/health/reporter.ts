/**
 * HealthReporter: periodic health reports and lifecycle events, through the Outbox, over an
 * MqttConnection. Reporting never depends on the broker: while it is unreachable messages
 * wait in the bounded Outbox (events outlive health reports), and drops are counted and sent
 * with the next health report (`dropped`).
 *
 * Sequence numbers: `seq` grows by one per health report and, separately, per event, for the
 * life of the process (not reset per connection); `session` is the connection attempt current
 * when the message was made. Consumers order by (session, seq).
 */
import type { FirewallState } from '../firewall/types';
import type { Logger } from '../log';
import {
  buildEvent, buildStratosEvent, STRATOS_EVENT_FOR, stratosTopic, WIRE_VERSION,
  type EventType, type HealthReport, type MemberChannel,
} from '../protocol/mqtt';
import { NotConnectedError, PublishRefusedError, type ConnectionSnapshot, type MqttConnection } from './connection';
import type { AllowPredicate, MachineMetrics } from './metrics';
import { Outbox, type DropCounts, type OutboxEntry, type OutboxMessage } from './outbox';

/** What changes under the reporter (SIGHUP, firewall drift): read fresh for every message. */
export interface HealthContext {
  firewall: FirewallState | null;
  payloadDigest: string | null;
  allowed: AllowPredicate;
  /** Payload variables, for Stratos' event fields. */
  vars: ReadonlyMap<string, string>;
}

export interface HealthReporterDeps {
  connection: MqttConnection;
  metrics: { collect(allowed: AllowPredicate): Promise<MachineMetrics> };
  topics: Record<MemberChannel, string>;
  context: () => HealthContext;
  intervalS: number;
  bufferMessages: number;
  stratosEvents: boolean;
  agentVersion: string;
  log: Logger;
  random?: () => number;
  now?: () => number;
}

export interface HealthStatus {
  connected: boolean;
  broker: string | null;
  session: number | null;
  /** Epoch ms when the broker last took a health report, and its seq. */
  lastReportAt: number | null;
  lastReportSeq: number | null;
  buffered: number;
  dropped: { health: number; event: number };
  /** Messages the broker refused (MQTT 5 PUBACK ≥ 0x80) or that lost the connection MAX_STRIKES times: dropped. */
  refused: DropCounts;
  lastError: string | null;
  connection: ConnectionSnapshot;
}

/** QoS 1 messages in flight at once while flushing (ordered on one connection anyway). */
const WINDOW = 16;

/** Lost connections with a message in flight (alone, after the first) before it is dropped. */
export const MAX_STRIKES = 3;

export class HealthReporter {
  private readonly outbox: Outbox;
  private readonly now: () => number;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private healthSeq = 0;
  private eventSeq = 0;
  private lastReportAt: number | null = null;
  private lastReportSeq: number | null = null;
  private lastPublishError: string | null = null;
  private dropWarned = false;
  private drainWaiters: Array<() => void> = [];
  private readonly onUp = (): void => {
    this.dropWarned = false;
    this.pump();
  };
  private readonly onDown = (): void => this.outbox.releaseAll();

  constructor(private readonly deps: HealthReporterDeps) {
    this.outbox = new Outbox(deps.bufferMessages, MAX_STRIKES);
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  /** Connect and schedule reports: the first at a random point of the first interval, so a fleet booted together spreads out. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.deps.connection.on('up', this.onUp);
    this.deps.connection.on('down', this.onDown);
    this.deps.connection.start();
    this.schedule(this.random() * this.deps.intervalS * 1000);
  }

  /**
   * Graceful end, bounded by `timeoutMs`: a `ready-to-shutdown` event (unless told not to),
   * flush what the broker will take in time, `offline` (cause shutdown), disconnect.
   */
  async stop(opts: { readyToShutdown?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 5_000;
    const end = this.now() + timeoutMs;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (opts.readyToShutdown ?? true) this.publishEvent('ready-to-shutdown');
    this.running = false;
    if (this.deps.connection.connected && this.outbox.size > 0) {
      // Leave a third of the time for offline + DISCONNECT.
      await Promise.race([this.drained(), sleep(Math.max(0, ((end - this.now()) * 2) / 3))]);
    }
    await this.deps.connection.stop(Math.max(100, end - this.now()));
    this.deps.connection.off('up', this.onUp);
    this.deps.connection.off('down', this.onDown);
    if (this.outbox.size > 0) this.deps.log.warn({ undelivered: this.outbox.size }, 'stopping with undelivered health messages');
  }

  /** Queue a lifecycle event (QoS 1), plus Stratos' instance status event when configured. */
  publishEvent(type: EventType, reason?: string): void {
    const session = this.session();
    const event = buildEvent(session, ++this.eventSeq, this.now(), type, reason);
    this.enqueue({ kind: 'event', topic: this.deps.topics.event, body: JSON.stringify(event), qos: 1 });
    const stratos = STRATOS_EVENT_FOR[type];
    if (this.deps.stratosEvents && stratos) {
      const body = JSON.stringify(buildStratosEvent(stratos, this.deps.context().vars));
      this.enqueue({ kind: 'event', topic: stratosTopic(stratos), body, qos: 1 });
    }
    this.deps.log.info({ event: type, ...(reason ? { reason } : {}) }, 'lifecycle event');
  }

  /** Collect and queue one health report now (also what the timer does). */
  async reportNow(): Promise<HealthReport> {
    const ctx = this.deps.context();
    const m = await this.deps.metrics.collect(ctx.allowed);
    if (m.errors.length) this.deps.log.debug({ errors: m.errors }, 'some health metrics could not be read');
    const report: HealthReport = {
      v: WIRE_VERSION,
      session: this.session(),
      seq: ++this.healthSeq,
      ts: this.now(),
      uptimeS: m.uptimeS,
      load: m.load,
      cpus: m.cpus,
      mem: m.mem,
      disk: m.disk,
      net: m.net,
      listening: m.listening,
      firewall: ctx.firewall,
      payloadDigest: ctx.payloadDigest,
      agent: this.deps.agentVersion,
      dropped: { ...this.outbox.dropped },
      refused: { ...this.outbox.refused },
    };
    this.enqueue({ kind: 'health', topic: this.deps.topics.health, body: JSON.stringify(report), qos: 0 }, report.seq);
    return report;
  }

  status(): HealthStatus {
    const c = this.deps.connection.snapshot();
    return {
      connected: c.connected,
      broker: c.broker,
      session: c.session,
      lastReportAt: this.lastReportAt,
      lastReportSeq: this.lastReportSeq,
      buffered: this.outbox.size,
      dropped: { ...this.outbox.dropped },
      refused: { ...this.outbox.refused },
      lastError: c.lastError ?? this.lastPublishError,
      connection: c,
    };
  }

  private session(): number {
    return this.deps.connection.snapshot().session ?? 0;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reportNow()
        .catch((err: Error) => this.deps.log.error({ err: err.message }, 'health report failed'))
        .finally(() => {
          // ±10% jitter on every interval keeps a fleet from falling into step.
          if (this.running) this.schedule(this.deps.intervalS * 1000 * (0.9 + 0.2 * this.random()));
        });
    }, delayMs);
  }

  private readonly healthSeqById = new Map<number, number>();

  private enqueue(msg: OutboxMessage, healthSeq?: number): void {
    const { entry, dropped } = this.outbox.push(msg);
    if (healthSeq !== undefined) this.healthSeqById.set(entry.id, healthSeq);
    for (const d of dropped) this.healthSeqById.delete(d.id);
    if (dropped.length && !this.dropWarned) {
      this.dropWarned = true;
      this.deps.log.warn({ capacity: this.outbox.capacity, dropped: this.outbox.dropped }, 'outage buffer full: dropping oldest health reports (then events)');
    }
    this.pump();
  }

  private pump(): void {
    const conn = this.deps.connection;
    while (conn.connected && this.outbox.inFlightCount < WINDOW) {
      const e = this.outbox.takeNext();
      if (!e) break;
      conn.publish(e.topic, e.body, e.qos).then(
        () => {
          this.outbox.settle(e.id);
          const seq = this.healthSeqById.get(e.id);
          if (seq !== undefined) {
            this.healthSeqById.delete(e.id);
            this.lastReportAt = this.now();
            this.lastReportSeq = seq;
          }
          this.pump();
        },
        (err: Error) => {
          if (err instanceof PublishRefusedError) {
            // Retrying cannot help (ACL): drop it, say so, keep the queue moving.
            this.outbox.refuse(e.id);
            this.dropRefused(e, err.message, { code: err.code });
            this.pump();
          } else if (err instanceof NotConnectedError && err.sent) {
            // Perhaps the broker closed the connection because of this message: after
            // MAX_STRIKES such losses it goes, so it cannot keep the agent reconnecting.
            const gone = this.outbox.strike(e.id);
            if (gone) {
              const why =
                `dropped after the connection was lost ${MAX_STRIKES} times with this ${e.kind} message in flight: ` +
                `the broker probably refuses it (MQTT 3.1.1 brokers such as aedes close the connection on a publish their ACL denies, ` +
                `NATS on a topic it cannot map); last: ${err.message}`;
              this.dropRefused(gone, `publish to "${gone.topic}" ${why}`, { strikes: gone.strikes });
            }
          } else {
            this.outbox.release(e.id);
          }
        },
      );
    }
    if (this.outbox.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  private dropRefused(e: OutboxEntry, message: string, detail: Record<string, unknown>): void {
    this.healthSeqById.delete(e.id);
    this.lastPublishError = message;
    this.deps.log.error({ topic: e.topic, kind: e.kind, refused: { ...this.outbox.refused }, ...detail }, message);
  }

  private drained(): Promise<void> {
    if (this.outbox.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
