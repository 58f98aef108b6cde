/**
 * The I/O shell of restore-files.ts: stage the early restore's manifests and text files into a
 * FileTransaction (only what differs from the disk, so an unchanged boot costs no write and no
 * fsync), remove firewall.restore with firewall.json, and prune text files no manifest names.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_CONFIG_PATH, parseConfig, readConfigFile } from '../config';
import { ConfigError } from '../errors';
import type { RootedPaths } from '../paths';
import { FileTransaction } from '../io/staged-write';
import { BASELINE_RESTORE_FILE, baselineRestoreFiles, referencedTexts, RESTORE_FILE, RULES_DIR, type RestoreFiles } from './restore-files';

const WRITE = { mode: 0o600, stage: 'firewall record' } as const;

async function current(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null; // absent or unreadable: write it
  }
}

/** Stage `files` (texts first, the manifest last) where they differ from what is on disk. */
export async function stageRestoreFiles(txn: FileTransaction, stateDirHost: string, manifestName: string, files: RestoreFiles): Promise<void> {
  for (const [name, text] of files.texts) {
    const target = path.join(stateDirHost, RULES_DIR, name);
    if ((await current(target)) !== text) await txn.stage(target, text, WRITE);
  }
  const target = path.join(stateDirHost, manifestName);
  if ((await current(target)) !== files.manifest) await txn.stage(target, files.manifest, WRITE);
}

/**
 * The baseline manifest for the image's config file (`/etc/cartridge-agent/agent.json` under
 * the root) read as the early unit's boot reads it: no --root defaults, no environment.
 * Throws a ConfigError naming the file when it is not a valid config.
 */
export function baselineRestoreOf(paths: RootedPaths): RestoreFiles {
  const file = paths.resolve(DEFAULT_CONFIG_PATH);
  const read = readConfigFile(file, false);
  const bytes = read?.bytes ?? null;
  const raw = read?.raw ?? {};
  const config = parseConfig(raw, file);
  const sha256 = bytes === null ? null : createHash('sha256').update(bytes).digest('hex');
  return baselineRestoreFiles(config.firewall, { path: DEFAULT_CONFIG_PATH, sha256 });
}

/** The same, null when the config file is not valid (nothing can be decided for it). */
export function baselineRestoreFor(paths: RootedPaths): RestoreFiles | null {
  try {
    return baselineRestoreOf(paths);
  } catch (err) {
    if (err instanceof ConfigError) return null;
    throw err;
  }
}

/** Stage the baseline manifest (when the config file is valid; else the stale one goes). */
export async function stageBaselineRestore(txn: FileTransaction, stateDirHost: string, paths: RootedPaths): Promise<void> {
  const files = baselineRestoreFor(paths);
  if (files) await stageRestoreFiles(txn, stateDirHost, BASELINE_RESTORE_FILE, files);
  else await unlink(path.join(stateDirHost, BASELINE_RESTORE_FILE)).catch(() => undefined);
}

/** Remove firewall.restore (before firewall.json: the script never restores what was removed). */
export async function removeRecordedRestore(stateDirHost: string): Promise<void> {
  try {
    await unlink(path.join(stateDirHost, RESTORE_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** After a commit: delete the text files neither manifest names. Best effort; returns what went. */
export async function pruneRestoreTexts(stateDirHost: string): Promise<string[]> {
  const dir = path.join(stateDirHost, RULES_DIR);
  const keep = new Set<string>();
  for (const m of [RESTORE_FILE, BASELINE_RESTORE_FILE]) {
    for (const name of referencedTexts((await current(path.join(stateDirHost, m))) ?? '')) keep.add(name);
  }
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (keep.has(name) || !/^[0-9a-f]{64}\.(nft|ipv4|ipv6)$/.test(name)) continue;
    await unlink(path.join(dir, name)).then(() => removed.push(name), () => undefined);
  }
  return removed;
}

/**
 * `firewall baseline --write` (bake time, and the Node `firewall restore`): record the baseline
 * manifest and its texts now. Returns the host paths written (none: already current). Throws a
 * ConfigError when the image's config file is not a valid config.
 */
export async function writeBaselineRestore(stateDirHost: string, paths: RootedPaths): Promise<string[]> {
  baselineRestoreOf(paths); // a bad config file is an error here, not a silently missing record
  const txn = new FileTransaction();
  try {
    await stageBaselineRestore(txn, stateDirHost, paths);
    const written = txn.targets;
    await txn.commit();
    await pruneRestoreTexts(stateDirHost);
    return written;
  } catch (err) {
    await txn.discard();
    throw err;
  }
}
