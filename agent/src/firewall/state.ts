/**
 * `<state.dir>/firewall.json`: the last ruleset applied successfully (guard passed), with the
 * read-back the kernel reported right after. `firewall check` in another process compares
 * against it, and an early-boot unit can re-apply it before the network comes up.
 */
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { FirewallError } from '../errors';
import { writeFileAtomic } from '../export/atomic-write';
import type { Backend, FirewallState, RenderedRuleset } from './types';

export const STATE_FILE = 'firewall.json';

export interface AppliedFirewall {
  version: 1;
  backend: Backend;
  digest: string;
  ruleCount: number;
  rendered: RenderedRuleset;
  /** Normalised read-back right after apply (null: nothing of ours, which never happens after apply). */
  readBack: string | null;
  fingerprint: string;
  appliedAt: string;
}

export function stateFilePath(stateDirHost: string): string {
  return path.join(stateDirHost, STATE_FILE);
}

export async function saveApplied(stateDirHost: string, applied: AppliedFirewall): Promise<void> {
  try {
    await writeFileAtomic(stateFilePath(stateDirHost), `${JSON.stringify(applied, null, 2)}\n`, { mode: 0o600 });
  } catch (err) {
    throw new FirewallError(
      `firewall (${applied.backend}): the ruleset is applied but its record could not be saved: ${(err as Error).message}`,
      'persist',
      applied.backend,
    );
  }
}

const BACKENDS: readonly string[] = ['nft', 'iptables-nft', 'iptables-legacy'];

function isApplied(v: unknown): v is AppliedFirewall {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return (
    o.version === 1 &&
    BACKENDS.includes(o.backend as string) &&
    typeof o.digest === 'string' &&
    typeof o.fingerprint === 'string' &&
    typeof o.appliedAt === 'string' &&
    (o.readBack === null || typeof o.readBack === 'string') &&
    !!o.rendered &&
    typeof o.rendered === 'object'
  );
}

/** The saved record; null when none was saved. A damaged file is an error naming the file. */
export async function loadApplied(stateDirHost: string): Promise<AppliedFirewall | null> {
  const file = stateFilePath(stateDirHost);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new FirewallError(`cannot read ${file}: ${(err as Error).message}`, 'load state', null);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new FirewallError(`${file} is not valid JSON: ${(err as Error).message}`, 'load state', null);
  }
  if (!isApplied(parsed)) throw new FirewallError(`${file} is not a firewall record of this agent (version 1)`, 'load state', null);
  return parsed;
}

/** After `firewall remove`: nothing is applied, so nothing must be re-applied at boot. */
export async function forgetApplied(stateDirHost: string): Promise<void> {
  try {
    await unlink(stateFilePath(stateDirHost));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new FirewallError(`cannot remove ${stateFilePath(stateDirHost)}: ${(err as Error).message}`, 'remove', null);
    }
  }
}

/** The status/health view of what is in force. */
export function stateFromApplied(mode: FirewallState['mode'], applied: AppliedFirewall | null): FirewallState {
  return {
    mode,
    backend: applied?.backend ?? null,
    digest: applied?.digest ?? null,
    ruleCount: applied?.ruleCount ?? 0,
    appliedAt: applied?.appliedAt ?? null,
    lastDriftAt: null,
    lastDrift: null,
    lastError: null,
  };
}
