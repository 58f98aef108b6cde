/**
 * The three images of the boot bench (bench/boot.ts), all Debian 12 from the boot test's
 * debootstrap code (test/e2e/lib/image.ts), and what each boot of them is given:
 *   bare        the boot test's base image as it is: the reference boot
 *   agent       the base image with the agent baked in by agent/bootstrap/bake.sh (its default
 *               config, firewall enforce as deployed); a NoCloud seed whose user data is the
 *               inline dotenv payload of VARIABLES
 *   cloud-init  the base package list plus Debian's `cloud-init` (debootstrap --include, cached
 *               like the base); a NoCloud seed whose user data is #cloud-config: write_files
 *               of the same VARIABLES into a profile.d file, runcmd touching EFFECT_MARKER
 * The agent image is baked from this checkout's bundle at every bench run (the bundle changes
 * with every build); the two debootstrap images are cached in CACHE_DIR keyed by their lists.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { copyImage, ensureBaseImage, ensureImage, IMAGE_SPEC, type CachedImage } from '../../test/e2e/lib/image';
import { bakeAgent, writeNoCloudSeed } from '../../test/e2e/lib/instance';
import { writeIn } from '../../test/fixtures/packaging/image';

export type ImageKind = 'bare' | 'agent' | 'cloud-init';
export const KINDS: readonly ImageKind[] = ['bare', 'agent', 'cloud-init'];

const CLOUD_INIT_IMAGE: CachedImage = {
  flavor: 'bench-cloudinit',
  // python3-cffi-backend: debootstrap's resolver does not follow virtual packages, and
  // python3-cryptography (cloud-init → python3-oauthlib) depends on the virtual
  // python3-cffi-backend-api-min/max it provides.
  spec: { ...IMAGE_SPEC, include: [...IMAGE_SPEC.include, 'cloud-init', 'python3-cffi-backend'] },
  marker: 'usr/bin/cloud-init',
};

/** The profile.d file each image's boot work writes (the agent's: its export.shFile default). */
export const PROFILE_FILE: Record<Exclude<ImageKind, 'bare'>, string> = {
  agent: '/etc/profile.d/cartridge-agent.sh',
  'cloud-init': '/etc/profile.d/bench-vars.sh',
};
/** Touched by cloud-init's runcmd: its "effect complete". */
export const EFFECT_MARKER = '/var/lib/bench-effect-complete';

/** The 20 variables both boot works put in place: names and values any shell takes as they are. */
export const VARIABLES: ReadonlyArray<readonly [string, string]> = [
  ['CLUSTER_ID', 'bench'],
  ['MEMBER_ID', 'bench-member-1'],
  ['SERVICE_NAME', 'php'],
  ['PORTS', '8080'],
  ['DB_URL', 'mysql://db.internal:3306/shop?ssl=true'],
  ['CACHE_URL', 'redis://cache.internal:6379/0'],
  ['APP_ENV', 'production'],
  ['APP_REGION', 'eu-central'],
  ['LOG_LEVEL', 'info'],
  ...Array.from({ length: 11 }, (_, i) => [`APP_SETTING_${String(i + 1).padStart(2, '0')}`, `value-${i + 1}-abcdefghijklmnop`] as const),
];

/** The agent's user data: the payload itself, inline (dotenv), so no controller is involved. */
export function agentUserData(): string {
  return VARIABLES.map(([k, v]) => `${k}=${v}\n`).join('');
}

/** cloud-init's user data doing the same job: the variables into a profile.d file, then runcmd. */
export function cloudInitUserData(): string {
  const content = VARIABLES.map(([k, v]) => `      export ${k}='${v}'\n`).join('');
  return `#cloud-config
write_files:
  - path: ${PROFILE_FILE['cloud-init']}
    permissions: '0644'
    content: |
${content}runcmd:
  - [ touch, ${EFFECT_MARKER} ]
`;
}

/**
 * cloud-init's image config, as an image baker sets it: only the NoCloud datasource (ds-identify
 * would otherwise probe for every cloud), no network configuration (the agent configures no
 * network either, and the container has no renderer for it), no locale (minbase has no locale
 * set up: cc_locale would run locale-gen on the first boot, then fail the config stage).
 */
const CLOUD_CFG = `datasource_list: [ NoCloud, None ]
network: {config: disabled}
locale: false
`;

/** No console login prompt in any image (the boot test does the same). */
function noGetty(root: string): void {
  mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
  symlinkSync('/dev/null', path.join(root, 'etc/systemd/system/console-getty.service'));
}

/**
 * The image of each kind for this run, under `workDir`: the cached roots built when missing
 * (the cloud-init one takes a few minutes once per machine), copied and prepared.
 */
export function prepareImages(workDir: string, log: (line: string) => void): Record<ImageKind, string> {
  const base = ensureBaseImage(log);
  const cloudInit = ensureImage(CLOUD_INIT_IMAGE, log);
  const out = {} as Record<ImageKind, string>;
  for (const kind of KINDS) {
    const root = path.join(workDir, `image-${kind}`);
    copyImage(kind === 'cloud-init' ? cloudInit : base, root);
    noGetty(root);
    if (kind === 'agent') bakeAgent(root, null, workDir);
    if (kind === 'cloud-init') writeIn(root, '/etc/cloud/cloud.cfg.d/99-bench.cfg', CLOUD_CFG);
    out[kind] = root;
  }
  return out;
}

/** A fresh instance of `image` at `root` (a first boot): a copy plus its seed. */
export function prepareInstanceRoot(kind: ImageKind, image: string, root: string, instanceId: string): void {
  copyImage(image, root);
  if (kind === 'agent') writeNoCloudSeed(root, agentUserData(), instanceId);
  if (kind === 'cloud-init') writeNoCloudSeed(root, cloudInitUserData(), instanceId);
}
