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

export function imageKey(spec: ImageSpec = IMAGE_SPEC): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-25).join('\n');
    throw new Error(`${what} failed (${cmd} exit ${r.status ?? r.signal}):\n${tail}`);
  }
}

export interface ImageSpec {
  suite: string;
  variant: string;
  mirror: string;
  include: readonly string[];
}

export interface CachedImage {
  /** Directory name prefix in CACHE_DIR; other images with this prefix are outdated. */
  flavor: string;
  spec: ImageSpec;
  /** A file (in-image path, no leading /) whose presence says the image is complete. */
  marker: string;
}

const BASE_IMAGE: CachedImage = { flavor: 'debian', spec: IMAGE_SPEC, marker: 'usr/bin/node' };

/** The cached pristine root for IMAGE_SPEC, built when missing (see ensureImage). */
export function ensureBaseImage(log: (line: string) => void = () => {}): string {
  return ensureImage(BASE_IMAGE, log);
}

/**
 * The cached root for `image`, built with debootstrap when missing. Built into a temp dir and
 * renamed into place, so an interrupted build never leaves a half image under the key. Other
 * images of the same flavor (older package lists) are removed.
 */
export function ensureImage(image: CachedImage, log: (line: string) => void = () => {}): string {
  const { spec, flavor } = image;
  const prefix = `${flavor}-${spec.suite}-`;
  const dir = path.join(CACHE_DIR, `${prefix}${imageKey(spec)}`);
  if (existsSync(path.join(dir, image.marker))) return dir;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  log(`building the ${flavor} image with debootstrap (cached afterwards in ${dir})`);
  const started = Date.now();
  try {
    run(
      'debootstrap',
      [`--variant=${spec.variant}`, `--include=${spec.include.join(',')}`, spec.suite, tmp, spec.mirror],
      'debootstrap',
    );
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  writeFileSync(path.join(tmp, '.cartridge-e2e-spec.json'), JSON.stringify(spec, null, 2));
  renameSync(tmp, dir);
  log(`image built in ${Math.round((Date.now() - started) / 1000)} s`);
  // Images for older package lists are never used again: do not let them pile up.
  for (const name of readdirSync(CACHE_DIR)) {
    if (name.startsWith(prefix) && path.join(CACHE_DIR, name) !== dir) {
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
