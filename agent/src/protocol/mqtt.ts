/**
 * The MQTT wire contract, shared by the agent (health/) and the controller stub so the two
 * cannot drift: topics, payload types, pure builders, and validators for what a consumer
 * receives. See docs and DESIGN.md "MQTT".
 *
 * Topics: `<prefix>/<cluster>/<member>/status|health|event`, ids encoded (encodeIdLevel).
 * - status: retained, QoS 1. Birth `online` on every connect; the last will is `offline`
 *   (cause `lwt`); a graceful stop publishes `offline` (cause `shutdown`).
 * - health: QoS 0, not retained, every intervalS (jittered).
 * - event: QoS 1, not retained, lifecycle transitions.
 *
 * Sessions: every CONNECT gets a new session number, strictly greater than any earlier one of
 * this member (a counter persisted in the state dir, floored by the wall clock in ms, so it
 * also grows across a lost state dir). A consumer ignores a status whose session is older
 * than the newest it has seen: a late will from a dead connection cannot mark a live member
 * offline. Timestamps (`ts`) are epoch milliseconds at the sender; for a will that is the
 * connect time, so consumers should use the receipt time for deaths.
 */

import type { FirewallState } from '../firewall/types';

export const WIRE_VERSION = 1;
export const DEFAULT_TOPIC_PREFIX = 'cartridge/v1';
export const DEFAULT_CLUSTER_ID = 'default';

export type MemberChannel = 'status' | 'health' | 'event';
export const MEMBER_CHANNELS: readonly MemberChannel[] = ['status', 'health', 'event'];

export interface MemberId {
  clusterId: string;
  memberId: string;
}

export interface StatusMessage {
  v: 1;
  state: 'online' | 'offline';
  session: number;
  ts: number;
  cause?: 'lwt' | 'shutdown';
  agent?: string;
  intervalS?: number;
}

export interface ListeningPort {
  proto: 'tcp' | 'udp';
  port: number;
  addr: string;
  /** Bound to a loopback address only: not reachable from outside whatever the firewall says. */
  loopback: boolean;
  /** The port is in the allowlist (for this protocol). */
  allowed: boolean;
}

export interface DiskUsage {
  mount: string;
  fsType: string;
  sizeB: number;
  availB: number;
  usedPct: number;
}

/** What health reports say about the firewall: the agent's FirewallState as it is. */
export type FirewallReport = FirewallState;

export interface HealthReport {
  v: 1;
  session: number;
  seq: number;
  ts: number;
  uptimeS: number;
  load: [number, number, number];
  cpus: number;
  mem: { totalB: number; availB: number };
  disk: DiskUsage[];
  net: { rxB: number; txB: number };
  listening: ListeningPort[];
  firewall: FirewallReport | null;
  payloadDigest: string | null;
  agent: string;
  /** Messages the agent dropped from its outage buffer since it started (cumulative). */
  dropped: { health: number; event: number };
  /**
   * Messages the broker would not take, dropped since the agent started (cumulative): refused
   * (MQTT 5 PUBACK ≥ 0x80) or the connection lost 3 times with it in flight. Absent from
   * agents before it.
   */
  refused?: { health: number; event: number };
}

