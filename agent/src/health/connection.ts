/**
 * One logical connection to the broker, kept up for as long as the agent runs.
 *
 * mqtt.js runs with reconnectPeriod 0; we create a fresh client for every attempt, so that
 * (1) the will carries the new session number (the will is fixed at CONNECT), (2) attempts
 * follow our full-jitter backoff and broker failover (reconnect-policy.ts), and (3) nothing is
 * replayed behind our back: the Outbox owns everything unacknowledged.
 *
 * On every connect: birth `online` (retained, QoS 1), then subscribe to our own status topic;
 * if a retained `offline` of an OLDER session shows up there (a late will of a dead
 * connection, e.g. the broker noticed it after we reconnected), publish the birth again.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../log';
import { buildBirth, buildOffline, parseStatusMessage } from '../protocol/mqtt';
import type { BrokerSettings } from './broker-settings';
import { preConnackCauses, ProtocolChoice, RateLimit, versionName } from './protocol-choice';
import { describeReasonCode, isIdentityRefusal, reconnectDelayMs, type ReconnectTiming } from './reconnect-policy';
import type { SessionSource } from './session';

/** The broker will not take this message for good (MQTT 5 PUBACK ≥ 0x80, e.g. ACL denial). */
export class PublishRefusedError extends Error {
  constructor(
    readonly broker: string,
    readonly topic: string,
    readonly code: number,
    reason: string,
  ) {
    super(`broker ${broker} refused the publish to "${topic}": ${reason}`);
    this.name = 'PublishRefusedError';
  }
}

/**
 * Not connected, or the connection was lost before the broker acknowledged: retry later.
 * `sent`: the publish had gone out on that connection (so the broker may have closed it
 * because of this very message).
 */
export class NotConnectedError extends Error {
  constructor(
    detail: string,
    readonly sent = false,
  ) {
    super(detail);
    this.name = 'NotConnectedError';
  }
}

export interface MqttConnectionDeps {
  settings: BrokerSettings;
  /** The encoded member id (memberClientId): also its topic level, so ACL patterns like `%c` match it. */
  clientId: string;
  statusTopic: string;
  sessions: SessionSource;
  agentVersion: string;
  /** Advertised in the birth so consumers know when to call a member stale. */
  intervalS: number;
  timing: ReconnectTiming;
  log: Logger;
  connectTimeoutMs?: number;
  random?: () => number;
  now?: () => number;
}

export interface ConnectionSnapshot {
  connected: boolean;
  broker: string | null;
  session: number | null;
  connectedAt: number | null;
  failures: number;
  /** The last CONNACK refused our identity; attempts are now far apart. */
  refused: boolean;
  nextAttemptAt: number | null;
  lastError: string | null;
  /** The MQTT version of the next or current CONNECT (3.1.1 after a fallback from 5). */
  protocolVersion: 4 | 5;
}

/** A broker that keeps closing before CONNACK is warned about at most this often. */
const PRE_CONNACK_WARN_MS = 10 * 60_000;

interface Attempt {
  client: MqttClient;
  url: string;
  session: number;
  up: boolean;
  closed: boolean;
  pending: Set<(err: Error) => void>;
  /** Reason code of a DISCONNECT the broker sent (MQTT 5), for the log. */
  disconnectReason: number | null;
  version: 4 | 5;
  /** The client reported an error (a refused CONNACK, a socket error): not a silent close. */
  errored: boolean;
}

type Events = { up: [session: number]; down: [reason: string] };

export class MqttConnection extends EventEmitter<Events> {
  private attempt: Attempt | null = null;
  private attempts = 0;
  private failures = 0;
  private refused = false;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private nextAttemptAt: number | null = null;
  private connectedAt: number | null = null;
  private lastError: string | null = null;
  private readonly now: () => number;
  private readonly protocol: ProtocolChoice;
  private readonly preConnackWarnings = new RateLimit(PRE_CONNACK_WARN_MS);

