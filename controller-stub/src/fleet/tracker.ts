/**
 * FleetTracker: the MQTT shell around FleetBook. One mqtt.js client per replica:
 * - a normal subscription to `<prefix>/+/+/status`: the retained statuses are the snapshot a
 *   (re)started controller needs, and a shared subscription would not deliver them (MQTT 5
 *   §3.3.1.3; mosquitto ≥ 2.0.13 sends no retained messages to `$share`);
 * - health and events through `$share/<group>/…` when shareGroup is set, so replicas split
 *   the stream (each message to one replica), plain subscriptions otherwise.
 * - with snapshotMembers, also each known member's exact status topic: some brokers (RabbitMQ
 *   3.10) replay retained messages only to a subscription naming the topic, never to a
 *   wildcard, so a restarted controller would otherwise not learn of members already online.
 * mqtt.js reconnects on its own (fixed 1 s); we re-subscribe on every connect and tell the
 * book when we were deaf, so our own outage cannot turn the fleet STALE.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../../../agent/src/log';
import { redactUrl } from '../../../agent/src/redact';
import {
  fleetFilter, memberTopic, memberTopics, parseHealthReport, parseLifecycleEvent, parseMemberTopic, parseStatusMessage, WireFormatError,
  type HealthReport, type LifecycleEvent, type MemberId,
} from '../../../agent/src/protocol/mqtt';
import { FleetBook, type FleetMetrics, type FleetRow } from './book';

export interface FleetTrackerDeps {
  brokerUrl: string;
  username?: string;
  password?: string;
  topicPrefix: string;
  /** MQTT 5 `$share` group; undefined = plain subscriptions. */
  shareGroup?: string;
  log: Logger;
  now?: () => number;
  /** How often ONLINE members are checked for STALE (default 1000 ms). */
  staleCheckMs?: number;
  /** MQTT protocol version: default 5 with a shareGroup, else 4 (the embedded aedes speaks 3.1.1 only). */
  protocolVersion?: 4 | 5;
  /** Extra mqtt.js options (TLS: ca, cert, key, ...). */
  mqttOptions?: IClientOptions;
  /** Members whose retained status to fetch by exact subscription on every connect (e.g. the member store's live members). */
  snapshotMembers?: () => readonly MemberId[];
}

/** Exact status subscriptions per SUBSCRIBE packet. */
const SNAPSHOT_BATCH = 500;

/** What a tracker hears, for callers that want the stream (tests count shares with it). */
type TrackerEvents = {
  health: [id: MemberId, report: HealthReport];
  event: [id: MemberId, event: LifecycleEvent];
  connected: [];
  disconnected: [];
};

