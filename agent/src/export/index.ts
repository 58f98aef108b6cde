/**
 * Export stage: the validated payload becomes files other programs read (systemd units, login
 * shells, JSON consumers, Stratos-era scripts). All-or-nothing as far as the filesystem allows:
 * everything is checked and rendered before anything is written, and every file is staged
 * before any is renamed into place.
 */
import path from 'node:path';
import type { AgentConfig } from '../config';
import { ConfigError } from '../errors';
import type { RootedPaths } from '../paths';
import { FileTransaction, type SweepPlace } from '../io/staged-write';
import { assertExportable } from './exportable';
import { resolveGroupId } from './group';
import { renderEnvFile, renderJson, renderLaunchParams, renderShFile } from './render';

export type ExportConfig = AgentConfig['export'];
export type ExportFormat = 'env' | 'sh' | 'json';

export { assertExportable, MAX_ARG_STRLEN, MAX_EXPORT_ENV_BYTES } from './exportable';
export { omittedFromShFile, renderEnvFile, renderJson, renderLaunchParams, renderShFile } from './render';

const RENDERERS: Record<ExportFormat, (vars: ReadonlyMap<string, string>) => string> = {
  env: renderEnvFile,
  sh: renderShFile,
  json: renderJson,
};

/** One export format as text (for `cartridge-agent env --format`); refuses what writeExports refuses. */
export function renderExport(vars: ReadonlyMap<string, string>, format: ExportFormat): string {
  assertExportable(vars);
  return RENDERERS[format](vars);
}

interface PlannedFile {
  key: string;
  hostPath: string;
  data: string;
}

/** Render every configured file. Throws PayloadError before anything touches the disk. */
function planExports(vars: ReadonlyMap<string, string>, cfg: ExportConfig, paths: RootedPaths): PlannedFile[] {
  assertExportable(vars);
  const wanted: Array<[key: string, imagePath: string | null, render: (v: ReadonlyMap<string, string>) => string]> = [
    ['export.envFile', cfg.envFile, renderEnvFile],
    ['export.shFile', cfg.shFile, renderShFile],
    ['export.jsonFile', cfg.jsonFile, renderJson],
    ['export.launchParamsFile', cfg.launchParamsFile, renderLaunchParams],
  ];
  const plan: PlannedFile[] = [];
  const seen = new Map<string, string>();
  for (const [key, imagePath, render] of wanted) {
    if (imagePath === null) continue;
    const hostPath = paths.resolve(imagePath);
    const other = seen.get(hostPath);
    if (other) throw new ConfigError(key, `is the same file as ${other} (${imagePath}); each export needs its own path`);
    seen.set(hostPath, key);
    plan.push({ key, hostPath, data: render(vars) });
  }
  return plan;
}

/**
 * Stage every configured export file into `txn` and return their host paths; they replace the
 * previous files only when the transaction commits. A refused payload (PayloadError) or bad
 * group (ConfigError naming export.group) stages nothing; a failure while staging (WriteError,
 * stage "exports") leaves every previous file intact.
 */
export async function stageExports(
  txn: FileTransaction,
  vars: ReadonlyMap<string, string>,
  cfg: ExportConfig,
  paths: RootedPaths,
  opts: { gid?: number } = {},
): Promise<string[]> {
  const plan = planExports(vars, cfg, paths);
  const gid = opts.gid ?? (cfg.group === null ? undefined : await resolveGroupId(paths, cfg.group));
  const mode = parseInt(cfg.mode, 8);
  for (const file of plan) await txn.stage(file.hostPath, file.data, { mode, gid, stage: 'exports' });
  return plan.map((f) => f.hostPath);
}

/** The exports on their own, staged and committed together (tests, tools). */
export async function writeExports(
  vars: ReadonlyMap<string, string>,
  cfg: ExportConfig,
  paths: RootedPaths,
  opts: { gid?: number } = {},
): Promise<string[]> {
  const txn = new FileTransaction();
  try {
    const written = await stageExports(txn, vars, cfg, paths, opts);
    await txn.commit();
    return written;
  } finally {
    await txn.discard();
  }
}

/** Where the exports' staged temp files may be left (swept under the run lock; the directories may be shared). */
export function exportSweepPlaces(cfg: ExportConfig, paths: RootedPaths): SweepPlace[] {
  return [cfg.envFile, cfg.shFile, cfg.jsonFile, cfg.launchParamsFile]
    .filter((p): p is string => p !== null)
    .map((p) => ({ dir: path.dirname(paths.resolve(p)), files: [path.basename(p)] }));
}