  constructor(private readonly deps: MqttConnectionDeps) {
    super();
    this.now = deps.now ?? Date.now;
    this.protocol = new ProtocolChoice(deps.settings.protocolVersion);
  }

  get connected(): boolean {
    return this.attempt?.up === true;
  }

  start(): void {
    this.stopping = false;
    if (!this.attempt && !this.timer) this.connect();
  }

  snapshot(): ConnectionSnapshot {
    return {
      connected: this.connected,
      broker: this.attempt?.url ?? null,
      session: this.attempt?.session ?? null,
      connectedAt: this.connected ? this.connectedAt : null,
      failures: this.failures,
      refused: this.refused,
      nextAttemptAt: this.nextAttemptAt,
      lastError: this.lastError,
      protocolVersion: this.attempt?.version ?? this.protocol.version,
    };
  }

  /** Resolves when the broker acknowledged (QoS 1) or the packet was written (QoS 0). */
  publish(topic: string, body: string, qos: 0 | 1, retain = false): Promise<void> {
    const a = this.attempt;
    if (!a?.up) return Promise.reject(new NotConnectedError('not connected to a broker'));
    return new Promise((resolve, reject) => {
      a.pending.add(reject);
      a.client.publish(topic, body, { qos, retain }, (err) => {
        a.pending.delete(reject);
        if (!err) return resolve();
        const code = (err as Error & { code?: unknown }).code;
        if (typeof code === 'number' && code >= 0x80) {
          reject(new PublishRefusedError(a.url, topic, code, describeReasonCode(code, a.version)));
        } else reject(new NotConnectedError(`publish to "${topic}" not acknowledged: ${err.message}${this.disconnectNote(a)}`, true));
      });
    });
  }

  /**
   * Graceful end: `offline` (cause shutdown) for the current session, then DISCONNECT (so the
   * broker drops the will). Bounded: after `timeoutMs` the socket is closed regardless.
   */
  async stop(timeoutMs = 3_000): Promise<void> {
    this.stopping = true;
    this.clearTimer();
    const a = this.attempt;
    if (!a) return;
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
    if (a.up) {
      const body = JSON.stringify(buildOffline(a.session, this.now(), 'shutdown'));
      await Promise.race([this.publish(this.deps.statusTopic, body, 1, true).catch((err: Error) => this.deps.log.warn({ err: err.message }, 'could not publish offline status')), deadline]);
    }
    await Promise.race([new Promise<void>((resolve) => a.client.end(false, {}, () => resolve())), deadline]);
    a.client.end(true);
    this.attempt = null;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextAttemptAt = null;
  }

  private connect(): void {
    this.timer = null;
    this.nextAttemptAt = null;
    const { settings, log } = this.deps;
    const url = settings.urls[this.attempts++ % settings.urls.length] as string;
    const session = this.deps.sessions.next();
    const version = this.protocol.version;
    let options: IClientOptions;
    try {
      options = this.clientOptions(session, version);
    } catch (err) {
      this.fail(url, `cannot read TLS/credential files: ${(err as Error).message}`, false);
      this.scheduleReconnect();
      return;
    }
    const client = mqtt.connect(url, options);
    const a: Attempt = { client, url, session, up: false, closed: false, pending: new Set(), disconnectReason: null, version, errored: false };
    this.attempt = a;
    log.debug({ broker: url, session }, 'connecting to MQTT broker');

    client.on('connect', () => void this.onConnect(a));
    client.on('message', (topic, payload) => this.onStatusMessage(a, topic, payload));
    client.on('disconnect', (packet) => {
      a.disconnectReason = packet.reasonCode ?? null;
    });
    client.on('error', (err: Error & { code?: unknown }) => {
      // A connection we are ending (a clean stop) or have given up on: mqtt.js may still
      // report the writes that raced the close ("write after end"). Nothing is wrong then.
      if (this.stopping || a.closed || a !== this.attempt) {
        log.debug({ broker: url, err: err.message }, 'MQTT client error after the connection was closed (ignored)');
        return;
      }
      a.errored = true;
      const code = typeof err.code === 'number' ? err.code : null;
      if (code !== null && err.message.startsWith('Connection refused')) {
        const identity = isIdentityRefusal(code, a.version);
        const who = settings.username ? ` (user "${settings.username}", client id "${this.deps.clientId}")` : ` (client id "${this.deps.clientId}")`;
        this.fail(url, `refused the connection: ${describeReasonCode(code, a.version)}${who}`, identity);
        // NATS answers an MQTT 5 CONNECT with 1 "unacceptable protocol version" (0x84 in MQTT 5 terms).
        if (code === 1 || code === 0x84) this.protocolNotAccepted(a);
      } else {
        const tls = /certificate|self.signed|SSL|TLS|alert/i.test(err.message) ? ' (TLS: check health.caFile and the broker certificate)' : '';
        this.fail(url, `${err.message}${tls}`, false);
      }
    });
    client.on('close', () => this.onClose(a));
  }

