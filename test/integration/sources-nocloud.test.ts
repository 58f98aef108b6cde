/**
 * NoCloud with seeds made by the real cloud-localds (Debian cloud-image-utils): the seed-dir
 * layout (`-d tar-seed-local`, extracted into a temporary --root) and, as root, the cidata
 * ISO attached to a loop device, found by label with blkid and mounted read-only.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SourceError } from '../../agent/src/errors';
import { silentLogger } from '../../agent/src/log';
import { findDevicesByLabel, withMountedReadOnly } from '../../agent/src/sources/blockdev';
import { NoCloudSource } from '../../agent/src/sources/nocloud';
import { requireCommands, requireRoot } from '../helpers/env';
import { makeContext, tempRoot, writeInRoot } from '../fixtures/sources/context';
import { attachLoop, detachLoop, kernelSupports, loopsBackedBy, mountsContaining } from '../fixtures/sources/loop';

const USER_DATA = 'KEY_ONE=value one\nPORTS=80|443\n';
const MOUNT_PREFIX = 'cartridge-agent-seed-';

/** Run cloud-localds in `dir`; returns the output path. */
async function cloudLocalds(dir: string, args: string[], out: string, metaData?: string): Promise<string> {
  await writeFile(path.join(dir, 'user-data'), USER_DATA);
  const files = [path.join(dir, 'user-data')];
  if (metaData !== undefined) {
    await writeFile(path.join(dir, 'meta-data'), metaData);
    files.push(path.join(dir, 'meta-data'));
  }
  const output = path.join(dir, out);
  execFileSync('cloud-localds', [...args, output, ...files], { stdio: 'pipe' });
  return output;
}

async function seedDirRoot(t: import('node:test').TestContext, metaData?: string): Promise<string> {
  const work = await tempRoot('ca-localds-');
  const { root, cleanup } = await tempRoot();
  t.after(work.cleanup);
  t.after(cleanup);
  const tar = await cloudLocalds(work.root, ['-d', 'tar-seed-local'], 'seed.tar', metaData);
  execFileSync('tar', ['-C', root, '-xf', tar]);
  return root;
}

test('cloud-localds tar-seed-local extracted into the image: user-data and YAML instance-id', async (t) => {
  if (!requireCommands(t, 'cloud-localds', 'tar')) return;
  const iid = `iid-${randomUUID()}`;
  const root = await seedDirRoot(t, `instance-id: "${iid}"\nlocal-hostname: member-1\n`);
  const r = await new NoCloudSource().probe(makeContext({ root }));
  assert.ok(r.status === 'found', JSON.stringify(r));
  assert.equal(r.discovery.instanceId, iid);
  assert.equal(r.discovery.origin, '/var/lib/cloud/seed/nocloud/user-data');
  assert.ok(r.discovery.content.kind === 'userdata');
  assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
});

test('cloud-localds without meta-data writes JSON meta-data; its instance-id is read', async (t) => {
  if (!requireCommands(t, 'cloud-localds', 'tar')) return;
  const root = await seedDirRoot(t);
  const meta = await readFile(path.join(root, 'var/lib/cloud/seed/nocloud/meta-data'), 'utf8');
  assert.match(meta, /^\{/, 'cloud-localds wrote JSON meta-data');
  const r = await new NoCloudSource().probe(makeContext({ root }));
  assert.ok(r.status === 'found');
  assert.equal(r.discovery.instanceId, 'iid-local01');
});

test('nocloud-net seed dir; meta-data without instance-id defaults to "nocloud"', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/var/lib/cloud/seed/nocloud-net/user-data', USER_DATA);
  await writeInRoot(root, '/var/lib/cloud/seed/nocloud-net/meta-data', 'local-hostname: h\n');
  const r = await new NoCloudSource().probe(makeContext({ root }));
  assert.ok(r.status === 'found');
  assert.equal(r.discovery.instanceId, 'nocloud');
  assert.equal(r.discovery.origin, '/var/lib/cloud/seed/nocloud-net/user-data');
});

test('no seed: absent with one reason per seed dir and the device scan state', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/var/lib/cloud/seed/nocloud/meta-data', 'instance-id: x\n');
  const r = await new NoCloudSource().probe(makeContext({ root }));
  assert.deepEqual(r, {
    status: 'absent',
    reason: 'no user-data in /var/lib/cloud/seed/nocloud; no user-data in /var/lib/cloud/seed/nocloud-net; device scan off (sources.scanDevices)',
  });
});