const TOPIC_LEVEL = /^[^+#/\s]+(\/[^+#/\s]+)*$/;

export class FleetTracker extends EventEmitter<TrackerEvents> {
  private readonly book: FleetBook;
  private readonly now: () => number;
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private malformed = 0;

  constructor(private readonly deps: FleetTrackerDeps) {
    super();
    if (!TOPIC_LEVEL.test(deps.topicPrefix)) throw new Error(`FleetTracker: topicPrefix ${JSON.stringify(deps.topicPrefix)} must be non-empty topic levels without + # or spaces`);
    if (deps.shareGroup !== undefined && !/^[^+#/\s]+$/.test(deps.shareGroup)) {
      throw new Error(`FleetTracker: shareGroup ${JSON.stringify(deps.shareGroup)} must be one topic level without + # / or spaces`);
    }
    this.now = deps.now ?? Date.now;
    this.book = new FleetBook(this.now(), { countGaps: deps.shareGroup === undefined });
  }

  /** Resolves once connected and subscribed; rejects when the first connect fails. */
  async start(): Promise<void> {
    if (this.client) throw new Error('FleetTracker already started');
    const d = this.deps;
    const client = mqtt.connect(d.brokerUrl, {
      protocolVersion: d.protocolVersion ?? (d.shareGroup ? 5 : 4),
      clientId: `cartridge-controller-${process.pid}-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      resubscribe: false, // we subscribe on every connect ourselves
      ...(d.username !== undefined ? { username: d.username } : {}),
      ...(d.password !== undefined ? { password: d.password } : {}),
      ...d.mqttOptions,
    });
    this.client = client;
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
    client.on('close', () => {
      if (this.client !== client || !this.book.linkState.connected) return; // stop() is no outage
      this.book.disconnected(this.now());
      d.log.warn({ broker: redactUrl(d.brokerUrl) }, 'fleet tracker lost the broker; STALE judgment suspended');
      this.emit('disconnected');
    });
    client.on('error', (err) => d.log.warn({ broker: redactUrl(d.brokerUrl), err: err.message }, 'fleet tracker MQTT error'));
    const firstConnect = new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        client.removeListener('connect', ok);
        client.removeListener('error', fail);
        client.removeListener('close', closed);
        reject(new Error(`fleet tracker cannot connect to ${redactUrl(d.brokerUrl)}: ${err.message}`));
      };
      const closed = (): void => fail(new Error('connection closed before the broker accepted it'));
      const ok = (): void => {
        client.removeListener('error', fail);
        client.removeListener('close', closed);
        resolve();
      };
      client.once('connect', ok);
      client.once('error', fail);
      client.once('close', closed);
    });
    let first = true;
    client.on('connect', () => {
      if (first) return void (first = false); // start() subscribes and reports failure itself
      this.onConnected(client).catch((err: Error) => d.log.error({ err: err.message }, 'fleet tracker could not re-subscribe'));
    });
    try {
      await firstConnect;
      await this.onConnected(client);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.timer = setInterval(() => this.book.judge(this.now()), this.deps.staleCheckMs ?? 1_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync(true);
  }

  rows(): FleetRow[] {
    return this.book.rows(this.now());
  }

  metrics(): FleetMetrics & { ignoredMessages: number; malformedMessages: number; connected: boolean } {
    return { ...this.book.metrics(this.now()), malformedMessages: this.malformed, connected: this.book.linkState.connected };
  }

  /**
   * GONE here, then zero-byte retained QoS 1 publishes on the member's status, health and event
   * topics: the broker deletes what it retained, so a new subscriber sees nothing, and the other
   * replicas learn of the terminate from the cleared status.
   */
  async terminate(id: MemberId): Promise<void> {
    this.book.terminate(id, this.now());
    const client = this.client;
    if (!client?.connected) throw new Error(`terminate ${id.clusterId}/${id.memberId}: marked GONE, but not connected to the broker, so its retained topics were not cleared`);
    const topics = Object.values(memberTopics(this.deps.topicPrefix, id));
    await Promise.all(topics.map((t) => client.publishAsync(t, Buffer.alloc(0), { qos: 1, retain: true })));
    this.deps.log.info({ clusterId: id.clusterId, memberId: id.memberId }, 'member terminated; retained topics cleared');
  }

  /** Subscribe, then tell the book we can hear again (so judgment waits from this moment). */
  private async onConnected(client: MqttClient): Promise<void> {
    await this.subscribe(client);
    this.book.connected(this.now());
    this.deps.log.info({ broker: redactUrl(this.deps.brokerUrl), shareGroup: this.deps.shareGroup ?? null }, 'fleet tracker subscribed');
    this.emit('connected');
  }

  private async subscribe(client: MqttClient): Promise<void> {
    const { topicPrefix: prefix, shareGroup } = this.deps;
    const stream = (c: 'health' | 'event'): string => (shareGroup ? `$share/${shareGroup}/${fleetFilter(prefix, c)}` : fleetFilter(prefix, c));
    const granted = await client.subscribeAsync({ [fleetFilter(prefix, 'status')]: { qos: 1 }, [stream('health')]: { qos: 0 }, [stream('event')]: { qos: 1 } });
    const refused = granted.filter((g) => g.qos === 128 || g.qos > 2);
    if (refused.length) throw new Error(`broker refused subscriptions: ${refused.map((g) => g.topic).join(', ')}`);
    const members = this.deps.snapshotMembers?.() ?? [];
    let refusedExact = 0;
    for (let i = 0; i < members.length; i += SNAPSHOT_BATCH) {
      const filters = Object.fromEntries(members.slice(i, i + SNAPSHOT_BATCH).map((id) => [memberTopic(prefix, id, 'status'), { qos: 1 as const }]));
      refusedExact += (await client.subscribeAsync(filters)).filter((g) => g.qos === 128 || g.qos > 2).length;
    }
    if (refusedExact) this.deps.log.warn({ refused: refusedExact, of: members.length }, 'broker refused some exact status subscriptions: those members show up at their next status or health report');
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    const id = parseMemberTopic(this.deps.topicPrefix, topic);
    if (!id) return;
    const rx = { now: this.now(), retained };
    try {
      if (id.channel === 'status') {
        this.book.status(id, parseStatusMessage(topic, payload), rx);
      } else if (payload.length === 0) {
        return; // a terminate clearing retained health/event
      } else if (id.channel === 'health') {
        const report = parseHealthReport(topic, payload);
        this.book.health(id, report, rx);
        this.emit('health', { clusterId: id.clusterId, memberId: id.memberId }, report);
      } else {
        const event = parseLifecycleEvent(topic, payload);
        this.book.event(id, event, rx);
        this.emit('event', { clusterId: id.clusterId, memberId: id.memberId }, event);
      }
    } catch (err) {
      this.malformed++;
      // A throw here would escape through mqtt.js' event emitter and end the controller.
      if (err instanceof WireFormatError) this.deps.log.warn({ topic, err: err.message }, 'ignoring malformed fleet message');
      else this.deps.log.error({ topic, err: (err as Error).message }, 'fleet message handling failed');
    }
  }
}