  private clientOptions(session: number, version: 4 | 5): IClientOptions {
    const { settings } = this.deps;
    const tls: Partial<IClientOptions> = {};
    if (settings.caFile) tls.ca = readFileSync(settings.caFile);
    if (settings.certFile && settings.keyFile) {
      tls.cert = readFileSync(settings.certFile);
      tls.key = readFileSync(settings.keyFile);
    }
    return {
      clientId: this.deps.clientId,
      protocolVersion: version,
      keepalive: settings.keepaliveS,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: this.deps.connectTimeoutMs ?? 10_000,
      queueQoSZero: false,
      resubscribe: false,
      // mqtt-packet otherwise pre-builds a 2-byte Buffer for each of the 65536 packet ids on
      // the first packet: ~6.5 MB of heap kept for good, to save one tiny allocation per publish.
      writeCache: false,
      ...(settings.username !== null ? { username: settings.username } : {}),
      ...(settings.password !== null ? { password: settings.password } : {}),
      ...(version === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}),
      will: { topic: this.deps.statusTopic, payload: Buffer.from(JSON.stringify(buildOffline(session, this.now(), 'lwt'))), qos: 1, retain: true },
      rejectUnauthorized: true,
      ...tls,
    };
  }

  private async onConnect(a: Attempt): Promise<void> {
    if (a !== this.attempt || a.closed) return;
    a.up = true;
    this.failures = 0;
    this.refused = false;
    this.connectedAt = this.now();
    this.deps.log.info({ broker: a.url, session: a.session, protocol: versionName(a.version) }, 'connected to MQTT broker');
    if (this.protocol.accepted() === 'kept') {
      this.deps.log.warn({ broker: a.url }, `broker ${a.url} took MQTT 3.1.1 after refusing MQTT 5: staying on 3.1.1 for this run; set health.protocolVersion "3.1.1" for this broker`);
    }
    try {
      await this.publishBirth(a);
      const granted = await a.client.subscribeAsync(this.deps.statusTopic, { qos: 1 });
      if (granted.some((g) => g.qos >= 0x80)) this.deps.log.warn({ topic: this.deps.statusTopic }, 'broker refused our subscription to our own status topic; a late will cannot be corrected');
    } catch (err) {
      if (a !== this.attempt || a.closed) return;
      const message = err instanceof PublishRefusedError ? err.message : `birth on ${a.url} failed: ${(err as Error).message}`;
      this.lastError = message;
      this.deps.log.error({ broker: a.url }, message);
      if (err instanceof NotConnectedError) return; // onClose takes over
    }
    if (a === this.attempt && a.up) {
      this.lastError = null;
      this.emit('up', a.session);
    }
  }

  private publishBirth(a: Attempt): Promise<void> {
    const body = JSON.stringify(buildBirth(a.session, this.now(), this.deps.agentVersion, this.deps.intervalS));
    return this.publish(this.deps.statusTopic, body, 1, true);
  }

  private onStatusMessage(a: Attempt, topic: string, payload: Buffer): void {
    if (topic !== this.deps.statusTopic || a !== this.attempt || !a.up || this.stopping) return;
    let status;
    try {
      status = parseStatusMessage(topic, payload);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'unreadable message on our status topic; re-publishing birth');
      status = null;
    }
    if (status && (status.state === 'online' || status.session > a.session)) {
      if (status.session > a.session) this.deps.log.warn({ theirs: status.session, ours: a.session }, 'a newer session of this member exists (duplicate member id?)');
      return;
    }
    if (status?.session === a.session) return; // our own shutdown offline
    this.deps.log.info({ stale: status?.session ?? null, ours: a.session }, 'an older session overwrote our status; re-publishing online');
    this.publishBirth(a).catch((err: Error) => this.deps.log.warn({ err: err.message }, 'could not re-publish birth'));
  }

  private fail(url: string, detail: string, identityRefused: boolean): void {
    this.lastError = `broker ${url}: ${detail}`;
    if (identityRefused) this.refused = true;
    this.deps.log.error({ broker: url }, this.lastError);
  }

  private onClose(a: Attempt): void {
    if (a.closed) return;
    a.closed = true;
    const wasUp = a.up;
    a.up = false;
    for (const reject of a.pending) reject(new NotConnectedError(`connection to ${a.url} lost${this.disconnectNote(a)}`, true));
    a.pending.clear();
    a.client.end(true);
    if (a !== this.attempt || this.stopping) return;
    if (wasUp) {
      this.deps.log.warn({ broker: a.url }, 'lost connection to MQTT broker');
      this.emit('down', `connection to ${a.url} lost`);
    } else if (!a.errored) {
      this.closedBeforeConnack(a);
    }
    this.scheduleReconnect();
  }

  /** The broker closed the connection without a CONNACK or an error: say what is likely, now and then. */
  private closedBeforeConnack(a: Attempt): void {
    const tls = a.url.startsWith('mqtts:');
    this.lastError = `broker ${a.url}: connection closed before CONNACK (${versionName(a.version)}); likely ${preConnackCauses(a.version, tls)}`;
    if (this.protocolNotAccepted(a)) return;
    if (this.preConnackWarnings.allow(this.now())) this.deps.log.warn({ broker: a.url, protocol: versionName(a.version) }, `${this.lastError} (repeats are logged at debug level for ${PRE_CONNACK_WARN_MS / 60_000} min)`);
    else this.deps.log.debug({ broker: a.url }, this.lastError);
  }

  /** The configured MQTT 5 was not accepted: fall back to 3.1.1 once (logged). True when it did. */
  private protocolNotAccepted(a: Attempt): boolean {
    if (a.version !== this.protocol.version) return false; // already decided for this attempt's version
    const step = this.protocol.notAccepted();
    if (step === 'fall-back') {
      this.deps.log.warn({ broker: a.url }, `broker ${a.url} did not accept MQTT 5 (${a.errored ? 'CONNACK refused the protocol version' : 'closed before CONNACK'}): trying MQTT 3.1.1 once`);
      return true;
    }
    if (step === 'give-up') this.deps.log.warn({ broker: a.url }, `broker ${a.url} did not accept MQTT 3.1.1 either: back to MQTT 5, the protocol is not the cause`);
    return false;
  }

  private disconnectNote(a: Attempt): string {
    const code = a.disconnectReason;
    return code === null ? '' : ` (the broker sent DISCONNECT with ${describeReasonCode(code, 5)})`;
  }

  private scheduleReconnect(): void {
    if (this.stopping) return;
    this.failures++;
    const delay = reconnectDelayMs(this.failures, this.refused, this.deps.timing, this.deps.random);
    if (this.refused) this.deps.log.error({ delayMs: delay }, `not retrying soon: the broker refused our credentials; next attempt in ${Math.round(delay / 1000)} s`);
    this.nextAttemptAt = this.now() + delay;
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
