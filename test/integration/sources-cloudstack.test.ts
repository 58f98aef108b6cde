/**
 * CloudStack: the virtual router's address comes from the data-server DNS name (an injected
 * lookup: the tests never ask a real DNS server), the lease files or /proc/net/route in a
 * temporary --root. The "VR" is an emulation on a loopback address (127.0.0.x: each step
 * points at a different one, so the address that answered shows which step won).
 * CloudStackSource's `vrPort` option points the found address at the emulation's port (the
 * real VR is on port 80).
 */
import assert from 'node:assert/strict';
import { readFile, utimes } from 'node:fs/promises';
import { test } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { CloudStackSource, fromLeases, type HostLookup } from '../../agent/src/sources/cloudstack';
import { makeContext, tempRoot, writeInRoot } from '../fixtures/sources/context';
import { send, startServer } from '../helpers/http-server';

const USER_DATA = 'KEY=value\n';
const INSTANCE_ID = '6f3e5d62-cs-vm';
const FAST = { backoffMs: 10, backoffCapMs: 50 };
const net = { connectTimeoutMs: 500, requestTimeoutMs: 2_000, retries: 1 };
const ROUTE_HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';

/** The lookup of a CloudStack network without a data-server entry. */
const notFound: HostLookup = async (name) => {
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
};

async function startVr(host: string, userData: string | number = USER_DATA) {
  return startServer(
    (req, res) => {
      if (req.url === '/latest/user-data') return typeof userData === 'number' ? send(res, userData) : send(res, 200, userData);
      if (req.url === '/latest/meta-data/instance-id') return send(res, 200, `${INSTANCE_ID}\n`);
      send(res, 404);
    },
    undefined,
    host,
  );
}

async function setup(t: { after: (fn: () => Promise<void>) => void }, vrHost: string, vrUserData?: string | number) {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const vr = await startVr(vrHost, vrUserData);
  t.after(() => vr.close());
  return { root, vr };
}

function source(vrPort: number, lookup: HostLookup = notFound) {
  return new CloudStackSource({ vrPort, retryPolicy: FAST, lookup });
}

function assertFoundAt(r: Awaited<ReturnType<CloudStackSource['probe']>>, url: string, via: string) {
  assert.ok(r.status === 'found', JSON.stringify(r));
  assert.equal(r.discovery.origin, `${url}/latest/user-data`);
  assert.equal(r.discovery.via, via);
  assert.equal(r.discovery.instanceId, INSTANCE_ID);
  assert.ok(r.discovery.content.kind === 'userdata');
  assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
}

test('cloudstack: VR from a networkd lease, user data and instance id from it', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.1');
  await writeInRoot(root, '/run/systemd/netif/leases/2', 'ADDRESS=127.0.0.5\nROUTER=127.0.0.9\nSERVER_ADDRESS=127.0.0.1\n');
  const r = await source(vr.port).probe(makeContext({ root, config: { sources: { cloudstack: net } } }));
  assertFoundAt(r, vr.url, 'virtual router from lease file /run/systemd/netif/leases/2');
});

test('cloudstack: dhclient lease whose strings hold } { ; # (iPXE filename, domain-search)', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.4');
  await writeInRoot(
    root,
    '/var/lib/dhcp/dhclient.eth0.leases',
    `lease {
  interface "eth0";
  fixed-address 10.1.1.23;
  filename "http://boot.example/\${netX}/menu.ipxe";
  option domain-search "cs.example;x{y}", "#z";
  option dhcp-server-identifier 127.0.0.4;
  renew 2 2024/01/02 03:04:05;
}
`,
  );
  const r = await source(vr.port).probe(makeContext({ root, config: { sources: { cloudstack: net } } }));
  assertFoundAt(r, vr.url, 'virtual router from lease file /var/lib/dhcp/dhclient.eth0.leases');
});

