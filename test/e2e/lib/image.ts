/**
 * The boot test's Debian image root: built once with debootstrap and cached on the machine,
 * keyed by everything that decides its content (suite, variant, package list, mirror), so CI
 * only pays for debootstrap (~2 min) when that list changes. Each test boots its own copy.
 *
 * The image's node is Debian's own `nodejs` package (18.x), as an image baker would use.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const IMAGE_SPEC = {
  suite: 'bookworm',
  variant: 'minbase',
  mirror: process.env.CARTRIDGE_E2E_MIRROR ?? 'http://deb.debian.org/debian',
  /** systemd as PID 1, both firewall backends, Debian's Node.js for the agent bundle. */
  include: ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'iptables', 'nftables', 'nodejs'],
} as const;

/** Where cached image roots live (outside any checkout, so CI's clean clones share them). */
export const CACHE_DIR = process.env.CARTRIDGE_E2E_CACHE ?? '/var/cache/cartridge-agent-e2e';

export function imageKey(spec = IMAGE_SPEC): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-25).join('\n');
    throw new Error(`${what} failed (${cmd} exit ${r.status ?? r.signal}):\n${tail}`);
  }
}

/**
 * The cached pristine root for IMAGE_SPEC, built when missing. Built into a temp dir and
 * renamed into place, so an interrupted build never leaves a half image under the key.
 */
export function ensureBaseImage(log: (line: string) => void = () => {}): string {
  const dir = path.join(CACHE_DIR, `debian-${IMAGE_SPEC.suite}-${imageKey()}`);
  if (existsSync(path.join(dir, 'usr/bin/node'))) return dir;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  log(`building the e2e image with debootstrap (cached afterwards in ${dir})`);
  const started = Date.now();
  run(
    'debootstrap',
    [`--variant=${IMAGE_SPEC.variant}`, `--include=${IMAGE_SPEC.include.join(',')}`, IMAGE_SPEC.suite, tmp, IMAGE_SPEC.mirror],
    'debootstrap',
  );
  writeFileSync(path.join(tmp, '.cartridge-e2e-spec.json'), JSON.stringify(IMAGE_SPEC, null, 2));
  renameSync(tmp, dir);
  log(`image built in ${Math.round((Date.now() - started) / 1000)} s`);
  // Images for older package lists are never used again: do not let them pile up.
  for (const name of readdirSync(CACHE_DIR)) {
    if (name.startsWith('debian-') && path.join(CACHE_DIR, name) !== dir) {
      log(`removing the outdated image ${name}`);
      rmSync(path.join(CACHE_DIR, name), { recursive: true, force: true });
    }
  }
  return dir;
}

/** A private copy of the base image for one instance (cp -a keeps owners, modes, links). */
export function copyImage(base: string, dest: string): void {
  rmSync(dest, { recursive: true, force: true });
  run('cp', ['-a', '--reflink=auto', base, dest], `copying the image to ${dest}`);
}
