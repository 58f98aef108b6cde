/**
 * What the running daemon is doing, for `cartridge-agent status`: the daemon rewrites one
 * JSON file in /run (atomically) whenever something changes and at least every few seconds;
 * `status` reads it and checks the writer is still alive. A file keeps the two processes
 * decoupled (no socket to secure) and survives a hung daemon long enough to show where it hung.
 */
import { objectWith, readStateFile } from '../io/state-file';
import { writeFileAtomic } from '../io/staged-write';
import type { FirewallState } from '../firewall/types';

export const STATUS_FILE = '/run/cartridge-agent/status.json';

export interface BrokerStatus {
  connected: boolean;
  broker: string | null;
  session: string | null;
  lastReportAt: string | null;
  buffered: number;
  dropped: number;
  /** Messages the broker refused (or that kept losing the connection), dropped. */
  refused?: number;
  lastError: string | null;
}

export interface DaemonStatus {
  v: 1;
  pid: number;
  version: string;
  startedAt: string;
  updatedAt: string;
  /** What the agent is doing or waiting for (the same text as systemd's STATUS=). */
  activity: string;
  source: { name: string; origin: string; instanceId: string } | null;
  payload: { digest: string; keys: number; via: string; cachedAt?: string } | null;
  exports: string[];
  firewall: FirewallState | null;
  broker: BrokerStatus | null;
  /** 'waiting' until the app's ports answer, then 'activated' (or 'timeout'). */
  app: 'waiting' | 'activated' | 'timeout' | 'not-checked';
}

export async function writeStatus(hostPath: string, status: DaemonStatus): Promise<void> {
  // 0644: nothing secret in here (no values, URLs redacted), and operators read it unprivileged.
  await writeFileAtomic(hostPath, JSON.stringify(status, null, 2) + '\n', { mode: 0o644, stage: 'status' });
}

export type StatusRead = { status: DaemonStatus; running: boolean } | { status: null; reason: string };

const isStatus = objectWith({
  pid: 'number',
  version: 'string',
  startedAt: 'string',
  updatedAt: 'string',
  activity: 'string',
  source: 'object|null',
  payload: 'object|null',
  exports: 'array',
  firewall: 'object|null',
  broker: 'object|null',
  app: 'string',
});

export async function readStatus(hostPath: string, isAlive: (pid: number) => boolean = processAlive): Promise<StatusRead> {
  // A damaged file is a StateFileError naming it (exit 11), not "not running".
  const status = await readStateFile<DaemonStatus>(hostPath, 'the daemon status file', isStatus);
  if (!status) return { status: null, reason: `no ${hostPath}: the daemon ('cartridge-agent run') is not running on this boot` };
  return { status, running: isAlive(status.pid) };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Human-readable lines for `cartridge-agent status`. */
export function describeStatus(s: DaemonStatus, running: boolean): string {
  const lines = [
    `daemon:    ${running ? `running, pid ${s.pid}` : `NOT running (last pid ${s.pid})`}, version ${s.version}, since ${s.startedAt}`,
    `activity:  ${s.activity} (updated ${s.updatedAt})`,
    `source:    ${s.source ? `${s.source.name} (${s.source.origin}), instance ${s.source.instanceId}` : '-'}`,
    `payload:   ${s.payload ? `${s.payload.keys} variables, sha256 ${s.payload.digest}, ${s.payload.via}${s.payload.cachedAt ? ` (cached ${s.payload.cachedAt})` : ''}` : '-'}`,
    `exports:   ${s.exports.length ? s.exports.join(', ') : '-'}`,
    `firewall:  ${s.firewall ? `${s.firewall.mode}, ${s.firewall.backend ?? '-'}, ${s.firewall.ruleCount} rules${s.firewall.lastDrift ? `, last drift ${s.firewall.lastDriftAt}: ${s.firewall.lastDrift}` : ''}${s.firewall.lastError ? `, last error: ${s.firewall.lastError}` : ''}` : '-'}`,
    `broker:    ${s.broker ? `${s.broker.connected ? 'connected' : 'NOT connected'} to ${s.broker.broker ?? '-'}, session ${s.broker.session ?? '-'}, last report ${s.broker.lastReportAt ?? 'never'}, ${s.broker.buffered} buffered, ${s.broker.dropped} dropped${s.broker.refused ? `, ${s.broker.refused} refused by the broker` : ''}${s.broker.lastError ? `, last error: ${s.broker.lastError}` : ''}` : '-'}`,
    `app:       ${s.app}`,
  ];
  return lines.join('\n') + '\n';
}
