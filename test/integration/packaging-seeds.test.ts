/**
 * agent/bootstrap/mount-seeds.sh (cartridge-agent-seed.service) with real loop devices: a
 * labelled filesystem is mounted read-only (ro,nosuid,nodev,noexec) under DIR/<label>, the
 * agent reads the mounted seed, a second run stacks nothing, --unmount cleans up, other
 * filesystem types and unmountable devices are handled as documented.
 *
 * This kernel has no iso9660/vfat (what real seed media use), so the devices here are ext4
 * with --fstypes ext4; the default type filter is checked to skip them. Labels are random
 * (never cidata/config-2): other tests attach real cidata media and must not see ours.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { requireCommands, requireFile, requireRoot } from '../helpers/env';
import { attachLoop, detachLoop, loopsBackedBy } from '../fixtures/sources/loop';
import { runAgent } from '../../scripts/lib/fake-instance';
import { DEFAULT_CONFIG, MOUNT_SEEDS, bundleBuilt, runSh, tempDir } from '../fixtures/packaging/image';

const TOOLS = ['dash', 'losetup', 'mkfs.ext4', 'blkid', 'mount', 'umount', 'mountpoint', 'truncate'];

/**
 * Teardown in reverse order of setup (unmount, then detach, then remove the files), whatever
 * order node:test runs its after-hooks in.
 */
function teardown(t: TestContext): (step: () => void) => void {
  const steps: Array<() => void> = [];
  t.after(() => {
    for (const step of steps.reverse()) step();
  });
  return (step) => steps.push(step);
}

function workDir(t: TestContext, later: (step: () => void) => void): string {
  const { dir, cleanup } = tempDir('ca-seeds-');
  later(cleanup);
  return dir;
}

/** An ext4 image labelled `label` holding `files`, attached read-only to a loop device (detached after the test). */
function labelledDevice(later: (step: () => void) => void, work: string, label: string, files: Record<string, string>, opts: { corrupt?: boolean } = {}): string {
  const content = path.join(work, `${label}-content`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(content, name)), { recursive: true });
    writeFileSync(path.join(content, name), text);
  }
  mkdirSync(content, { recursive: true });
  const image = path.join(work, `${label}.img`);
  execFileSync('truncate', ['-s', '8M', image]);
  execFileSync('mkfs.ext4', ['-q', '-b', '4096', '-L', label, '-d', content, image]);
  // Zeroed group descriptors: blkid still sees an ext4 with our label, mount(2) refuses it.
  if (opts.corrupt) execFileSync('dd', ['if=/dev/zero', `of=${image}`, 'bs=4096', 'seek=1', 'count=1', 'conv=notrunc', 'status=none']);
  const device = attachLoop(image);
  later(() => {
    detachLoop(device);
    assert.deepEqual(loopsBackedBy(image), [], 'loop device detached');
  });
  return device;
}

function unmountLater(later: (step: () => void) => void, target: string): void {
  later(() => {
    if (mountsAt(target).length) execFileSync('umount', [target]);
  });
}

/** Mounts at `target`, with their options, from the mount table. */
function mountsAt(target: string): string[][] {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f[1] === target);
}

const newLabel = () => `ca${randomUUID().slice(0, 8)}`;

