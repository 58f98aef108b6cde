/**
 * CloudStack: the virtual router's address comes from a DHCP lease file in a temporary
 * --root; the "VR" is an emulation on 127.0.0.1. CloudStackSource's `vrPort` option points the
 * lease-derived address at the emulation's port (the real VR is on port 80).
 */
import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { test } from 'node:test';
import { CloudStackSource, findVirtualRouter } from '../../agent/src/sources/cloudstack';
import { makeContext, tempRoot, writeInRoot } from '../fixtures/sources/context';
import { send, startServer } from '../helpers/http-server';

const USER_DATA = 'KEY=value\n';
const INSTANCE_ID = '6f3e5d62-cs-vm';
const FAST = { backoffMs: 10, backoffCapMs: 50 };

async function startVr(userData: string | number = USER_DATA) {
  return startServer((req, res) => {
    if (req.url === '/latest/user-data') return typeof userData === 'number' ? send(res, userData) : send(res, 200, userData);
    if (req.url === '/latest/meta-data/instance-id') return send(res, 200, `${INSTANCE_ID}\n`);
    send(res, 404);
  });
}

const net = { connectTimeoutMs: 500, requestTimeoutMs: 2_000, retries: 1 };

test('cloudstack: VR from a networkd lease, user data and instance id from it', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const vr = await startVr();
  t.after(() => vr.close());
  await writeInRoot(root, '/run/systemd/netif/leases/2', 'ADDRESS=127.0.0.5\nROUTER=127.0.0.9\nSERVER_ADDRESS=127.0.0.1\n');
  const ctx = makeContext({ root, config: { sources: { cloudstack: net } } });
  const r = await new CloudStackSource({ vrPort: vr.port, retryPolicy: FAST }).probe(ctx);
  assert.ok(r.status === 'found', JSON.stringify(r));
  assert.equal(r.discovery.instanceId, INSTANCE_ID);
  assert.equal(r.discovery.origin, `http://127.0.0.1:${vr.port}/latest/user-data`);
  assert.ok(r.discovery.content.kind === 'userdata');
  assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
});

test('cloudstack: dhclient lease, last lease wins; newest lease file wins across files', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const old = await writeInRoot(root, '/var/lib/dhcp/dhclient.eth1.leases', 'lease {\n  option dhcp-server-identifier 10.9.9.9;\n}\n');
  await utimes(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
  await writeInRoot(
    root,
    '/var/lib/dhcp/dhclient.eth0.leases',
    'lease {\n  option dhcp-server-identifier 10.1.1.1;\n}\nlease {\n  option dhcp-server-identifier 127.0.0.1;\n}\n',
  );
  const vr = await findVirtualRouter(makeContext({ root }));
  assert.deepEqual(vr, { address: '127.0.0.1', leaseFile: '/var/lib/dhcp/dhclient.eth0.leases' });
});

test('cloudstack: NetworkManager internal lease file', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/var/lib/NetworkManager/internal-1b2c-eth0.lease', 'ADDRESS=10.0.3.7\nSERVER_ADDRESS=10.0.3.1\n');
  assert.deepEqual(await findVirtualRouter(makeContext({ root })), {
    address: '10.0.3.1',
    leaseFile: '/var/lib/NetworkManager/internal-1b2c-eth0.lease',
  });
});

test('cloudstack: no lease files is absent naming the directories', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const r = await new CloudStackSource().probe(makeContext({ root }));
  assert.deepEqual(r, {
    status: 'absent',
    reason: 'no DHCP server address in lease files under /run/systemd/netif/leases, /var/lib/dhcp, /var/lib/dhclient, /var/lib/NetworkManager',
  });
});

test('cloudstack: config baseUrl overrides the lease lookup; 404 user-data is absent', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const vr = await startVr(404);
  t.after(() => vr.close());
  const ctx = makeContext({ root, config: { sources: { cloudstack: { ...net, baseUrl: vr.url } } } });
  const r = await new CloudStackSource({ retryPolicy: FAST }).probe(ctx);
  assert.deepEqual(r, { status: 'absent', reason: `no user data at ${vr.url}/latest/user-data (404)` });
  assert.deepEqual(vr.requests.map((q) => q.url), ['/latest/user-data']);
});
