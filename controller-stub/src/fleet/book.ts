/**
 * FleetBook: the member records and counters of one controller replica, driven by the pure
 * transitions in state.ts. Deterministic: every call takes the receipt time, nothing reads a
 * clock, so tests replay message sequences exactly. FleetTracker is the MQTT shell around it.
 */
import type { HealthReport, LifecycleEvent, MemberId, StatusMessage } from '../../../agent/src/protocol/mqtt';
import {
  initialLink, judgeStale, linkDown, linkUp, MEMBER_STATES, newRecord, onEvent, onHealth, onStatus, terminateRecord,
  type LinkState, type MemberRecord, type MemberState, type Received, type Transition,
} from './state';

export interface FleetRow {
  clusterId: string;
  memberId: string;
  state: MemberState;
  /** Epoch ms. */
  lastSeen: number | null;
  session: number | null;
  load1: number | null;
  memAvailPct: number | null;
  /** e.g. "enforce nft 15 rules". */
  firewall: string | null;
  activated: boolean;
  /** Listening, not loopback, not allowed. */
  unexpectedPorts: number[];
  seqGaps: number;
  lastEvent: string | null;
}

export interface FleetMetrics {
  membersByState: Record<MemberState, number>;
  reportsReceived: number;
  eventsReceived: number;
  lostSequenceNumbers: number;
}

export interface FleetBookOptions {
  /**
   * Count health seq gaps. Off for a replica in a shared subscription group: it sees only its
   * share of each member's reports, so its "gaps" are the other replicas' reports.
   */
  countGaps: boolean;
}

const key = (id: MemberId): string => `${id.clusterId}/${id.memberId}`;

export class FleetBook {
  private readonly members = new Map<string, MemberRecord>();
  private link: LinkState;
  private counters = { reportsReceived: 0, eventsReceived: 0, lostSequenceNumbers: 0, ignored: 0 };

  constructor(
    now: number,
    private readonly opts: FleetBookOptions,
  ) {
    this.link = initialLink(now);
  }

  connected(now: number): void {
    this.link = linkUp(this.link, now);
  }

  disconnected(now: number): void {
    this.judge(now); // whatever was due before we went deaf is still due
    this.link = linkDown(this.link, now);
  }

  get linkState(): LinkState {
    return this.link;
  }

  status(id: MemberId, msg: StatusMessage | null, rx: Received): boolean {
    return this.apply(id, (r) => onStatus(r, msg, this.link, rx));
  }

  health(id: MemberId, report: HealthReport, rx: Received): boolean {
    this.counters.reportsReceived++;
    return this.apply(id, (r) => onHealth(r, report, this.link, rx, this.opts.countGaps));
  }

  event(id: MemberId, event: LifecycleEvent, rx: Received): boolean {
    this.counters.eventsReceived++;
    return this.apply(id, (r) => onEvent(r, event, rx));
  }

  terminate(id: MemberId, now: number): void {
    this.members.set(key(id), terminateRecord(this.members.get(key(id)) ?? newRecord(id), now));
  }

  /** ONLINE → STALE where due (the tracker calls this on a timer and before reading). */
  judge(now: number): void {
    for (const [k, r] of this.members) {
      const next = judgeStale(r, this.link, now);
      if (next !== r) this.members.set(k, next);
    }
  }

  record(id: MemberId): MemberRecord | undefined {
    return this.members.get(key(id));
  }

  rows(now: number): FleetRow[] {
    this.judge(now);
    return [...this.members.values()].sort(byId).map(toRow);
  }

  metrics(now: number): FleetMetrics & { ignoredMessages: number } {
    this.judge(now);
    const membersByState = Object.fromEntries(MEMBER_STATES.map((s) => [s, 0])) as Record<MemberState, number>;
    for (const r of this.members.values()) membersByState[r.state]++;
    const { reportsReceived, eventsReceived, lostSequenceNumbers, ignored } = this.counters;
    return { membersByState, reportsReceived, eventsReceived, lostSequenceNumbers, ignoredMessages: ignored };
  }

  private apply(id: MemberId, step: (r: MemberRecord) => Transition): boolean {
    const k = key(id);
    const t = step(this.members.get(k) ?? newRecord(id));
    if (!t.accepted) {
      this.counters.ignored++;
      return false;
    }
    this.members.set(k, t.record);
    this.counters.lostSequenceNumbers += t.lost;
    return true;
  }
}

function byId(a: MemberRecord, b: MemberRecord): number {
  // Code-unit order, not localeCompare: ids are ASCII and ICU collation is not needed.
  const ka = key(a);
  const kb = key(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** "enforce nft 15 rules", plus what is wrong when something is. */
export function firewallSummary(fw: HealthReport['firewall']): string | null {
  if (!fw) return null;
  const parts = [fw.mode, fw.backend ?? 'no-backend', `${fw.ruleCount} ${fw.ruleCount === 1 ? 'rule' : 'rules'}`];
  if (fw.lastError) parts.push('error');
  else if (fw.lastDrift) parts.push('drifted');
  return parts.join(' ');
}

export function toRow(r: MemberRecord): FleetRow {
  const h = r.health;
  const memAvailPct = h && h.mem.totalB > 0 ? Math.round((h.mem.availB / h.mem.totalB) * 1000) / 10 : null;
  const unexpected = h ? h.listening.filter((p) => !p.loopback && !p.allowed).map((p) => p.port) : [];
  return {
    clusterId: r.clusterId,
    memberId: r.memberId,
    state: r.state,
    lastSeen: r.lastSeen,
    session: r.session,
    load1: h ? h.load[0] : null,
    memAvailPct,
    firewall: firewallSummary(h?.firewall ?? null),
    activated: r.activated,
    unexpectedPorts: [...new Set(unexpected)].sort((a, b) => a - b),
    seqGaps: r.seqGaps,
    lastEvent: r.lastEvent,
  };
}
