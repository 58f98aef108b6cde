/**
 * Seed media on block devices (config-2, cidata): find them by filesystem label with blkid,
 * mount them read-only into a private temporary directory, read, and always unmount.
 * Device paths are host paths (/dev/…): --root does not apply to them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log';

/** Filesystems seed media use (cloud-init accepts the same two). Anything else with our label is ignored. */
export const SEED_FS_TYPES = ['iso9660', 'vfat'] as const;

export interface LabelledDevice {
  device: string;
  label: string;
  type: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started at all (e.g. ENOENT: not installed). */
  spawnError?: string;
}

/** Run a command without a shell; never rejects. */
export function runCommand(cmd: string, args: string[], timeoutMs = 10_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
      if (typeof e.code === 'string') return resolve({ code: -1, stdout, stderr, spawnError: e.code });
      if (e.killed) return resolve({ code: -1, stdout, stderr, spawnError: `timed out after ${timeoutMs} ms` });
      resolve({ code: typeof e.code === 'number' ? e.code : -1, stdout, stderr });
    });
  });
}

/**
 * Parse `blkid -o export` output: blocks of KEY=VALUE lines separated by blank lines, one per
 * device. Values may be shell-escaped (`\ ` for a space); we only need the simple keys.
 */
export function parseBlkidExport(text: string): LabelledDevice[] {
  const out: LabelledDevice[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) fields.set(m[1] as string, (m[2] as string).replace(/\\(.)/g, '$1'));
    }
    const device = fields.get('DEVNAME');
    if (device) out.push({ device, label: fields.get('LABEL') ?? '', type: fields.get('TYPE') ?? '' });
  }
  return out;
}

export type DeviceSearch = { devices: LabelledDevice[] } | { reason: string };

/**
 * Devices whose label is one of `labels` (exact match, in label order) and whose filesystem is
 * a seed filesystem. `-c /dev/null` bypasses blkid's cache so a just-attached device is seen.
 */
export async function findDevicesByLabel(labels: readonly string[]): Promise<DeviceSearch> {
  const devices: LabelledDevice[] = [];
  const ignored: string[] = [];
  for (const label of labels) {
    const r = await runCommand('blkid', ['-c', '/dev/null', '-o', 'export', '-t', `LABEL=${label}`]);
    if (r.spawnError) return { reason: `cannot run blkid (${r.spawnError})` };
    // Exit status 2: no device matched.
    if (r.code === 2) continue;
    if (r.code !== 0) return { reason: `blkid failed (exit ${r.code}): ${r.stderr.trim()}` };
    for (const d of parseBlkidExport(r.stdout)) {
      if (d.label !== label || devices.some((x) => x.device === d.device)) continue;
      if ((SEED_FS_TYPES as readonly string[]).includes(d.type)) devices.push(d);
      else ignored.push(`${d.device} (${d.type || 'unknown type'})`);
    }
  }
  if (devices.length > 0) return { devices };
  const what = `no block device labelled ${labels.join(' or ')}`;
  return { reason: ignored.length ? `${what} with an iso9660/vfat filesystem (ignored ${ignored.join(', ')})` : what };
}

export class MountError extends Error {}

/**
 * Mount `dev` read-only (nosuid, nodev, noexec) on a fresh temporary directory, run `use`,
 * then unmount and remove the directory whatever happened. If the unmount fails the
 * directory is left (removing a mount point is impossible) and the failure is logged.
 */
export async function withMountedReadOnly<T>(dev: LabelledDevice, log: Logger, use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cartridge-agent-seed-'));
  let mounted = false;
  try {
    const m = await runCommand('mount', ['-t', dev.type, '-o', 'ro,nosuid,nodev,noexec', dev.device, dir]);
    if (m.code !== 0) {
      throw new MountError(`cannot mount ${dev.device} read-only: ${m.spawnError ?? (m.stderr.trim() || `exit ${m.code}`)}`);
    }
    mounted = true;
    return await use(dir);
  } finally {
    if (mounted) {
      const u = await runCommand('umount', [dir]);
      if (u.code !== 0) {
        log.warn({ device: dev.device, dir, stderr: u.stderr.trim() }, 'cannot unmount seed device; trying a lazy unmount');
        const lazy = await runCommand('umount', ['-l', dir]);
        mounted = lazy.code !== 0;
      } else {
        mounted = false;
      }
    }
    if (!mounted) await rmdir(dir).catch((err) => log.warn({ dir, err: String(err) }, 'cannot remove temporary mount point'));
  }
}
