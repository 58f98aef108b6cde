/**
 * Crash-safe file replacement: a reader (or a reboot) sees the complete old file or the
 * complete new one, never a torn mix. A file is first *staged* (written in full to a hidden
 * temp file beside its target, its fsync started) and later *committed* (once its fsync is
 * done, renamed over the target), so several files can be staged and only renamed once every
 * one of them is on disk — see FileTransaction. The fsyncs of a transaction run side by side
 * and beside whatever the caller does between staging and commit (the boot work applies the
 * firewall there), and the directories are fsynced once each, side by side. Every failure is
 * a WriteError naming the caller's stage and the path.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { WriteError } from '../errors';

export interface WriteOptions {
  /** Final permission bits, e.g. 0o640. The temp file has them (or fewer) from creation on. */
  mode: number;
  /** Group to own the file; undefined keeps the writer's group. */
  gid?: number;
  /** The part of the work this write belongs to, named in errors ("exports", "cache" …). */
  stage: string;
}

export interface StagedFile {
  readonly target: string;
  readonly tempPath: string;
  readonly stage: string;
  /** Resolves once the temp file is on disk; a WriteError naming the target when it is not. */
  durable(): Promise<void>;
  /** Rename the temp file over the target (call after durable()). Does not fsync the directory (see fsyncDir). */
  commit(): Promise<void>;
  /** Remove the temp file; never throws. */
  discard(): Promise<void>;
}

/**
 * Temp files are hidden and end in `.tmp-<12 hex>`, so no reader of the agent's directories
 * (profile.d's `*.sh` glob, EnvironmentFile=, a JSON loader) can mistake one for a real file,
 * and sweepStagedTemps can tell them from everything else.
 */
const STAGED_TEMP = /^\..+\.tmp-[0-9a-f]{12}$/;