test('user-data over payload.maxUserDataBytes is a SourceError naming the file', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/var/lib/cloud/seed/nocloud/user-data', 'x'.repeat(2048));
  const ctx = makeContext({ root, config: { payload: { maxUserDataBytes: 1024 } } });
  await assert.rejects(new NoCloudSource().probe(ctx), (err: unknown) =>
    err instanceof SourceError && err.where === '/var/lib/cloud/seed/nocloud/user-data' && /2048 bytes, over the limit of 1024/.test(err.message));
});

async function tmpMountDirs(): Promise<string[]> {
  return (await readdir(os.tmpdir())).filter((n) => n.startsWith(MOUNT_PREFIX));
}

test('cidata ISO from cloud-localds on a loop device: found by label, mounted read-only, unmounted after', async (t) => {
  if (!requireRoot(t) || !requireCommands(t, 'cloud-localds', 'losetup', 'blkid', 'mount', 'umount')) return;
  const before = await findDevicesByLabel(['cidata', 'CIDATA']);
  if ('devices' in before) {
    assert.fail(`a cidata device is already attached (${before.devices.map((d) => d.device).join(', ')}); detach it first (a crashed earlier run?)`);
  }
  const work = await tempRoot('ca-localds-');
  const { root, cleanup } = await tempRoot();
  t.after(work.cleanup);
  t.after(cleanup);
  const iid = `iid-loop-${randomUUID()}`;
  const image = await cloudLocalds(work.root, [], 'seed.iso', `instance-id: ${iid}\n`);
  const tmpBefore = await tmpMountDirs();
  const device = attachLoop(image);
  try {
    const ctx = makeContext({ root, config: { sources: { scanDevices: true } } });
    if (kernelSupports('iso9660')) {
      const r = await new NoCloudSource().probe(ctx);
      assert.ok(r.status === 'found', JSON.stringify(r));
      assert.equal(r.discovery.instanceId, iid);
      assert.equal(r.discovery.origin, `${device} (LABEL=cidata)/user-data`);
      assert.ok(r.discovery.content.kind === 'userdata');
      assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
    } else {
      // This kernel cannot mount ISO 9660 (no module): blkid must still find our device by
      // label, and the failed mount must be reported with the device and leave nothing behind.
      t.diagnostic('kernel has no iso9660 support: checked find-by-label and cleanup, not the read');
      await assert.rejects(new NoCloudSource().probe(ctx), (err: unknown) =>
        err instanceof SourceError && err.where === `${device} (LABEL=cidata)` && /cannot mount .* read-only/.test(err.message));
    }
    assert.deepEqual(mountsContaining(MOUNT_PREFIX), [], 'nothing left mounted');
    assert.deepEqual(await tmpMountDirs(), tmpBefore, 'temporary mount point removed');
  } finally {
    detachLoop(device);
  }
  assert.deepEqual(loopsBackedBy(image), [], 'loop device detached');
});

test('mount mechanics on a loop device: read-only, read, unmounted and removed; wrong fs type ignored by label search', async (t) => {
  if (!requireRoot(t) || !requireCommands(t, 'mkfs.ext4', 'losetup', 'blkid', 'mount', 'umount')) return;
  const work = await tempRoot('ca-ext4-');
  t.after(work.cleanup);
  const label = `cat${randomUUID().slice(0, 8)}`;
  const content = path.join(work.root, 'content');
  await mkdir(content);
  await writeFile(path.join(content, 'user-data'), USER_DATA);
  const image = path.join(work.root, 'fs.img');
  execFileSync('truncate', ['-s', '4M', image]);
  execFileSync('mkfs.ext4', ['-q', '-L', label, '-d', content, image]);
  const device = attachLoop(image);
  try {
    const search = await findDevicesByLabel([label]);
    assert.ok('reason' in search);
    assert.equal(search.reason, `no block device labelled ${label} with an iso9660/vfat filesystem (ignored ${device} (ext4))`);

    let mountDir = '';
    const read = await withMountedReadOnly({ device, label, type: 'ext4' }, silentLogger(), async (dir) => {
      mountDir = dir;
      assert.deepEqual(mountsContaining(dir), [dir], 'mounted while in use');
      await assert.rejects(writeFile(path.join(dir, 'x'), 'y'), (err: NodeJS.ErrnoException) => err.code === 'EROFS');
      return readFile(path.join(dir, 'user-data'), 'utf8');
    });
    assert.equal(read, USER_DATA);
    assert.deepEqual(mountsContaining(mountDir), [], 'unmounted');
    await assert.rejects(readdir(mountDir), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');

    // A failure inside `use` still unmounts.
    await assert.rejects(
      withMountedReadOnly({ device, label, type: 'ext4' }, silentLogger(), async (dir) => {
        mountDir = dir;
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.deepEqual(mountsContaining(mountDir), []);
  } finally {
    detachLoop(device);
  }
  assert.deepEqual(loopsBackedBy(image), []);
});