test('cloudstack: NetworkManager internal client, server only in the device state file', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.6');
  // What NM's internal client writes as its lease (nothing about the server) ...
  await writeInRoot(root, '/var/lib/NetworkManager/internal-4c7d1a0e-eth0.lease', '# This is private data. Do not parse.\nADDRESS=10.1.1.23\n');
  // ... and what NM >= 1.40 writes as the device's state: loopback (ifindex 1) and eth0 (2).
  await writeInRoot(root, '/run/NetworkManager/devices/1', '[device]\nmanaged=false\n');
  await writeInRoot(
    root,
    '/run/NetworkManager/devices/2',
    '[device]\nmanaged=true\nconnection-uuid=4c7d1a0e-9a3e-4b53-8a3b-5f0a0d9b1c2e\n\n[dhcp4]\ndhcp4.dhcp_server_identifier=127.0.0.6\ndhcp4.ip_address=10.1.1.23\ndhcp4.routers=127.0.0.9\n',
  );
  const r = await source(vr.port).probe(makeContext({ root, config: { sources: { cloudstack: net } } }));
  assertFoundAt(r, vr.url, 'virtual router from lease file /run/NetworkManager/devices/2');
});

test('cloudstack: the data-server DNS name comes first, before lease files and the gateway', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.3');
  await writeInRoot(root, '/run/systemd/netif/leases/2', 'SERVER_ADDRESS=127.0.0.4\n');
  await writeInRoot(root, '/proc/net/route', `${ROUTE_HEADER}eth0\t00000000\t0500007F\t0003\t0\t0\t100\t00000000\t0\t0\t0\n`);
  const asked: string[] = [];
  const lookup: HostLookup = async (name) => (asked.push(name), ['127.0.0.3']);
  const r = await source(vr.port, lookup).probe(makeContext({ root, config: { sources: { cloudstack: net } } }));
  assertFoundAt(r, vr.url, 'virtual router from DNS name data-server');
  assert.deepEqual(asked, ['data-server']);
});

test('cloudstack: the default lookup is the system resolver (dataServerName localhost, answered by /etc/hosts)', async (t) => {
  // Only where /etc/hosts itself answers: the test must never make the resolver ask a DNS server.
  const hosts = await readFile('/etc/hosts', 'utf8').catch(() => '');
  const nss = await readFile('/etc/nsswitch.conf', 'utf8').catch(() => '');
  if (!/^\s*127\.0\.0\.1\s+(\S+\s+)*localhost(\s|$)/m.test(hosts)) return t.skip('/etc/hosts does not map localhost to 127.0.0.1');
  if (!/^hosts:\s*files\b/m.test(nss)) return t.skip('nsswitch.conf does not consult /etc/hosts first');
  const { root, vr } = await setup(t, '127.0.0.1');
  const ctx = makeContext({ root, config: { sources: { cloudstack: { ...net, dataServerName: 'localhost', leaseDirs: [], routeFile: null } } } });
  const r = await new CloudStackSource({ vrPort: vr.port, retryPolicy: FAST }).probe(ctx);
  assertFoundAt(r, vr.url, 'virtual router from DNS name localhost');
});

test('cloudstack: no DNS name, no lease: the default gateway from /proc/net/route', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.5');
  await writeInRoot(root, '/var/lib/NetworkManager/internal-4c7d1a0e-eth0.lease', 'ADDRESS=10.1.1.23\n');
  await writeInRoot(
    root,
    '/proc/net/route',
    `${ROUTE_HEADER}eth0\t0001010A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\neth0\t00000000\t0500007F\t0003\t0\t0\t100\t00000000\t0\t0\t0\n`,
  );
  const r = await source(vr.port).probe(makeContext({ root, config: { sources: { cloudstack: net } } }));
  assertFoundAt(r, vr.url, 'virtual router from default gateway in /proc/net/route');
});

test('cloudstack: a DNS lookup that hangs is cut off, the next step answers, and the hung lookup is not repeated', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.1');
  await writeInRoot(root, '/run/systemd/netif/leases/2', 'SERVER_ADDRESS=127.0.0.1\n');
  let calls = 0;
  const hangs: HostLookup = () => (calls++, new Promise<string[]>(() => undefined));
  const src = source(vr.port, hangs);
  const ctx = makeContext({ root, config: { sources: { cloudstack: { ...net, connectTimeoutMs: 50 } } } });
  for (let probe = 0; probe < 3; probe++) assertFoundAt(await src.probe(ctx), vr.url, 'virtual router from lease file /run/systemd/netif/leases/2');
  assert.equal(calls, 1);
});

