/**
 * Prometheus text exposition (format 0.0.4) of the controller's counters (pure). Counter names
 * end in _total; every family has HELP and TYPE lines, and every label value of a known set is
 * present (as 0) so rate() and alerts see a series before its first increment.
 */
import type { FleetMetrics } from './fleet';

export const PAYLOAD_RESULTS = ['ok', 'missing_token', 'malformed', 'forged', 'wrong_member', 'expired', 'reused', 'revoked', 'wrong_instance', 'no_instance_id', 'unknown_member', 'error'] as const;
export type PayloadResult = (typeof PAYLOAD_RESULTS)[number];

export interface MetricsInput {
  /** What is running: the package version and the Node.js version (build_info, always 1). */
  build: { version: string; node: string };
  /** null when no fleet tracker runs. */
  fleet: FleetMetrics | null;
  registered: { active: number; terminated: number };
  payloadRequests: Readonly<Record<PayloadResult, number>>;
  /** Requests answered with an error status the client did not earn by a rule (400 malformed, 500 ours), by status. */
  httpErrors?: Readonly<Record<string, number>>;
}

/** The statuses counted in cartridge_controller_http_errors_total (all present from the start). */
export function newHttpErrorCounters(): Record<string, number> {
  return { '400': 0, '431': 0, '500': 0 };
}

export function newPayloadCounters(): Record<PayloadResult, number> {
  return Object.fromEntries(PAYLOAD_RESULTS.map((r) => [r, 0])) as Record<PayloadResult, number>;
}

function family(out: string[], name: string, type: 'gauge' | 'counter', help: string, samples: Array<[Record<string, string>, number]>): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
    out.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }
}

export function renderMetrics(m: MetricsInput): string {
  const out: string[] = [];
  family(out, 'cartridge_controller_build_info', 'gauge', 'The running controller: its version and the Node.js version (always 1).', [
    [{ version: m.build.version, node: m.build.node }, 1],
  ]);
  family(out, 'cartridge_controller_registered_members', 'gauge', 'Members in the member store.', [
    [{ status: 'active' }, m.registered.active],
    [{ status: 'terminated' }, m.registered.terminated],
  ]);
  family(out, 'cartridge_controller_payload_requests_total', 'counter', 'Payload requests by result.',
    Object.entries(m.payloadRequests).map(([result, n]) => [{ result }, n]));
  if (m.httpErrors) {
    family(out, 'cartridge_controller_http_errors_total', 'counter', 'Requests refused as malformed (400, 431) or failed inside the controller (500).',
      Object.entries(m.httpErrors).map(([status, n]) => [{ status }, n]));
  }
  if (m.fleet) {
    family(out, 'cartridge_controller_members', 'gauge', 'Tracked members by fleet state.',
      Object.entries(m.fleet.membersByState).map(([state, n]) => [{ state }, n]));
    family(out, 'cartridge_controller_reports_received_total', 'counter', 'Health reports received.', [[{}, m.fleet.reportsReceived]]);
    family(out, 'cartridge_controller_events_received_total', 'counter', 'Lifecycle events received.', [[{}, m.fleet.eventsReceived]]);
    family(out, 'cartridge_controller_lost_sequence_numbers_total', 'counter', 'Health sequence numbers that never arrived.', [[{}, m.fleet.lostSequenceNumbers]]);
  }
  return `${out.join('\n')}\n`;
}
