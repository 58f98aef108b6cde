/**
 * Crash-safe file replacement: a reader (or a reboot) sees the complete old file or the
 * complete new one, never a torn mix. Split in stage / commit so several files can be staged
 * first and only renamed once all of them are on disk.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ExportError } from '../errors';

export interface AtomicWriteOptions {
  /** Final permission bits, e.g. 0o640. The temp file has them (or fewer) from creation on. */
  mode: number;
  /** Group to own the file; undefined keeps the writer's group. */
  gid?: number;
}

export interface StagedFile {
  readonly target: string;
  readonly tempPath: string;
  /** Rename the temp file over the target. Does not fsync the directory (see fsyncDir). */
  commit(): Promise<void>;
  /** Remove the temp file; never throws. */
  discard(): Promise<void>;
}

const TEMP_SUFFIX = /^[0-9a-f]{12}$/;

/**
 * Temp files are hidden and end in `.tmp-<hex>`, so no reader of the export directories
 * (profile.d's `*.sh` glob, EnvironmentFile=, a JSON loader) can mistake one for an export.
 */
function tempPrefix(target: string): string {
  return `.${path.basename(target)}.tmp-`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function fsyncPath(p: string, flags: number): Promise<void> {
  const fh = await open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Make a rename in `dir` durable (the rename itself lives in the directory's data). */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    await fsyncPath(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    throw new ExportError(dir, `cannot fsync directory: ${describe(err)}`);
  }
}

/**
 * Remove temp files a killed earlier run left next to `target`. Only names this module makes
 * are touched. Returns the paths removed.
 */
export async function removeStaleTemps(target: string): Promise<string[]> {
  const dir = path.dirname(target);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ExportError(target, `cannot list ${dir}: ${describe(err)}`);
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !TEMP_SUFFIX.test(name.slice(prefix.length))) continue;
    const stale = path.join(dir, name);
    try {
      await unlink(stale);
      removed.push(stale);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ExportError(target, `cannot remove stale temp file ${stale}: ${describe(err)}`);
      }
    }
  }
  return removed;
}

/**
 * Write `data` to a new temp file beside `target` (parent created 0755 if missing), with
 * O_EXCL so nothing pre-existing is followed or reused, restricted to `mode` from its first
 * moment, fsynced, and chowned to `gid`. The target itself is untouched until commit().
 */
export async function stageFile(target: string, data: string | Buffer, opts: AtomicWriteOptions): Promise<StagedFile> {
  const dir = path.dirname(target);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new ExportError(target, `cannot create directory ${dir}: ${describe(err)}`);
  }
  const tempPath = path.join(dir, `${tempPrefix(target)}${randomBytes(6).toString('hex')}`);
  const discard = async (): Promise<void> => {
    await unlink(tempPath).catch(() => undefined);
  };

  let created = false;
  try {
    // The creation mode is filtered by the umask, so the file starts with at most `mode`;
    // chmod then sets exactly `mode` before any data is written.
    const fh = await open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode & 0o777);
    created = true;
    try {
      await fh.chmod(opts.mode & 0o777);
      if (opts.gid !== undefined) await fh.chown(-1, opts.gid);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (created) await discard();
    throw new ExportError(target, `cannot write temp file ${tempPath}: ${describe(err)}`);
  }

  return {
    target,
    tempPath,
    discard,
    async commit() {
      try {
        await rename(tempPath, target);
      } catch (err) {
        await discard();
        throw new ExportError(target, `cannot rename ${tempPath} into place: ${describe(err)}`);
      }
    },
  };
}

/** Replace `target` atomically and durably; on failure the previous file is left as it was. */
export async function writeFileAtomic(target: string, data: string | Buffer, opts: AtomicWriteOptions): Promise<void> {
  const staged = await stageFile(target, data, opts);
  await staged.commit();
  await fsyncDir(path.dirname(target));
}
