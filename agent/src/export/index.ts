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
import { fsyncDir, removeStaleTemps, stageFile, type StagedFile } from './atomic-write';
import { assertExportable } from './exportable';
import { resolveGroupId } from './group';
import { renderEnvFile, renderJson, renderLaunchParams, renderShFile } from './render';

export type ExportConfig = AgentConfig['export'];
export type ExportFormat = 'env' | 'sh' | 'json';

export { assertExportable, MAX_ARG_STRLEN, MAX_EXPORT_ENV_BYTES } from './exportable';
export { renderEnvFile, renderJson, renderLaunchParams, renderShFile } from './render';
export { writeFileAtomic } from './atomic-write';

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
 * Write every configured export file and return the host paths written. A refused payload
 * (PayloadError) or bad group (ConfigError naming export.group) writes nothing; a failure while
 * staging (ExportError) leaves every previous file intact. Temp files left by a run that was
 * killed are removed first.
 */
export async function writeExports(
  vars: ReadonlyMap<string, string>,
  cfg: ExportConfig,
  paths: RootedPaths,
  opts: { gid?: number } = {},
): Promise<string[]> {
  const plan = planExports(vars, cfg, paths);
  const gid = opts.gid ?? (cfg.group === null ? undefined : await resolveGroupId(paths, cfg.group));
  const mode = parseInt(cfg.mode, 8);

  const staged: StagedFile[] = [];
  try {
    for (const file of plan) {
      await removeStaleTemps(file.hostPath);
      staged.push(await stageFile(file.hostPath, file.data, { mode, gid }));
    }
  } catch (err) {
    await Promise.all(staged.map((s) => s.discard()));
    throw err;
  }

  // From here on each file switches from complete-old to complete-new in one rename.
  for (const [i, s] of staged.entries()) {
    try {
      await s.commit();
    } catch (err) {
      await Promise.all(staged.slice(i + 1).map((rest) => rest.discard()));
      throw err;
    }
  }
  for (const dir of new Set(plan.map((f) => path.dirname(f.hostPath)))) await fsyncDir(dir);
  return plan.map((f) => f.hostPath);
}
