/**
 * Config drive trees laid out like nova writes them (openstack/<version>/meta_data.json,
 * user_data, openstack/content/NNNN, ec2/…), under a temporary --root seed dir.
 */
import assert from 'node:assert/strict';
import { symlink } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { SourceError } from '../../agent/src/errors';
import { ConfigDriveSource } from '../../agent/src/sources/configdrive';
import { PersonalitySource } from '../../agent/src/sources/personality';
import { makeContext, tempRoot, writeInRoot } from '../fixtures/sources/context';

const SEED = '/var/lib/cloud/seed/config_drive';
const UUID = '83679162-1378-4288-a2d4-70e13ec132aa';
const PERSONALITY_PATH = '/etc/cartridge-agent/payload-url';
const PAYLOAD_URL = 'https://ctl.example/payload/m-1?token=abc123';
const USER_DATA = '#include\nhttps://ctl.example/payload/m-1\n';

/** A nova-style tree: two versions, the network template in content/0000, our file in content/0001. */
async function makeDrive(root: string, opts: { files?: unknown; userData?: string | null; meta?: string } = {}): Promise<void> {
  const files = opts.files ?? [
    { path: '/etc/network/interfaces', content_path: '/content/0000' },
    { path: PERSONALITY_PATH, content_path: '/content/0001' },
  ];
  const meta = opts.meta ?? JSON.stringify({
    uuid: UUID,
    name: 'member-1',
    hostname: 'member-1.novalocal',
    availability_zone: 'nova',
    launch_index: 0,
    files,
    meta: { role: 'php' },
  });
  for (const version of ['2012-08-10', 'latest']) {
    await writeInRoot(root, `${SEED}/openstack/${version}/meta_data.json`, meta);
    if (opts.userData !== null) await writeInRoot(root, `${SEED}/openstack/${version}/user_data`, opts.userData ?? USER_DATA);
  }
  await writeInRoot(root, `${SEED}/openstack/content/0000`, 'auto eth0\niface eth0 inet dhcp\n');
  await writeInRoot(root, `${SEED}/openstack/content/0001`, `${PAYLOAD_URL}\n`);
  await writeInRoot(root, `${SEED}/ec2/latest/meta-data.json`, JSON.stringify({ 'instance-id': 'i-00000001' }));
}

test('configdrive: user_data from openstack/latest, uuid as instance id', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root);
  const r = await new ConfigDriveSource().probe(makeContext({ root }));
  assert.ok(r.status === 'found', JSON.stringify(r));
  assert.equal(r.discovery.instanceId, UUID);
  assert.equal(r.discovery.origin, `${SEED}/openstack/latest/user_data`);
  assert.ok(r.discovery.content.kind === 'userdata');
  assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
});

test('configdrive: the /config-drive seed dir works too', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/config-drive/openstack/latest/meta_data.json', JSON.stringify({ uuid: 'u-2' }));
  await writeInRoot(root, '/config-drive/openstack/latest/user_data', 'KEY=value\n');
  const r = await new ConfigDriveSource().probe(makeContext({ root }));
  assert.ok(r.status === 'found');
  assert.equal(r.discovery.instanceId, 'u-2');
});

test('configdrive: no drive, and a drive without user_data, are absent with reasons', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const none = await new ConfigDriveSource().probe(makeContext({ root }));
  assert.deepEqual(none, {
    status: 'absent',
    reason: `no openstack/latest/meta_data.json in ${SEED} or /config-drive; device scan off (sources.scanDevices)`,
  });
  await makeDrive(root, { userData: null });
  const noUserData = await new ConfigDriveSource().probe(makeContext({ root }));
  assert.deepEqual(noUserData, { status: 'absent', reason: `config drive ${SEED} has no openstack/latest/user_data` });
});

test('configdrive: meta_data.json that is not JSON is a SourceError naming the file', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root, { meta: '{"uuid": ' });
  await assert.rejects(new ConfigDriveSource().probe(makeContext({ root })), (err: unknown) =>
    err instanceof SourceError && err.where === `${SEED}/openstack/latest/meta_data.json` && /not valid JSON/.test(err.message));
});

test('configdrive: a user_data symlink pointing outside the drive is refused', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root, { userData: null });
  const secret = await writeInRoot(root, '/etc/shadow', 'root:$6$secret:19000::::::\n');
  await symlink(secret, path.join(root, SEED, 'openstack/latest/user_data'));
  await assert.rejects(new ConfigDriveSource().probe(makeContext({ root })), /points outside the tree/);
});

test('personality from the config drive: files[] entry for our path → openstack/content/0001', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root);
  const r = await new PersonalitySource().probe(makeContext({ root }));
  assert.ok(r.status === 'found', JSON.stringify(r));
  assert.deepEqual(r.discovery, {
    source: 'personality',
    instanceId: UUID,
    origin: `${SEED}/openstack/content/0001 (for ${PERSONALITY_PATH})`,
    content: { kind: 'url', url: PAYLOAD_URL },
  });
});

test('personality on disk beside a config drive takes the drive uuid as instance id', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root, { files: [] });
  await writeInRoot(root, PERSONALITY_PATH, 'https://ctl.example/other\n');
  const r = await new PersonalitySource().probe(makeContext({ root }));
  assert.ok(r.status === 'found');
  assert.equal(r.discovery.instanceId, UUID);
  assert.equal(r.discovery.origin, PERSONALITY_PATH);
});

test('personality: a drive injecting other files only is absent, saying so', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root, { files: [{ path: '/etc/motd', content_path: '/content/0000' }] });
  const r = await new PersonalitySource().probe(makeContext({ root }));
  assert.deepEqual(r, {
    status: 'absent',
    reason: `no file at ${PERSONALITY_PATH}; config drive ${SEED} injects no file at ${PERSONALITY_PATH}`,
  });
});

test('personality: a content_path escaping openstack/ or a missing content file is a SourceError', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root, { files: [{ path: PERSONALITY_PATH, content_path: '/../../../../etc/shadow' }] });
  await assert.rejects(new PersonalitySource().probe(makeContext({ root })), /leaves the tree/);
  await makeDrive(root, { files: [{ path: PERSONALITY_PATH, content_path: '/content/0009' }] });
  await assert.rejects(new PersonalitySource().probe(makeContext({ root })), /listed in meta_data.json files\[\] but missing/);
});

test('personality: oversized injected content is refused with the limit', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await makeDrive(root);
  await writeInRoot(root, `${SEED}/openstack/content/0001`, `https://ctl.example/p?t=${'x'.repeat(2000)}\n`);
  await assert.rejects(new PersonalitySource().probe(makeContext({ root })), /over the 1000-byte personality limit/);
});
