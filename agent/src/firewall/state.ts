/**
 * `<state.dir>/firewall.json`: the last ruleset applied successfully (guard passed), with the
 * read-back the kernel reported right after. `firewall check` in another process compares
 * against it, and an early-boot unit can re-apply it before the network comes up.
 */
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { FirewallError, StateFileError } from '../errors';
import { readStateFile } from '../io/state-file';
import { FileTransaction } from '../io/staged-write';
import type { RootedPaths } from '../paths';
import { verifyRecorded } from './recorded';
import { recordedRestoreFiles, RESTORE_FILE } from './restore-files';
import { pruneRestoreTexts, removeRecordedRestore, stageBaselineRestore, stageRestoreFiles } from './restore-record';
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

const recordText = (applied: AppliedFirewall) => `${JSON.stringify(applied, null, 2)}\n`;

/** On its own (`firewall apply`): the record (and the early restore's files) are written now. */
export async function saveApplied(stateDirHost: string, applied: AppliedFirewall, paths?: RootedPaths): Promise<void> {
  const txn = new FileTransaction();
  try {
    await stageApplied(txn, stateDirHost, { record: applied, ...(paths ? { paths } : {}) });
    await txn.commit();
  } catch (err) {
    await txn.discard();
    throw new FirewallError(
      `firewall (${applied.backend}): the ruleset is applied but its record could not be saved: ${(err as Error).message}`,
      'persist',
      applied.backend,
    );
  }
  await pruneRestoreTexts(stateDirHost);
}

/**
 * In the boot transaction: the record replaces the old one only when everything commits. With
 * it go the files the early unit's sh script restores from (firewall.restore and the texts it
 * names), and — given `paths` — the baseline decision for the image's config file, each
 * staged only when it differs from what is on disk. After the commit, pruneRestoreTexts.
 */
export async function stageApplied(txn: FileTransaction, stateDirHost: string, what: { record: AppliedFirewall | null; paths?: RootedPaths }): Promise<void> {
  if (what.record) {
    await txn.stage(stateFilePath(stateDirHost), recordText(what.record), { mode: 0o600, stage: 'firewall record' });
    await stageRestoreFiles(txn, stateDirHost, RESTORE_FILE, recordedRestoreFiles(what.record));
  } else if (what.paths) {
    // A record kept as it is (the ruleset is unchanged) but without its firewall.restore (saved
    // by an agent before this one): add it, or the early unit would hand over on every boot.
    const kept = await recordWithoutRestore(stateDirHost);
    if (kept) await stageRestoreFiles(txn, stateDirHost, RESTORE_FILE, recordedRestoreFiles(kept));
  }
  if (what.paths) await stageBaselineRestore(txn, stateDirHost, what.paths);
}

async function recordWithoutRestore(stateDirHost: string): Promise<AppliedFirewall | null> {
  if (existsSync(path.join(stateDirHost, RESTORE_FILE))) return null;
  const applied = await loadApplied(stateDirHost).catch(() => null);
  if (!applied) return null;
  try {
    verifyRecorded(applied, stateFilePath(stateDirHost));
    return applied;
  } catch {
    return null; // damaged: nothing to restore from it (the early unit hands over, the agent says why)
  }
}

export { pruneRestoreTexts } from './restore-record';

const BACKENDS: readonly string[] = ['nft', 'iptables-nft', 'iptables-legacy'];

function recordProblem(v: unknown): string | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (o.version !== 1) return `not a firewall record of this agent (version ${JSON.stringify(o.version)}, expected 1)`;
  if (!BACKENDS.includes(o.backend as string)) return `backend ${JSON.stringify(o.backend)} is not one of ${BACKENDS.join(', ')}`;
  for (const field of ['digest', 'fingerprint', 'appliedAt'] as const) {
    if (typeof o[field] !== 'string') return `field "${field}" is not text`;
  }
  if (!(o.readBack === null || typeof o.readBack === 'string')) return 'field "readBack" is neither text nor null';
  if (!o.rendered || typeof o.rendered !== 'object') return 'field "rendered" is not an object';
  return null;
}

/** The saved record; null when none was saved. A damaged file is an error naming the file. */
export async function loadApplied(stateDirHost: string): Promise<AppliedFirewall | null> {
  try {
    return await readStateFile<AppliedFirewall>(stateFilePath(stateDirHost), 'the firewall record', recordProblem);
  } catch (err) {
    if (err instanceof StateFileError) throw new FirewallError(err.message, 'load state', null);
    throw err;
  }
}

/** After `firewall remove`: nothing is applied, so nothing must be re-applied at boot. */
export async function forgetApplied(stateDirHost: string): Promise<void> {
  try {
    await removeRecordedRestore(stateDirHost);
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
