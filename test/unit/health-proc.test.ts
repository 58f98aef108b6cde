/** /proc parsers and the metrics collector, on fixture files (test/fixtures/health/proc-root). */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { allowPredicateFromPolicy, MetricsCollector } from '../../agent/src/health/metrics';
import {
  countCpus, decodeProcAddress, diskUsage, parseBlockMounts, parseLoadavg, parseMeminfo, parseNetDev, parseProcNetSockets, parseUptime,
} from '../../agent/src/health/proc';
import { RootedPaths } from '../../agent/src/paths';
import { buildPolicy } from '../../agent/src/firewall/allowlist';

const root = path.join(__dirname, '../fixtures/health/proc-root');

test('decodeProcAddress: little-endian words, IPv4, IPv6, v4-mapped', () => {
  assert.equal(decodeProcAddress('0100007F'), '127.0.0.1');
  assert.equal(decodeProcAddress('0500000A'), '10.0.0.5');
  assert.equal(decodeProcAddress('00000000000000000000000000000000'), '::');
  assert.equal(decodeProcAddress('00000000000000000000000001000000'), '::1');
  assert.equal(decodeProcAddress('B80D0120000000000000000001000000'), '2001:db8::1');
  assert.equal(decodeProcAddress('0000000000000000FFFF00000500000A'), '::ffff:10.0.0.5');
  // Only the longest zero run is compressed; a single zero group stays.
  assert.equal(decodeProcAddress('B80D0120000000000100000001000000'), '2001:db8::1:0:1');
  assert.throws(() => decodeProcAddress('0100'), /unreadable socket address/);
});

test('simple files: loadavg, uptime, meminfo, cpuinfo, net/dev (lo excluded)', () => {
  assert.deepEqual(parseLoadavg('0.52 0.34 0.25 2/345 6789\n'), [0.52, 0.34, 0.25]);
  assert.throws(() => parseLoadavg('garbage'), /unreadable loadavg/);
  assert.equal(parseUptime('98765.43 345678.90\n'), 98765);
  assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemAvailable: 400 kB\n'), { totalB: 1024000, availB: 409600 });
  assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n'), { totalB: 1024000, availB: 310 * 1024 }, 'old kernels: free + buffers + cache');
  assert.throws(() => parseMeminfo('MemFree: 1 kB'), /no MemTotal/);
  assert.equal(countCpus('processor\t: 0\n\nprocessor\t: 1\n'), 2);
  const dev = 'h1\nh2\n    lo: 50 1 0 0 0 0 0 0 60 1 0 0 0 0 0 0\n  eth0: 100 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n';
  assert.deepEqual(parseNetDev(dev), { rxB: 100, txB: 7 });
});

test('sockets: TCP LISTEN only; UDP bound and unconnected only', () => {
  const tcp = parseProcNetSockets('hdr\n 0: 00000000:0016 00000000:0000 0A x\n 1: 0500000A:0016 0100000A:C350 01 x\n', 'tcp');
  assert.deepEqual(tcp, [{ proto: 'tcp', addr: '0.0.0.0', port: 22 }]);
  const udp = parseProcNetSockets('hdr\n 1: 00000000:0044 00000000:0000 07 x\n 2: 0500000A:A1B2 08080808:0035 01 x\n', 'udp');
  assert.deepEqual(udp, [{ proto: 'udp', addr: '0.0.0.0', port: 68 }]);
});

test('mounts: block devices only, first occurrence, octal escapes decoded; disk usage like df', () => {
  const text = '/dev/vda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/loop0 /snap/x squashfs ro 0 0\n/dev/vda1 / ext4 rw 0 0\n/dev/vdb1 /srv/my\\040data xfs rw 0 0\n';
  assert.deepEqual(parseBlockMounts(text), [{ mount: '/', fsType: 'ext4' }, { mount: '/srv/my data', fsType: 'xfs' }]);
  // 100 blocks, 30 free, 20 available to users: used 70 of (70 + 20) = 77.8 %.
  assert.deepEqual(diskUsage(100, 30, 20, 4096), { sizeB: 409600, availB: 81920, usedPct: 77.8 });
  assert.equal(diskUsage(0, 0, 0, 4096).usedPct, 0);
});

test('MetricsCollector on a fixture root: every field, listeners flagged against the allowlist', async () => {
  const policy = buildPolicy(new Map([['PORTS', '80|443']]), { alwaysAllow: ['tcp/22'], extraRules: ['udp/5353'], allowIcmpEcho: true });
  const m = await new MetricsCollector(new RootedPaths(root)).collect(allowPredicateFromPolicy(policy));
  assert.deepEqual(m.load, [0.52, 0.34, 0.25]);
  assert.equal(m.uptimeS, 98765);
  assert.equal(m.cpus, 4);
  assert.deepEqual(m.mem, { totalB: 4028440 * 1024, availB: 2014220 * 1024 });
  assert.deepEqual(m.net, { rxB: 1002345, txB: 251234 });
  const l = m.listening.map((x) => `${x.proto} ${x.addr} ${x.port} ${x.allowed ? 'allowed' : 'NOT'}${x.loopback ? ' lo' : ''}`);
  // Sorted by protocol, port, address; the ESTABLISHED TCP and the connected UDP socket are not listeners.
  assert.deepEqual(l, [
    'tcp 0.0.0.0 22 allowed',
    'tcp :: 22 allowed',
    'tcp :: 80 allowed',
    'tcp 2001:db8::1 443 allowed',
    'tcp 127.0.0.1 631 NOT lo',
    'tcp ::1 5432 NOT lo',
    'tcp 10.0.0.5 8080 NOT',
    'tcp ::ffff:10.0.0.5 8080 NOT',
    'udp 0.0.0.0 68 NOT',
    'udp :: 5353 allowed',
  ]);
  // "/" of the fixture root is statfs'ed for real; "/srv/my data" does not exist there.
  assert.equal(m.disk.length, 1);
  assert.equal(m.disk[0]?.mount, '/');
  assert.ok((m.disk[0]?.sizeB ?? 0) > 0 && (m.disk[0]?.usedPct ?? -1) >= 0 && (m.disk[0]?.usedPct ?? 101) <= 100);
  assert.ok(m.errors.some((e) => e.startsWith('statfs /srv/my data: ENOENT')), m.errors.join('; '));
});

test('MetricsCollector with missing files: zeros and a note per file, no exception', async () => {
  const m = await new MetricsCollector(new RootedPaths(path.join(root, 'nonexistent'))).collect(() => true);
  assert.deepEqual(m.load, [0, 0, 0]);
  assert.equal(m.listening.length, 0);
  assert.ok(m.cpus > 0, 'falls back to os.cpus()');
  assert.ok(m.errors.some((e) => e.startsWith('/proc/loadavg: ENOENT')));
});
