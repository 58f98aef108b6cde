/**
 * The fleet state machine, pure: every function takes a member record (or the controller's
 * link state) and a receipt time and returns the next record plus what it cost. No timers, no
 * I/O; FleetBook (book.ts) holds the records and FleetTracker feeds it from MQTT.
 *
 * States (mqtt.md §8):
 * - ONLINE on a birth (or on health/events of a session newer than the one we know: the birth
 *   travels on another subscription and may come second).
 * - STALE when no health arrived for 3× the member's interval, counting only time the
 *   controller could hear (see `silentMs`), and never within one interval of the controller's
 *   own (re)connect: after an outage of ours, members get the chance to be heard again.
 * - OFFLINE on a will or shutdown whose session is the current one or newer. Anything
 *   carrying an older session (a late will of a dead connection, buffered health) is ignored.
 * - GONE after terminate, or when the retained status is cleared (a zero-byte retained status
 *   is how another controller replica announces a terminate). Sticky for every session up to
 *   `goneSession`; a message of a NEWER session revives the member (decision: a terminated VM
 *   that is still alive and reconnecting is something the operator must see, not hide; a
 *   member id reused by a new registration works the same way).
 *
 * Sequence gaps: health `seq` grows by one per report for the life of the agent process, so
 * within one session a jump of n means n-1 reports never arrived. The baseline restarts with
 * each session (a reconnect or a reboot); reports older than the last one are not gaps.
 */
import type { HealthReport, LifecycleEvent, MemberId, StatusMessage } from '../../../agent/src/protocol/mqtt';

export type MemberState = 'ONLINE' | 'STALE' | 'OFFLINE' | 'GONE' | 'UNKNOWN';
export const MEMBER_STATES: readonly MemberState[] = ['ONLINE', 'STALE', 'OFFLINE', 'GONE', 'UNKNOWN'];

/** Stratos' stats interval; used until a birth tells us the member's own. */
export const DEFAULT_INTERVAL_S = 15;
/** Silent for this many intervals → STALE. */
export const STALE_INTERVALS = 3;

export interface MemberRecord extends MemberId {
  state: MemberState;
  session: number | null;
  intervalS: number;
  /** Receipt time (epoch ms) of the last message we accepted; the sender's ts for a retained one. */
  lastSeen: number | null;
  /** When the silence clock last restarted: a live birth or health report (receipt time). */
  heardAt: number | null;
  /** The link's deaf total at heardAt, so silentMs can subtract our own outages since then. */
  deafAtHeard: number;
  lastSeq: number | null;
  seqGaps: number;
  health: HealthReport | null;
  activated: boolean;
  lastEvent: string | null;
  offlineCause: 'lwt' | 'shutdown' | null;
  /** Sessions up to this one stay GONE (set by terminate or a cleared retained status). */
  goneSession: number | null;
}

/** The controller's own connection to the broker. */
export interface LinkState {
  connected: boolean;
  /** Since when we have been connected (null while disconnected). */
  connectedSince: number | null;
  /** Since when we have been disconnected (null while connected). */
  deafSince: number | null;
  /** Total ms spent disconnected before deafSince (closed outages). */
  deafClosedMs: number;
}

export interface Transition {
  record: MemberRecord;
  /** False when the message was ignored (older session, terminated session, ...). */
  accepted: boolean;
  /** Sequence numbers found missing by this message. */
  lost: number;
}

export interface Received {
  now: number;
  /** Delivered because we subscribed (a retained snapshot), not published just now. */
  retained: boolean;
}

// ---------------------------------------------------------------- link (our own connection)

/** A link that has never been up: deaf from `now`. */
export function initialLink(now: number): LinkState {
  return { connected: false, connectedSince: null, deafSince: now, deafClosedMs: 0 };
}

export function linkUp(link: LinkState, now: number): LinkState {
  if (link.connected) return link;
  const closed = link.deafSince === null ? 0 : Math.max(0, now - link.deafSince);
  return { connected: true, connectedSince: now, deafSince: null, deafClosedMs: link.deafClosedMs + closed };
}

export function linkDown(link: LinkState, now: number): LinkState {
  if (!link.connected) return link;
  return { connected: false, connectedSince: null, deafSince: now, deafClosedMs: link.deafClosedMs };
}

/** Total ms we could not hear the broker, up to now. */
export function deafTotal(link: LinkState, now: number): number {
  return link.deafClosedMs + (link.deafSince === null ? 0 : Math.max(0, now - link.deafSince));
}

// ---------------------------------------------------------------- members

export function newRecord(id: MemberId): MemberRecord {
  return {
    clusterId: id.clusterId, memberId: id.memberId, state: 'UNKNOWN', session: null, intervalS: DEFAULT_INTERVAL_S,
    lastSeen: null, heardAt: null, deafAtHeard: 0, lastSeq: null, seqGaps: 0, health: null, activated: false,
    lastEvent: null, offlineCause: null, goneSession: null,
  };
}

const ignored = (record: MemberRecord): Transition => ({ record, accepted: false, lost: 0 });

/** Is `session` at or below the terminated one? Such messages never touch a GONE member. */
function buriedSession(r: MemberRecord, session: number): boolean {
  return r.state === 'GONE' && r.goneSession !== null && session <= r.goneSession;
}