describe('mount-seeds.sh on real loop devices', () => {
  it('mounts a labelled device read-only where the agent reads it; a second run stacks nothing; --unmount cleans up', async (t) => {
    if (!requireRoot(t) || !requireCommands(t, ...TOOLS) || !requireFile(t, bundleBuilt(), 'no dist/cartridge-agent.js: run npm run build')) return;
    const later = teardown(t);
    const work = workDir(t, later);
    const label = newLabel();
    const device = labelledDevice(later, work, label, { 'user-data': 'FOO=from the seed device\n', 'meta-data': 'instance-id: iid-loop\n' });
    // The image root the agent runs under; mount-seeds.sh mounts into its /run/cartridge-agent-seed.
    const root = path.join(work, 'root');
    const seedDir = path.join(root, 'run/cartridge-agent-seed');
    const target = path.join(seedDir, label);
    unmountLater(later, target);
    const args = ['--dir', seedDir, '--labels', `${label} ${newLabel()}`, '--fstypes', 'ext4'];

    const r = runSh(MOUNT_SEEDS, args);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, `mount-seeds.sh: mounted ${device} (ext4, LABEL=${label}) read-only on ${target}\n`);
    const mounts = mountsAt(target);
    assert.equal(mounts.length, 1);
    assert.equal(mounts[0]?.[0], device);
    const options = (mounts[0]?.[3] ?? '').split(',');
    for (const o of ['ro', 'nosuid', 'nodev', 'noexec']) assert.ok(options.includes(o), `${o} in ${options.join(',')}`);
    assert.throws(() => writeFileSync(path.join(target, 'x'), 'y'), (err: NodeJS.ErrnoException) => err.code === 'EROFS');

    // The agent, configured like the baked default (a seed dir under /run/cartridge-agent-seed), reads it.
    mkdirSync(path.join(root, 'etc/cartridge-agent'), { recursive: true });
    writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), JSON.stringify({ sources: { nocloud: { seedDirs: [`/run/cartridge-agent-seed/${label}`] } } }));
    const discover = await runAgent(['discover', '--json', '--root', root]);
    const rows = JSON.parse(discover.out) as Array<{ source: string; status: string; detail: string }>;
    const nocloud = rows.find((x) => x.source === 'nocloud');
    assert.equal(nocloud?.status, 'found', discover.out + discover.err);
    assert.match(nocloud?.detail ?? '', new RegExp(`from /run/cartridge-agent-seed/${label}/user-data, instance iid-loop`));

    const again = runSh(MOUNT_SEEDS, args);
    assert.equal(again.code, 0, again.err);
    assert.equal(again.err, '', 'already mounted: nothing to say');
    assert.equal(mountsAt(target).length, 1, 'not mounted twice');

    const un = runSh(MOUNT_SEEDS, [...args, '--unmount']);
    assert.equal(un.code, 0, un.err);
    assert.equal(un.err, `mount-seeds.sh: unmounted ${target}\n`);
    assert.deepEqual(mountsAt(target), []);
    assert.ok(!existsSync(seedDir), 'mount points removed');
  });

  it('by default only iso9660/vfat are mounted: an ext4 with a seed label is skipped with a message', (t) => {
    if (!requireRoot(t) || !requireCommands(t, ...TOOLS)) return;
    const later = teardown(t);
    const work = workDir(t, later);
    const label = newLabel();
    const device = labelledDevice(later, work, label, { 'user-data': 'X=1\n' });
    const seedDir = path.join(work, 'seed');
    const r = runSh(MOUNT_SEEDS, ['--dir', seedDir, '--labels', label]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, `mount-seeds.sh: ignoring ${device} labelled ${label}: its filesystem (ext4) is not one of iso9660,vfat\n`);
    assert.ok(!existsSync(seedDir));
  });

  it('no device with the labels: exit 0, silent, nothing created', (t) => {
    if (!requireRoot(t) || !requireCommands(t, ...TOOLS)) return;
    const work = workDir(t, teardown(t));
    const seedDir = path.join(work, 'seed');
    const r = runSh(MOUNT_SEEDS, ['--dir', seedDir, '--labels', `${newLabel()} ${newLabel()}`]);
    assert.deepEqual(r, { code: 0, out: '', err: '' });
    assert.ok(!existsSync(seedDir));
  });

  it('a device that cannot be mounted: exit 1 naming it, its mount point removed, the others still mounted', (t) => {
    if (!requireRoot(t) || !requireCommands(t, ...TOOLS, 'dd')) return;
    const later = teardown(t);
    const work = workDir(t, later);
    const bad = newLabel();
    const good = newLabel();
    const badDevice = labelledDevice(later, work, bad, { 'user-data': 'X=1\n' }, { corrupt: true });
    labelledDevice(later, work, good, { 'user-data': 'X=2\n' });
    const seedDir = path.join(work, 'seed');
    unmountLater(later, path.join(seedDir, bad));
    unmountLater(later, path.join(seedDir, good));
    const r = runSh(MOUNT_SEEDS, ['--dir', seedDir, '--labels', `${bad} ${good}`, '--fstypes', 'ext4']);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`mount-seeds\\.sh: cannot mount ${badDevice} \\(ext4, LABEL=${bad}\\) on ${seedDir}/${bad}`));
    assert.ok(!existsSync(path.join(seedDir, bad)), 'failed mount point removed');
    assert.equal(mountsAt(path.join(seedDir, good)).length, 1, 'the good device is still mounted');
    assert.equal(readFileSync(path.join(seedDir, good, 'user-data'), 'utf8'), 'X=2\n');
  });
});

describe('mount-seeds.sh usage and defaults', () => {
  it('refuses bad arguments (exit 2) before touching anything', (t) => {
    if (!requireCommands(t, 'dash')) return;
    const cases: Array<[string[], RegExp]> = [
      [['--labels', '../etc'], /--labels: "\.\.\/etc" is not a plain filesystem label/],
      [['--labels', 'a/b'], /is not a plain filesystem label/],
      [['--dir', 'relative'], /--dir must be an absolute path, got "relative"/],
      [['--dir'], /--dir needs a value/],
      [['--bogus'], /unknown argument "--bogus"/],
    ];
    for (const [args, message] of cases) {
      const r = runSh(MOUNT_SEEDS, args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, message);
    }
  });

  it('its default labels are the agent default labels, and the baked config reads each mount point from the right source', (t) => {
    if (!requireCommands(t, 'dash')) return;
    const help = runSh(MOUNT_SEEDS, ['--help']);
    assert.equal(help.code, 0);
    const labels = /--labels LIST +space-separated filesystem labels \(default "([^"]+)"\)/.exec(help.out)?.[1]?.split(' ');
    const dir = /--dir DIR +where the mount points go \(default ([^)]+)\)/.exec(help.out)?.[1];
    assert.ok(labels && dir, help.out);
    const defaults = parseConfig({}).sources;
    assert.deepEqual(labels, [...defaults.configdrive.labels, ...defaults.nocloud.labels]);
    const baked = parseConfig(JSON.parse(readFileSync(DEFAULT_CONFIG, 'utf8'))).sources;
    assert.equal(baked.scanDevices, false, 'the sandboxed agent cannot mount: the seed unit does');
    for (const label of defaults.configdrive.labels) assert.ok(baked.configdrive.seedDirs.includes(`${dir}/${label}`), `configdrive reads ${dir}/${label}`);
    for (const label of defaults.nocloud.labels) assert.ok(baked.nocloud.seedDirs.includes(`${dir}/${label}`), `nocloud reads ${dir}/${label}`);
    // The usual seed dirs on disk are still read too.
    for (const d of defaults.configdrive.seedDirs) assert.ok(baked.configdrive.seedDirs.includes(d));
    for (const d of defaults.nocloud.seedDirs) assert.ok(baked.nocloud.seedDirs.includes(d));
  });
});
