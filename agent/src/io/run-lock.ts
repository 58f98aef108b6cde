/**
 * The run lock: one cartridge-agent at a time changes a root's exports, state and firewall.
 * `once`, `firewall apply|remove|restore` hold it for their work, `run` for its whole life, so
 * a second one waits (a short holder) or is refused with a message naming the holder — it
 * never deletes another run's staged files or applies rules under another run's feet.
 *
 * Node has no flock(2), so the lock is a symlink `<state.dir>/run.lock` whose target names the
 * holder ("pid starttime bootid command"): symlink(2) creates it atomically (EEXIST when held),
 * readlink(2) reads it whole (never half-written), and it fits in the inode (no data block:
 * it can be taken on a full disk). A holder that died (kill -9, power loss) is recognised by
 * its pid no longer running with the same start time in the same boot (/proc/<pid>/stat,
 * the boot id: early boot is deterministic enough for a pid and a start time to repeat after a
 * reboot), and its lock is broken without ever removing a live holder's lock (breakStale).
 * When it was taken is the symlink's own mtime.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, lstat, mkdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { abortableSleep } from './abortable-sleep';
import { BusyError } from '../errors';

export const LOCK_FILE = 'run.lock';

export interface Holder {
  pid: number;
  /** Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  startTime: string;
  /** The first 8 hex digits of the kernel's boot id: a lock from an earlier boot is stale. */
  boot: string;
  command: string;
}

export interface LockOptions {
  /** Host path of the state dir (the lock lives there). */
  stateDir: string;
  /** What takes the lock, shown to a second run ("once", "run", "firewall apply" …). */
  command: string;
  /** How long to wait for a holder that works and exits (`run` holders are never waited for). */
  waitMs: number;
  signal?: AbortSignal;
  /** Seams for tests. */
  procRoot?: string;
  pollMs?: number;
}

export interface RunLock {
  readonly file: string;
  /** Remove the lock if it is still ours; never throws. */
  release(): Promise<void>;
}

export function processStartTime(pid: number, procRoot = '/proc'): string | null {
  try {
    const stat = readFileSync(path.join(procRoot, String(pid), 'stat'), 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields restart after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

export function bootId(procRoot = '/proc'): string {
  try {
    return readFileSync(path.join(procRoot, 'sys/kernel/random/boot_id'), 'utf8').replace(/-/g, '').slice(0, 8);
  } catch {
    return '00000000';
  }
}

export function encodeHolder(h: Holder): string {
  return `${h.pid} ${h.startTime} ${h.boot} ${h.command.replace(/\s+/g, '-')}`;
}

export function decodeHolder(text: string): Holder | null {
  const m = /^(\d+) (\d+) ([0-9a-f]{8}) (\S+)$/.exec(text);
  if (!m) return null;
  return { pid: Number(m[1]), startTime: m[2] as string, boot: m[3] as string, command: (m[4] as string).replace(/-/g, ' ') };
}

function alive(h: Holder, procRoot: string): boolean {
  return h.boot === bootId(procRoot) && processStartTime(h.pid, procRoot) === h.startTime;
}

function describeHolder(h: Holder | null, since: Date | null): string {
  const when = since ? `, since ${since.toISOString().replace(/\.\d+Z$/, 'Z')}` : '';
  return h ? `cartridge-agent ${h.command} (pid ${h.pid}${when})` : 'another cartridge-agent';
}

/** Take the lock or throw a BusyError naming who holds it. */
export async function acquireRunLock(opts: LockOptions): Promise<RunLock> {
  const procRoot = opts.procRoot ?? '/proc';
  const file = path.join(opts.stateDir, LOCK_FILE);
  const startTime = processStartTime(process.pid, procRoot);
  if (startTime === null) throw new BusyError(`cannot take the run lock ${file}: ${procRoot}/${process.pid}/stat is unreadable`, file);
  const mine = encodeHolder({ pid: process.pid, startTime, boot: bootId(procRoot), command: opts.command });
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });

  const deadline = Date.now() + opts.waitMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await symlink(mine, file);
      return {
        file,
        async release() {
          // Only our own lock: after a stale break somebody else's may sit there.
          if ((await readlink(file).catch(() => null)) === mine) await unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BusyError(`cannot take the run lock ${file}: ${(err as Error).message}`, file);
      }
    }
    const seen = await readHolder(file);
    if (seen === 'gone') continue;
    if (seen.holder === null || !alive(seen.holder, procRoot)) {
      await breakStale(file, seen.ino);
      continue;
    }
    const holder = seen.holder;
    if (holder.command === 'run') {
      throw new BusyError(
        `${describeHolder(holder, seen.since)} is running on this root (lock ${file}); it owns the exports and the firewall while it runs: ` +
          `reload it (systemctl reload cartridge-agent, i.e. SIGHUP) instead, or stop it first`,
        file,
      );
    }
    if (Date.now() >= deadline || attempt > 100_000) {
      throw new BusyError(`${describeHolder(holder, seen.since)} is still working on this root after ${opts.waitMs} ms (lock ${file}); try again when it is done`, file);
    }
    if (!(await abortableSleep(opts.pollMs ?? 50, opts.signal))) {
      throw new BusyError(`stopped while waiting for ${describeHolder(holder, seen.since)} to release the run lock ${file}`, file);
    }
  }
}

async function readHolder(file: string): Promise<'gone' | { holder: Holder | null; ino: number; since: Date | null }> {
  try {
    const st = await lstat(file);
    const text = await readlink(file);
    // Anything that is not our symlink (a regular file someone put there) counts as stale.
    return { holder: st.isSymbolicLink() ? decodeHolder(text) : null, ino: st.ino, since: st.mtime };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'gone';
    if (code === 'EINVAL') {
      const st = await lstat(file).catch(() => null);
      return st ? { holder: null, ino: st.ino, since: null } : 'gone';
    }
    throw new BusyError(`cannot read the run lock ${file}: ${(err as Error).message}`, file);
  }
}

/**
 * Remove the dead holder's lock (inode `ino`) — and only it. Moving it aside first is atomic;
 * if what was moved turns out to be a newer, live lock (another run broke the stale one and
 * took the lock in between), it is linked back before anyone can miss it.
 */
async function breakStale(file: string, ino: number): Promise<void> {
  const aside = `${file}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new BusyError(`cannot break the stale run lock ${file}: ${(err as Error).message}`, file);
  }
  const moved = await lstat(aside).catch(() => null);
  if (moved && moved.ino !== ino) await link(aside, file).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}
