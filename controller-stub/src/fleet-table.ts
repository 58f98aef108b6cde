/** The `fleet` command's table (pure): one line per member, columns sized to their content. */
import type { MembersResponse, MemberView } from './http';

const HEADERS = ['CLUSTER', 'MEMBER', 'STATE', 'LAST SEEN', 'LOAD', 'MEM FREE', 'FIREWALL', 'ACTIVATED', 'UNEXPECTED PORTS'] as const;

export function ago(ms: number | null, now: number): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

function cells(m: MemberView, now: number): string[] {
  const f = m.fleet;
  return [
    m.clusterId,
    m.memberId + (m.registration === null ? ' (unregistered)' : ''),
    m.state,
    ago(f?.lastSeen ?? null, now),
    f?.load1 == null ? '-' : f.load1.toFixed(2),
    f?.memAvailPct == null ? '-' : `${Math.round(f.memAvailPct)}%`,
    f?.firewall ?? '-',
    f ? (f.activated ? 'yes' : 'no') : '-',
    f && f.unexpectedPorts.length > 0 ? f.unexpectedPorts.join(',') : '-',
  ];
}

export function renderFleetTable(resp: MembersResponse, now: number): string {
  if (resp.members.length === 0) return 'no members registered or reporting\n';
  const rows = [[...HEADERS], ...resp.members.map((m) => cells(m, now))];
  const widths = HEADERS.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
  if (!resp.fleetTracking) lines.push('(fleet tracking is off: states come from registrations only)');
  return `${lines.join('\n')}\n`;
}