function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${randomBytes(6).toString('hex')}`);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Make renames in `dir` durable (a rename lives in the directory's data). */
export async function fsyncDir(dir: string, stage: string): Promise<void> {
  try {
    const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new WriteError(stage, dir, `cannot fsync the directory: ${describe(err)}`);
  }
}

/**
 * Where stale temp files may be: a directory the agent owns (every staged temp in it is
 * ours), or a shared one such as /etc/profile.d, where only the temps of our own `files`
 * (base names) are touched.
 */
export interface SweepPlace {
  dir: string;
  files?: readonly string[];
}

/**
 * Remove the staged temp files a killed earlier run left (only names this module makes).
 * Call it only while holding the run lock: another run's staged files would go too.
 * Returns the paths removed.
 */
export async function sweepStagedTemps(places: Iterable<SweepPlace>, stage = 'cleanup'): Promise<string[]> {
  const removed: string[] = [];
  for (const { dir, files } of places) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new WriteError(stage, dir, `cannot list the directory to remove stale temp files: ${describe(err)}`);
    }
    const ours = (name: string) => STAGED_TEMP.test(name) && (!files || files.some((f) => name.startsWith(`.${f}.tmp-`) && name.length === f.length + 18));
    for (const name of names.filter(ours)) {
      const stale = path.join(dir, name);
      if (removed.includes(stale)) continue;
      try {
        await unlink(stale);
        removed.push(stale);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new WriteError(stage, stale, `cannot remove this stale temp file: ${describe(err)}`);
        }
      }
    }
  }
  return removed;
}

/**
 * Write `data` to a new temp file beside `target` (parent created 0755 if missing), with
 * O_EXCL so nothing pre-existing is followed or reused, restricted to `mode` from its first
 * moment, and chowned to `gid`; its fsync is started, durable() waits for it. The target
 * itself is untouched until commit(). A full disk fails here (the write), not in durable().
 */
export async function stageFile(target: string, data: string | Buffer, opts: WriteOptions): Promise<StagedFile> {
  const { stage } = opts;
  const dir = path.dirname(target);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new WriteError(stage, target, `cannot create the directory ${dir}: ${describe(err)}`);
  }
  const tempPath = tempPathFor(target);
  const discard = async (): Promise<void> => {
    await unlink(tempPath).catch(() => undefined);
  };

  const failed = (err: unknown) => new WriteError(stage, target, `cannot write the temp file ${tempPath}: ${describe(err)}`);
  let created = false;
  let synced: Promise<unknown>;
  try {
    // The creation mode is filtered by the umask, so the file starts with at most `mode`;
    // chmod then sets exactly `mode` before any data is written.
    const fh = await open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode & 0o777);
    created = true;
    try {
      await fh.chmod(opts.mode & 0o777);
      if (opts.gid !== undefined) await fh.chown(-1, opts.gid);
      await fh.writeFile(data);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    // Not awaited here: settles to null or the error (never an unhandled rejection).
    synced = fh.sync().then(
      () => fh.close().then(() => null),
      (err: unknown) => fh.close().then(() => err, () => err),
    );
  } catch (err) {
    if (created) await discard();
    throw failed(err);
  }

  return {
    target,
    tempPath,
    stage,
    async durable() {
      const err = await synced;
      if (err !== null) throw failed(err);
    },
    async discard() {
      await synced;
      await discard();
    },
    async commit() {
      try {
        await rename(tempPath, target);
      } catch (err) {
        await discard();
        throw new WriteError(stage, target, `cannot rename ${tempPath} into place: ${describe(err)}`);
      }
    },
  };
}

/** Replace `target` atomically and durably; on failure the previous file is left as it was. */
export async function writeFileAtomic(target: string, data: string | Buffer, opts: WriteOptions): Promise<void> {
  const staged = await stageFile(target, data, opts);
  try {
    await staged.durable();
  } catch (err) {
    await staged.discard();
    throw err;
  }
  await staged.commit();
  await fsyncDir(path.dirname(target), opts.stage);
}

/**
 * The same for code that must not wait (the MQTT session counter is read and bumped inside a
 * synchronous connect path). Same temp naming, so sweepStagedTemps cleans up after it too.
 */
export function writeFileAtomicSync(target: string, data: string, opts: WriteOptions): void {
  const tempPath = tempPathFor(target);
  try {
    mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    const fd = openSync(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode & 0o777);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tempPath, target);
  } catch (err) {
    try {
      unlinkSync(tempPath);
    } catch {
      // never created, or already renamed
    }
    throw new WriteError(opts.stage, target, describe(err));
  }
}

/**
 * Several files that must change together: stage them all (any failure discards every one,
 * nothing changed), then commit waits until every staged file is on disk (their fsyncs ran
 * side by side since staging; one failing discards them all, nothing changed), renames them in
 * order and fsyncs each directory once, the directories side by side. The data is on disk
 * before the first rename; a full disk fails the staging (the write), not the commit. Should a
 * rename still fail (a broken file system), the files not yet renamed are discarded and the
 * error names the file that failed.
 */
export class FileTransaction {
  private readonly staged: StagedFile[] = [];

  async stage(target: string, data: string | Buffer, opts: WriteOptions): Promise<void> {
    if (this.staged.some((s) => s.target === target)) throw new Error(`${target} is staged twice in one transaction`);
    this.staged.push(await stageFile(target, data, opts));
  }

  get targets(): string[] {
    return this.staged.map((s) => s.target);
  }

  async commit(): Promise<void> {
    const files = this.staged.splice(0);
    const durable = await Promise.allSettled(files.map((s) => s.durable()));
    const notOnDisk = durable.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (notOnDisk) {
      await Promise.all(files.map((s) => s.discard()));
      throw notOnDisk.reason;
    }
    for (const [i, s] of files.entries()) {
      try {
        await s.commit();
      } catch (err) {
        await Promise.all(files.slice(i + 1).map((rest) => rest.discard()));
        throw err;
      }
    }
    const dirs = new Map<string, string>();
    for (const s of files) dirs.set(path.dirname(s.target), s.stage);
    await Promise.all([...dirs].map(([dir, stage]) => fsyncDir(dir, stage)));
  }

  /** Remove every staged temp file; the targets stay as they were. Never throws. */
  async discard(): Promise<void> {
    await Promise.all(this.staged.splice(0).map((s) => s.discard()));
  }
}