export const EVENT_TYPES = ['started', 'activated', 'ready-to-shutdown', 'maintenance', 'fault'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface LifecycleEvent {
  v: 1;
  session: number;
  seq: number;
  ts: number;
  type: EventType;
  reason?: string;
}

/** topic channel → payload type: the typed map consumers dispatch on. */
export interface MemberTopicPayloads {
  status: StatusMessage;
  health: HealthReport;
  event: LifecycleEvent;
}

// ---------------------------------------------------------------- topics and identity

/**
 * Ids on the wire (DESIGN.md "Ids on the wire"): one reversible encoding of a cluster or member
 * id into ONE topic level, the same on every broker we support. Characters outside
 * `[A-Za-z0-9_-]` become `%XX` per UTF-8 byte (upper-case hex), `%` itself included. Why that
 * alphabet, broker by broker (docs/daemon.md "Ids on the wire"):
 * - MQTT itself: `/` separates levels, `+` `#` are wildcards, a leading `$` is for the broker,
 *   NUL is forbidden and control characters are discouraged (mosquitto refuses them).
 * - RabbitMQ (3.x MQTT plugin): topic → AMQP routing key turns `/` into `.` and `+` into `*`,
 *   and back `.` into `/` and `*` into `+`: a `.` in an id arrives as a level separator
 *   (`php.shop` → `php/shop`, and `a.b`/`x` collides with `a`/`b.x`); `*` and `#` are AMQP
 *   wildcards in bindings.
 * - NATS (2.9): `.` and space are refused (the connection is dropped, at CONNECT if the will
 *   topic has one); 2.10 turns `.` into `//`. `*` and `>` are NATS wildcards.
 * - ActiveMQ Classic: swaps `/`↔`.`, `+`↔`*`, `#`↔`>` into destination names, where `,`
 *   makes a composite destination and `:`/`?` carry options.
 * - mosquitto/EMQX ACL patterns substitute `%u`/`%c`: hex is upper-case, so an encoded level
 *   never holds `%u` or `%c`.
 * What is left, letters, digits, `_` and `-`, means nothing to any of them. Ids in that
 * alphabet are unchanged, so simple ids look as before. The encoding is canonical: decoding
 * accepts only what encoding produces (no `%41` for `A`, no lower-case hex), so distinct ids
 * never share a topic level and no level decodes to two ids.
 */
const SAFE_ID_CHAR = /[A-Za-z0-9_-]/;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** An id as one topic level. Throws on an empty id or one that is not well-formed Unicode (no reversible UTF-8). */
export function encodeIdLevel(id: string): string {
  if (id === '') throw new RangeError('an id must not be empty');
  if (LONE_SURROGATE.test(id)) throw new RangeError(`id ${JSON.stringify(id)} is not well-formed Unicode (a lone surrogate)`);
  let out = '';
  for (const ch of id) {
    if (SAFE_ID_CHAR.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The id a topic level holds; null when the level is not exactly what encodeIdLevel makes of some id. */
export function decodeIdLevel(level: string): string | null {
  if (level === '' || !/^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$/.test(level)) return null;
  const bytes: number[] = [];
  for (let i = 0; i < level.length; ) {
    if (level[i] === '%') {
      bytes.push(parseInt(level.slice(i + 1, i + 3), 16));
      i += 3;
    } else bytes.push(level.charCodeAt(i++));
  }
  let id: string;
  try {
    id = UTF8.decode(Uint8Array.from(bytes));
  } catch {
    return null; // not UTF-8
  }
  return encodeIdLevel(id) === level ? id : null;
}

/**
 * The MQTT client id of a member: its encoded member id. ASCII in a safe alphabet, so every
 * broker takes it, and equal to the member's topic level, so an ACL pattern with `%c`
 * (mosquitto, EMQX) matches the member's own topics.
 */
export function memberClientId(id: MemberId): string {
  return encodeIdLevel(id.memberId);
}

/** A payload id as given; blank (empty or only whitespace) counts as absent. */
function idValue(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value : undefined;
}

/**
 * Cluster and member from the payload as Stratos names them, exactly (the topics encode them).
 * Fallbacks: cluster `default`; member = MEMBER_ID, else INSTANCE_ID, else the instance id the
 * pointer source gave, else `unknown`.
 */
export function memberIdFromPayload(vars: ReadonlyMap<string, string>, instanceId: string): MemberId {
  return {
    clusterId: idValue(vars.get('CLUSTER_ID')) ?? DEFAULT_CLUSTER_ID,
    memberId: idValue(vars.get('MEMBER_ID')) ?? idValue(vars.get('INSTANCE_ID')) ?? idValue(instanceId) ?? 'unknown',
  };
}

export function memberTopic(prefix: string, id: MemberId, channel: MemberChannel): string {
  return `${prefix}/${encodeIdLevel(id.clusterId)}/${encodeIdLevel(id.memberId)}/${channel}`;
}

/** All three topics of a member. */
export function memberTopics(prefix: string, id: MemberId): Record<MemberChannel, string> {
  return { status: memberTopic(prefix, id, 'status'), health: memberTopic(prefix, id, 'health'), event: memberTopic(prefix, id, 'event') };
}

/** Subscription filter for every member's channel (controller side). */
export function fleetFilter(prefix: string, channel: MemberChannel | '#'): string {
  return channel === '#' ? `${prefix}/#` : `${prefix}/+/+/${channel}`;
}

/** Inverse of memberTopic (ids decoded); null for a topic that is not a member topic under prefix. */
export function parseMemberTopic(prefix: string, topic: string): (MemberId & { channel: MemberChannel }) | null {
  if (!topic.startsWith(`${prefix}/`)) return null;
  const parts = topic.slice(prefix.length + 1).split('/');
  if (parts.length !== 3) return null;
  const [clusterLevel, memberLevel, channel] = parts as [string, string, string];
  if (!(MEMBER_CHANNELS as readonly string[]).includes(channel)) return null;
  const clusterId = decodeIdLevel(clusterLevel);
  const memberId = decodeIdLevel(memberLevel);
  if (clusterId === null || memberId === null) return null;
  return { clusterId, memberId, channel: channel as MemberChannel };
}

// ---------------------------------------------------------------- builders (pure)

export function buildBirth(session: number, ts: number, agent: string, intervalS: number): StatusMessage {
  return { v: WIRE_VERSION, state: 'online', session, ts, agent, intervalS };
}

export function buildOffline(session: number, ts: number, cause: 'lwt' | 'shutdown'): StatusMessage {
  return { v: WIRE_VERSION, state: 'offline', session, ts, cause };
}

export function buildEvent(session: number, seq: number, ts: number, type: EventType, reason?: string): LifecycleEvent {
  return reason === undefined ? { v: WIRE_VERSION, session, seq, ts, type } : { v: WIRE_VERSION, session, seq, ts, type, reason };
}

// ---------------------------------------------------------------- Stratos compatibility

export type StratosEventName =
  | 'InstanceStartedEvent'
  | 'InstanceActivatedEvent'
  | 'InstanceReadyToShutdownEvent'
  | 'InstanceMaintenanceModeEvent';

/** Our lifecycle events that Stratos has an instance status event for (fault has none). */
export const STRATOS_EVENT_FOR: Partial<Record<EventType, StratosEventName>> = {
  started: 'InstanceStartedEvent',
  activated: 'InstanceActivatedEvent',
  'ready-to-shutdown': 'InstanceReadyToShutdownEvent',
  maintenance: 'InstanceMaintenanceModeEvent',
};

export function stratosTopic(name: StratosEventName): string {
  return `instance/status/${name}`;
}

/** Field order as Stratos' Python agent (PCA/modules/event/instance/status/events.py) sends them. */
export interface StratosInstanceEvent {
  applicationId?: string;
  serviceName: string;
  clusterId: string;
  clusterInstanceId: string;
  memberId: string;
  instanceId: string;
  networkPartitionId: string;
  partitionId: string;
}

/** Stratos' JSON body from the payload's Stratos keys (raw values: Stratos ids are not sanitised). Missing keys → "". */
export function buildStratosEvent(name: StratosEventName, vars: ReadonlyMap<string, string>): StratosInstanceEvent {
  const v = (k: string): string => vars.get(k) ?? '';
  const common = {
    serviceName: v('SERVICE_NAME'),
    clusterId: v('CLUSTER_ID'),
    clusterInstanceId: v('CLUSTER_INSTANCE_ID'),
    memberId: v('MEMBER_ID'),
    instanceId: v('INSTANCE_ID'),
    networkPartitionId: v('NETWORK_PARTITION_ID'),
    partitionId: v('PARTITION_ID'),
  };
  return name === 'InstanceStartedEvent' ? { applicationId: v('APPLICATION_ID'), ...common } : common;
}

// ---------------------------------------------------------------- validators (consumer side)

export class WireFormatError extends Error {
  constructor(
    readonly topic: string,
    detail: string,
  ) {
    super(`${topic}: ${detail}`);
    this.name = 'WireFormatError';
  }
}

function parseObject(topic: string, body: Buffer | string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new WireFormatError(topic, `not JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new WireFormatError(topic, 'not a JSON object');
  const obj = value as Record<string, unknown>;
  if (obj.v !== WIRE_VERSION) throw new WireFormatError(topic, `unsupported wire version ${JSON.stringify(obj.v)} (expected ${WIRE_VERSION})`);
  return obj;
}

function want(topic: string, obj: Record<string, unknown>, key: string, ok: (x: unknown) => boolean, what: string, optional = false): void {
  if (optional && obj[key] === undefined) return;
  if (!ok(obj[key])) throw new WireFormatError(topic, `field "${key}" must be ${what}, got ${JSON.stringify(obj[key]) ?? 'nothing'}`);
}

const isCount = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * A status message as received (birth, will, or shutdown). An empty body is the controller
 * clearing a terminated member's retained status: returns null.
 */
export function parseStatusMessage(topic: string, body: Buffer | string): StatusMessage | null {
  if (body.length === 0) return null;
  const obj = parseObject(topic, body);
  want(topic, obj, 'state', (x) => x === 'online' || x === 'offline', '"online" or "offline"');
  want(topic, obj, 'session', isCount, 'a non-negative integer');
  want(topic, obj, 'ts', isCount, 'epoch milliseconds');
  want(topic, obj, 'cause', (x) => x === 'lwt' || x === 'shutdown', '"lwt" or "shutdown"', true);
  want(topic, obj, 'agent', (x) => typeof x === 'string', 'a string', true);
  want(topic, obj, 'intervalS', isCount, 'a non-negative integer', true);
  return obj as unknown as StatusMessage;
}

export function parseLifecycleEvent(topic: string, body: Buffer | string): LifecycleEvent {
  const obj = parseObject(topic, body);
  want(topic, obj, 'session', isCount, 'a non-negative integer');
  want(topic, obj, 'seq', isCount, 'a non-negative integer');
  want(topic, obj, 'ts', isCount, 'epoch milliseconds');
  want(topic, obj, 'type', (x) => (EVENT_TYPES as readonly unknown[]).includes(x), `one of ${EVENT_TYPES.join(', ')}`);
  want(topic, obj, 'reason', (x) => typeof x === 'string', 'a string', true);
  return obj as unknown as LifecycleEvent;
}

const isNumber = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);
const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);

/**
 * A health report as the controller receives it. Checks what consumers read (session, seq,
 * load, mem, listening, firewall) and leaves the rest as sent.
 */
export function parseHealthReport(topic: string, body: Buffer | string): HealthReport {
  const obj = parseObject(topic, body);
  for (const key of ['session', 'seq', 'ts']) want(topic, obj, key, isCount, 'a non-negative integer');
  want(topic, obj, 'load', (x) => Array.isArray(x) && x.length === 3 && x.every(isNumber), 'three numbers');
  want(topic, obj, 'mem', (x) => isObject(x) && isNumber(x.totalB) && isNumber(x.availB), '{ totalB, availB } numbers');
  want(topic, obj, 'listening', Array.isArray, 'an array');
  (obj.listening as unknown[]).forEach((p, i) => {
    if (!isObject(p) || !isCount(p.port) || typeof p.loopback !== 'boolean' || typeof p.allowed !== 'boolean') {
      throw new WireFormatError(topic, `field "listening[${i}]" must be { port, loopback, allowed }, got ${JSON.stringify(p) ?? 'nothing'}`);
    }
  });
  want(topic, obj, 'firewall', (x) => x === null || (isObject(x) && typeof x.mode === 'string' && isCount(x.ruleCount)), 'null or { mode, backend, ruleCount, ... }', true);
  return obj as unknown as HealthReport;
}

/**
 * Does `incoming` supersede what a consumer knows (`current`)? A newer session always wins;
 * within one session an `offline` wins over `online` (shutdown or will ends that session).
 */
export function statusSupersedes(current: StatusMessage | null, incoming: StatusMessage): boolean {
  if (!current) return true;
  if (incoming.session !== current.session) return incoming.session > current.session;
  return incoming.state === 'offline' || current.state === 'online';
}