test('cloudstack: nothing found names every step and why it failed', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/proc/net/route', `${ROUTE_HEADER}eth0\t0001010A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n`);
  const r = await source(1).probe(makeContext({ root }));
  assert.deepEqual(r, {
    status: 'absent',
    reason:
      'no virtual router found (DNS: data-server does not resolve (ENOTFOUND); ' +
      'lease files: no DHCP server address under /run/systemd/netif/leases, /run/NetworkManager/devices, /var/lib/NetworkManager, /var/lib/dhcp, /var/lib/dhclient; ' +
      'default gateway: no IPv4 default route in /proc/net/route)',
  });
  const off = makeContext({ root, config: { sources: { cloudstack: { dataServerName: null, leaseDirs: [], routeFile: null } } } });
  assert.deepEqual(await source(1, () => assert.fail('lookup with dataServerName null')).probe(off), {
    status: 'absent',
    reason:
      'no virtual router found (DNS: skipped (sources.cloudstack.dataServerName is null); lease files: no DHCP server address under (no lease dirs configured); ' +
      'default gateway: skipped (sources.cloudstack.routeFile is null))',
  });
});

test('cloudstack: a VR without user data says where its address came from', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.1', 404);
  await writeInRoot(root, '/run/NetworkManager/devices/3', '[dhcp4]\ndhcp4.dhcp_server_identifier=127.0.0.1\n');
  const r = await source(vr.port).probe(makeContext({ root, config: { sources: { cloudstack: net } } }));
  assert.deepEqual(r, {
    status: 'absent',
    reason: `no user data at ${vr.url}/latest/user-data (404) (virtual router from lease file /run/NetworkManager/devices/3)`,
  });
});

test('cloudstack: newest lease file wins across files and formats; last dhclient lease wins', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const hourAgo = new Date(Date.now() - 3_600_000);
  const stale = await writeInRoot(root, '/var/lib/dhcp/dhclient.eth1.leases', 'lease {\n  option dhcp-server-identifier 10.9.9.9;\n}\n');
  await utimes(stale, hourAgo, hourAgo);
  const staleNm = await writeInRoot(root, '/run/NetworkManager/devices/2', '[dhcp4]\ndhcp4.dhcp_server_identifier=10.8.8.8\n');
  await utimes(staleNm, hourAgo, hourAgo);
  await writeInRoot(
    root,
    '/var/lib/dhcp/dhclient.eth0.leases',
    'lease {\n  option dhcp-server-identifier 10.1.1.1;\n}\nlease {\n  filename "}";\n  option dhcp-server-identifier 127.0.0.1;\n}\n',
  );
  assert.deepEqual(await fromLeases(makeContext({ root })), { address: '127.0.0.1', step: 'lease', from: 'lease file /var/lib/dhcp/dhclient.eth0.leases' });
});

test('cloudstack: config baseUrl overrides the search (no lookup); 404 user-data is absent', async (t) => {
  const { root, vr } = await setup(t, '127.0.0.1', 404);
  const ctx = makeContext({ root, config: { sources: { cloudstack: { ...net, baseUrl: vr.url } } } });
  const r = await new CloudStackSource({ retryPolicy: FAST, lookup: () => assert.fail('lookup with baseUrl set') }).probe(ctx);
  assert.deepEqual(r, { status: 'absent', reason: `no user data at ${vr.url}/latest/user-data (404)` });
  assert.deepEqual(vr.requests.map((q) => q.url), ['/latest/user-data']);
});

test('cloudstack config: the search defaults, and a bad data-server name or route file is refused naming the key', () => {
  const cs = parseConfig({}).sources.cloudstack;
  assert.equal(cs.dataServerName, 'data-server');
  assert.equal(cs.routeFile, '/proc/net/route');
  assert.ok(cs.leaseDirs.includes('/run/NetworkManager/devices'));
  assert.throws(() => parseConfig({ sources: { cloudstack: { dataServerName: 'data server' } } }), /sources\.cloudstack\.dataServerName.*DNS name/);
  assert.throws(() => parseConfig({ sources: { cloudstack: { routeFile: 'proc/net/route' } } }), /sources\.cloudstack\.routeFile.*absolute path/);
});
