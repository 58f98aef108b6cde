/**
 * Reading an OpenStack config drive tree (`openstack/latest/meta_data.json`, `user_data`,
 * `content/NNNN`), wherever it is: a seed directory in the image or a block device labelled
 * config-2. Shared by the configdrive and personality sources; the metadata-service source
 * reuses the meta_data.json parser (the same document served over HTTP).
 */
import { SourceError } from '../errors';
import type { SourceName } from '../config';
import type { SourceContext } from './types';
import { MountError, findDevicesByLabel, withMountedReadOnly } from './blockdev';
import { checkInstanceId, readInsideTree } from './common';

/** meta_data.json is small (nova writes a few KiB); this only bounds a hostile file. */
const MAX_META_DATA_BYTES = 1024 * 1024;
export const META_DATA_PATH = 'openstack/latest/meta_data.json';
export const USER_DATA_PATH = 'openstack/latest/user_data';

export interface InjectedFile {
  /** Path in the instance the file was meant for, e.g. /etc/cartridge-agent/payload-url. */
  path: string;
  /** Relative to `openstack/`, e.g. /content/0000. */
  contentPath: string;
}

export interface ConfigDriveMetaData {
  uuid: string;
  files: InjectedFile[];
}

/** A config drive that was found: `dir` is where it is readable now, `label` how to name it in messages. */
export interface ConfigDriveTree {
  dir: string;
  label: string;
}

/** Parse meta_data.json. Pure; `where` names the file in errors. */
export function parseConfigDriveMetaData(text: string, source: SourceName, where: string): ConfigDriveMetaData {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SourceError(source, where, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new SourceError(source, where, 'is not a JSON object');
  const obj = doc as Record<string, unknown>;
  // Nova always writes uuid; without it we could not tell this instance's cache from another's.
  if (typeof obj.uuid !== 'string') throw new SourceError(source, where, 'has no "uuid" string');
  const uuid = checkInstanceId(obj.uuid, source, where);
  const files: InjectedFile[] = [];
  if (obj.files !== undefined) {
    if (!Array.isArray(obj.files)) throw new SourceError(source, where, '"files" is not an array');
    obj.files.forEach((f: unknown, i) => {
      const entry = f as Record<string, unknown> | null;
      if (typeof entry?.path !== 'string' || typeof entry.content_path !== 'string') {
        throw new SourceError(source, where, `files[${i}] needs string "path" and "content_path"`);
      }
      files.push({ path: entry.path, contentPath: entry.content_path });
    });
  }
  return { uuid, files };
}

export async function readConfigDriveMetaData(tree: ConfigDriveTree, source: SourceName): Promise<ConfigDriveMetaData | null> {
  const where = `${tree.label}/${META_DATA_PATH}`;
  const bytes = await readInsideTree(tree.dir, META_DATA_PATH, MAX_META_DATA_BYTES, source, where);
  return bytes === null ? null : parseConfigDriveMetaData(bytes.toString('utf8'), source, where);
}

/** Read a file below `openstack/` (content_path style, e.g. /content/0000); null when missing. */
export function readConfigDriveFile(tree: ConfigDriveTree, rel: string, maxBytes: number, source: SourceName): Promise<Buffer | null> {
  const inTree = `openstack/${rel.replace(/^\/+/, '')}`;
  return readInsideTree(tree.dir, inTree, maxBytes, source, `${tree.label}/${inTree}`);
}

export type ConfigDriveOutcome<T> = { found: true; value: T } | { found: false; reason: string };

/**
 * Find a config drive and run `use` on it while it is readable. Seed dirs first (cheap, and
 * what image bakers and tests use), then block devices by label when device scanning is on.
 * The device is unmounted before this returns.
 */
export async function withConfigDrive<T>(
  ctx: SourceContext,
  source: SourceName,
  use: (tree: ConfigDriveTree, meta: ConfigDriveMetaData) => Promise<T>,
): Promise<ConfigDriveOutcome<T>> {
  const cfg = ctx.config.sources.configdrive;
  for (const seed of cfg.seedDirs) {
    const tree = { dir: ctx.paths.resolve(seed), label: seed };
    const meta = await readConfigDriveMetaData(tree, source);
    if (meta) return { found: true, value: await use(tree, meta) };
  }
  const noSeed = cfg.seedDirs.length
    ? `no ${META_DATA_PATH} in ${cfg.seedDirs.join(' or ')}`
    : 'no config drive seed dirs configured';
  if (!ctx.config.sources.scanDevices) return { found: false, reason: `${noSeed}; device scan off (sources.scanDevices)` };
  if (cfg.labels.length === 0) return { found: false, reason: `${noSeed}; no config drive labels configured` };
  const search = await findDevicesByLabel(cfg.labels);
  if ('reason' in search) return { found: false, reason: `${noSeed}; ${search.reason}` };
  const dev = search.devices[0];
  if (!dev) return { found: false, reason: noSeed };
  const label = `${dev.device} (LABEL=${dev.label})`;
  try {
    return await withMountedReadOnly(dev, ctx.log, async (dir) => {
      const tree = { dir, label };
      const meta = await readConfigDriveMetaData(tree, source);
      if (!meta) throw new SourceError(source, label, `labelled like a config drive but has no ${META_DATA_PATH}`);
      return { found: true as const, value: await use(tree, meta) };
    });
  } catch (err) {
    if (err instanceof MountError) throw new SourceError(source, label, err.message);
    throw err;
  }
}