/** A session newer than the known one starts afresh: seq baseline and cause reset. */
function enterSession(r: MemberRecord, session: number): MemberRecord {
  if (r.session === session && r.state !== 'GONE') return r;
  return { ...r, session, lastSeq: null, offlineCause: null, goneSession: null };
}

function heard(r: MemberRecord, link: LinkState, now: number): MemberRecord {
  return { ...r, heardAt: now, deafAtHeard: deafTotal(link, now) };
}

/**
 * A status message (birth, will, shutdown) or null for a zero-byte retained status (cleared
 * by a terminate, possibly another replica's).
 */
export function onStatus(r: MemberRecord, msg: StatusMessage | null, link: LinkState, rx: Received): Transition {
  if (msg === null) return r.state === 'GONE' ? ignored(r) : { record: terminateRecord(r, rx.now), accepted: true, lost: 0 };
  if (buriedSession(r, msg.session)) return ignored(r);
  if (r.session !== null && r.state !== 'GONE' && msg.session < r.session) return ignored(r);
  const seen = rx.retained ? msg.ts : rx.now;
  if (msg.state === 'offline') {
    const next = enterSession(r, msg.session);
    return { record: { ...next, state: 'OFFLINE', offlineCause: msg.cause ?? 'lwt', lastSeen: seen }, accepted: true, lost: 0 };
  }
  // A birth of the session that already ended (offline wins within a session; statusSupersedes).
  if (r.session === msg.session && r.state === 'OFFLINE') return ignored(r);
  const intervalS = msg.intervalS && msg.intervalS > 0 ? msg.intervalS : DEFAULT_INTERVAL_S;
  // A retained birth of the session we already hear from (re-delivered on our resubscribe, or
  // arriving after its health): it tells the interval but is no new evidence of life.
  if (rx.retained && r.session === msg.session && (r.state === 'ONLINE' || r.state === 'STALE')) {
    return { record: { ...r, intervalS }, accepted: true, lost: 0 };
  }
  const next = enterSession(r, msg.session);
  return { record: heard({ ...next, state: 'ONLINE', intervalS, lastSeen: seen }, link, rx.now), accepted: true, lost: 0 };
}

/** Shared gate for health and events: null when the message must be ignored. */
function liveSession(r: MemberRecord, session: number): MemberRecord | null {
  if (buriedSession(r, session)) return null;
  if (r.session !== null && r.state !== 'GONE') {
    if (session < r.session) return null;
    // The session ended (shutdown or will); a straggler of it does not revive the member.
    if (session === r.session && r.state === 'OFFLINE') return null;
  }
  const next = enterSession(r, session);
  return next.state === 'ONLINE' || next.state === 'STALE' ? next : { ...next, state: 'ONLINE' };
}

export function onHealth(r: MemberRecord, report: HealthReport, link: LinkState, rx: Received, countGaps: boolean): Transition {
  const next = liveSession(r, report.session);
  if (!next) return ignored(r);
  let lost = 0;
  let lastSeq = next.lastSeq;
  if (lastSeq === null || report.seq > lastSeq) {
    if (countGaps && lastSeq !== null) lost = report.seq - lastSeq - 1;
    lastSeq = report.seq;
  }
  const record = heard({ ...next, state: 'ONLINE', health: report, lastSeq, seqGaps: next.seqGaps + lost, lastSeen: rx.now }, link, rx.now);
  return { record, accepted: true, lost };
}

export function onEvent(r: MemberRecord, event: LifecycleEvent, rx: Received): Transition {
  const next = liveSession(r, event.session);
  if (!next) return ignored(r);
  // `activated` belongs to one agent run: a new run announces itself with `started`.
  const activated = event.type === 'activated' ? true : event.type === 'started' ? false : next.activated;
  return { record: { ...next, activated, lastEvent: event.type, lastSeen: rx.now }, accepted: true, lost: 0 };
}

/**
 * GONE. goneSession also covers sessions we never saw: sessions are floored by the agent's
 * wall clock in ms (protocol/mqtt.ts "Sessions"), so every session begun before the terminate
 * is ≤ now, give or take clock skew between the VM and the controller.
 */
export function terminateRecord(r: MemberRecord, now: number): MemberRecord {
  return { ...r, state: 'GONE', goneSession: Math.max(r.session ?? 0, Math.floor(now)) };
}

/** How long the member has been silent, not counting time the controller was disconnected. */
export function silentMs(r: MemberRecord, link: LinkState, now: number): number | null {
  if (r.heardAt === null) return null;
  return Math.max(0, now - r.heardAt - (deafTotal(link, now) - r.deafAtHeard));
}

/** May we call anyone STALE now? Only while connected, and one interval after (re)connecting. */
export function judging(link: LinkState, intervalS: number, now: number): boolean {
  return link.connected && link.connectedSince !== null && now - link.connectedSince >= intervalS * 1000;
}

/** ONLINE → STALE when due; every other state is left alone (STALE ends with the next health). */
export function judgeStale(r: MemberRecord, link: LinkState, now: number): MemberRecord {
  if (r.state !== 'ONLINE' || !judging(link, r.intervalS, now)) return r;
  const silent = silentMs(r, link, now);
  if (silent === null || silent < STALE_INTERVALS * r.intervalS * 1000) return r;
  return { ...r, state: 'STALE' };
}
