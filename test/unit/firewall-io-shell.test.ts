/**
 * The pure decisions of the firewall's I/O shell (read-back picking and diffing, jump edits,
 * backend choice from tool output, guard baseline/check, log throttling), the command
 * runner's contract, and the exact commands one enforce runs (on a fake host). The kernel side is in test/integration/firewall-*.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { FirewallError } from '../../agent/src/errors';
import { applyFirewall } from '../../agent/src/firewall/index';
import { detectBackend, iptablesVariant } from '../../agent/src/firewall/backend';
import { CommandNotFoundError, runCommand, TIMEOUT_EXIT, type CommandRunner } from '../../agent/src/firewall/exec';
import { endpointsFromUrls, guardBaseline, guardCheck, probeEndpoints, type ProbeFn } from '../../agent/src/firewall/guard';
import type { FirewallOps } from '../../agent/src/firewall/apply';
import { DriftLogThrottle, FirewallKeeper, type Clock } from '../../agent/src/firewall/keeper';
import type { AppliedFirewall } from '../../agent/src/firewall/state';
import { silentLogger } from '../../agent/src/log';
import { RootedPaths } from '../../agent/src/paths';
import { FakeFirewallHost } from '../fixtures/firewall/fake-host';
import { diffReadBack, fingerprint, iptablesReadBack, iptablesRestoreText, normaliseNftListing, pickIptablesState, withJump } from '../../agent/src/firewall/readback';

const LISTING = `-P INPUT ACCEPT
-P FORWARD DROP
-N CARTRIDGE-INPUT
-N f2b-sshd
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -j CARTRIDGE-INPUT
-A INPUT -i eth0 -j CARTRIDGE-INPUT
-A CARTRIDGE-INPUT -i lo -j RETURN
-A CARTRIDGE-INPUT -m comment --comment "cartridge-agent: default deny" -j DROP
-A CARTRIDGE-INPUT-OTHER -j DROP
-A f2b-sshd -s 192.0.2.7/32 -j REJECT --reject-with icmp-port-unreachable
# Warning: iptables-legacy tables present, use iptables-legacy to see them
`;

test('pickIptablesState keeps only our chain and exact jumps to it', () => {
  assert.deepEqual(pickIptablesState(LISTING), {
    chain: ['-A CARTRIDGE-INPUT -i lo -j RETURN', '-A CARTRIDGE-INPUT -m comment --comment "cartridge-agent: default deny" -j DROP'],
    jumps: 1,
  });
  assert.deepEqual(pickIptablesState('-P INPUT ACCEPT\n'), { chain: null, jumps: 0 });
  assert.deepEqual(pickIptablesState('-N CARTRIDGE-INPUT\n'), { chain: [], jumps: 0 }, 'an empty (flushed) chain is not an absent one');
});

test('iptablesReadBack: null only when nothing of ours exists in either family', () => {
  const absent = { chain: null, jumps: 0 };
  assert.equal(iptablesReadBack(absent, absent), null);
  const rb = iptablesReadBack({ chain: ['-A CARTRIDGE-INPUT -j DROP'], jumps: 1 }, absent);
  assert.equal(rb, 'ipv4:\n-N CARTRIDGE-INPUT\n-A CARTRIDGE-INPUT -j DROP\njumps from INPUT: 1\nipv6: absent\n');
  assert.notEqual(fingerprint(rb), fingerprint(iptablesReadBack({ chain: ['-A CARTRIDGE-INPUT -j DROP'], jumps: 2 }, absent)));
  assert.equal(fingerprint(null), 'absent');
});

test('normaliseNftListing strips handles and counter values, keeps order', () => {
  const listing = 'table inet cartridge_agent { # handle 7\n\tchain input { # handle 1\n\t\tiif "lo" accept # handle 2\n\t\tcounter packets 12 bytes 3400 drop # handle 9\n\t}\n}\n';
  assert.equal(normaliseNftListing(listing), 'table inet cartridge_agent {\n\tchain input {\n\t\tiif "lo" accept\n\t\tcounter drop\n\t}\n}\n');
  assert.equal(normaliseNftListing('\n'), null);
});

test('diffReadBack names missing, unexpected and reordered lines', () => {
  assert.deepEqual(diffReadBack('a\nb\n', 'a\nb\n'), []);
  assert.deepEqual(diffReadBack('a\nb\nc\n', 'a\nx\n'), ['missing: b', 'missing: c', 'unexpected: x']);
  assert.deepEqual(diffReadBack('a\nb\n', 'b\na\n'), ['same rules in a different order']);
  assert.deepEqual(diffReadBack('j\nj\n', 'j\n'), ['missing: j']);
  assert.deepEqual(diffReadBack('a\n', null), ['all of our rules are gone (table/chain and jumps absent)']);
});

test('withJump adds the jump only when missing, removes duplicates, inside the same COMMIT', () => {
  const text = '# header\n*filter\n:CARTRIDGE-INPUT - [0:0]\n-A CARTRIDGE-INPUT -j DROP\nCOMMIT\n';
  assert.equal(withJump(text, 0), '# header\n*filter\n:CARTRIDGE-INPUT - [0:0]\n-A CARTRIDGE-INPUT -j DROP\n-I INPUT 1 -j CARTRIDGE-INPUT\nCOMMIT\n');
  assert.equal(withJump(text, 1), text);
  assert.match(withJump(text, 3), /-D INPUT -j CARTRIDGE-INPUT\n-D INPUT -j CARTRIDGE-INPUT\nCOMMIT\n$/);
  assert.throws(() => withJump('*filter\n', 0), /no COMMIT/);
});

test('iptablesRestoreText puts a family back to its snapshot, absent included', () => {
  assert.equal(iptablesRestoreText({ chain: null, jumps: 0 }, 2), '*filter\n:CARTRIDGE-INPUT - [0:0]\n-D INPUT -j CARTRIDGE-INPUT\n-D INPUT -j CARTRIDGE-INPUT\n-X CARTRIDGE-INPUT\nCOMMIT\n');
  assert.equal(iptablesRestoreText({ chain: ['-A CARTRIDGE-INPUT -j DROP'], jumps: 1 }, 0), '*filter\n:CARTRIDGE-INPUT - [0:0]\n-A CARTRIDGE-INPUT -j DROP\n-I INPUT 1 -j CARTRIDGE-INPUT\nCOMMIT\n');
});

/** A fake host: which commands exist and what `-V` prints. */
function fakeHost(tools: Record<string, string>): CommandRunner {
  return async (cmd) => {
    if (!(cmd in tools)) throw new CommandNotFoundError(cmd);
    return { code: 0, stdout: tools[cmd] as string, stderr: '' };
  };
}

test('detectBackend follows the host: nf_tables + nft → nft, nf_tables alone → iptables-nft, legacy → iptables-legacy', async () => {
  const nftV = 'nftables v1.0.6 (Lester Gooch #5)\n';
  assert.equal(await detectBackend('auto', fakeHost({ iptables: 'iptables v1.8.9 (nf_tables)\n', nft: nftV })), 'nft');
  assert.equal(await detectBackend('auto', fakeHost({ iptables: 'iptables v1.8.9 (nf_tables)\n' })), 'iptables-nft');
  assert.equal(await detectBackend('auto', fakeHost({ iptables: 'iptables v1.8.7 (legacy)\n', nft: nftV })), 'iptables-legacy');
  assert.equal(await detectBackend('auto', fakeHost({ iptables: 'iptables v1.6.1\n' })), 'iptables-legacy', 'old builds have no suffix');
  assert.equal(await detectBackend('auto', fakeHost({ nft: nftV })), 'nft');
  await assert.rejects(detectBackend('auto', fakeHost({})), (e: unknown) => e instanceof FirewallError && /neither iptables nor nft/.test(e.message));
  await assert.rejects(detectBackend('nft', fakeHost({ iptables: 'iptables v1.8.9 (nf_tables)\n' })), /nft is not installed/);
  assert.equal(await detectBackend('iptables-legacy', fakeHost({ 'iptables-legacy': 'iptables v1.8.9 (legacy)\n' })), 'iptables-legacy');
  await assert.rejects(detectBackend('iptables-legacy', fakeHost({ iptables: 'iptables v1.8.9 (nf_tables)\n' })), /"iptables-legacy" is not available/);
  assert.equal(iptablesVariant('something else'), null);
});

test('runCommand: exit codes are results, stdin is passed, a missing binary and a timeout are clear', async () => {
  const r = await runCommand('sh', ['-c', 'cat; echo oops >&2; exit 3'], { input: 'hello' });
  assert.deepEqual(r, { code: 3, stdout: 'hello', stderr: 'oops\n' });
  await assert.rejects(runCommand('no-such-tool-ca-fw', []), (e: unknown) => e instanceof CommandNotFoundError && /command not found/.test(e.message));
  const slow = await runCommand('sleep', ['5'], { timeoutMs: 100 });
  assert.equal(slow.code, TIMEOUT_EXIT);
  assert.match(slow.stderr, /timed out after 100 ms/);
});

test('guardBaseline: only endpoints reachable before are checked; none reachable → skipped with the reasons', () => {
  const a = { host: '192.0.2.1', port: 443 };
  const b = { host: '2001:db8::1', port: 1883 };
  assert.deepEqual(guardBaseline([{ endpoint: a, reachable: true, detail: 'ok' }, { endpoint: b, reachable: false, detail: 'ETIMEDOUT' }]), { endpoints: [a], skipped: null });
  const skipped = guardBaseline([{ endpoint: b, reachable: false, detail: 'ECONNREFUSED' }]);
  assert.deepEqual(skipped.endpoints, []);
  assert.match(skipped.skipped ?? '', /unreachable before applying \(\[2001:db8::1\]:1883: ECONNREFUSED\)/);
  assert.match(guardBaseline([]).skipped ?? '', /no controller endpoint/);
});

test('guardCheck retries a failing endpoint until the deadline, and passes once it answers', async () => {
  const e = { host: 'h', port: 1 };
  let n = 0;
  const flaky: ProbeFn = async (eps) => eps.map((endpoint) => ({ endpoint, reachable: ++n >= 3, detail: n >= 3 ? 'ok' : 'ECONNRESET' }));
  assert.deepEqual(await guardCheck([e], 2000, flaky, 10), []);
  assert.equal(n, 3);
  const dead: ProbeFn = async (eps) => eps.map((endpoint) => ({ endpoint, reachable: false, detail: 'ETIMEDOUT' }));
  const started = Date.now();
  const failures = await guardCheck([e], 200, dead, 20);
  assert.equal(failures.length, 1);
  assert.equal(failures[0]?.detail, 'ETIMEDOUT');
  assert.ok(Date.now() - started < 1000);
});

test('probeEndpoints makes real connections: a listener connects, a closed port does not', async () => {
  const server = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const open = (server.address() as net.AddressInfo).port;
  server.close();
  const live = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  await new Promise((r) => live.once('listening', r));
  try {
    const port = (live.address() as net.AddressInfo).port;
    const [ok, closed] = await probeEndpoints([{ host: '127.0.0.1', port }, { host: '127.0.0.1', port: open }], 500);
    assert.equal(ok?.reachable, true);
    assert.equal(closed?.reachable, false);
    assert.equal(closed?.detail, 'ECONNREFUSED');
  } finally {
    live.close();
  }
});

test('DriftLogThrottle: the same difference once per window, a new one at once', () => {
  const th = new DriftLogThrottle(1000);
  assert.equal(th.admit('x', 0), 0);
  assert.equal(th.admit('x', 500), null);
  assert.equal(th.admit('y', 600), 0);
  assert.equal(th.admit('x', 900), null);
  assert.equal(th.admit('x', 1001), 2, 'reports how many were suppressed');
});

test('endpointsFromUrls: host and port of payload/broker URLs, default ports, IPv6, deduplicated', () => {
  assert.deepEqual(endpointsFromUrls(['https://ctl.example/p?token=x', 'mqtts://[2001:db8::5]/', 'http://ctl.example:8080/', 'https://ctl.example/other', 'not a url']), [
    { host: 'ctl.example', port: 443 },
    { host: '2001:db8::5', port: 8883 },
    { host: 'ctl.example', port: 8080 },
  ]);
});

test('FirewallKeeper: start() schedules checks on the injected clock, heals through the ops, stop() ends it and removes nothing', async () => {
  const timers: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  const clock: Clock = {
    now: () => 1_700_000_000_000,
    setTimeout: (fn, ms) => {
      const t = { fn, ms, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimeout: (h) => void ((h as { cleared: boolean }).cleared = true),
  };
  const good = 'table inet cartridge_agent {\n}\n';
  let kernel: string | null = null; // drifted: our table is gone
  const calls: string[] = [];
  const ops: FirewallOps = {
    backend: 'nft',
    dryRun: async () => undefined,
    apply: async () => void (calls.push('apply'), (kernel = good)),
    snapshot: async () => ({ backend: 'nft', table: kernel }),
    restore: async () => undefined,
    readBack: async () => kernel,
    snapshotReadBack: (s) => (s.backend === 'nft' ? s.table : null),
    remove: async () => void calls.push('remove'),
  };
  const rendered = { backend: 'nft' as const, nft: good, ruleCount: 0, digest: 'd' };
  const applied: AppliedFirewall = { version: 1, backend: 'nft', digest: 'd', ruleCount: 0, rendered, readBack: good, fingerprint: fingerprint(good), appliedAt: 'then' };
  const states: string[] = [];
  const keeper = new FirewallKeeper({ runner: async () => assert.fail('no commands: ops injected'), applied, intervalSeconds: 30, log: silentLogger(), clock, ops, onState: (s) => states.push(s.lastDrift ?? '') });
  keeper.start();
  keeper.start(); // idempotent
  assert.equal(timers.length, 1);
  assert.equal(timers[0]?.ms, 30_000);
  timers[0]?.fn();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, ['apply']);
  assert.equal(keeper.state.lastDrift, 'all of our rules are gone (table/chain and jumps absent)');
  assert.equal(keeper.state.lastDriftAt, new Date(1_700_000_000_000).toISOString());
  assert.equal(states.length, 1);
  assert.equal(timers.length, 2, 'the next check is scheduled after this one finished');
  keeper.stop();
  assert.equal(timers[1]?.cleared, true);
  assert.ok(!calls.includes('remove'), 'stopping never removes rules');
  assert.equal((await keeper.checkOnce()).drifted, false);
});

/** One enforce (`firewall apply`, guard off) on a fake host through a fresh runner: the commands it ran. */
async function enforceCalls(host: FakeFirewallHost, root: string, firewall: Record<string, unknown> = {}, payload = new Map([['PORTS', '8080']])): Promise<string[]> {
  const from = host.calls.length;
  const config = parseConfig({ firewall: { mode: 'enforce', guard: { enabled: false }, ...firewall } });
  await applyFirewall({ config, paths: new RootedPaths(root), log: silentLogger(), runner: host.runner(), payloadVars: payload, controllerEndpoints: [] });
  return host.calls.slice(from);
}

const NFT_LIST = 'nft -s list table inet cartridge_agent';

test('enforce on nft: iptables -V beside one listing, one nft -f, one read-back; unchanged: the listing alone', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-seq-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const host = new FakeFirewallHost('nft');
  // No separate dry run, no `nft --version` (the listing answers whether nft is there), one read-back.
  assert.deepEqual(await enforceCalls(host, root), ['iptables -V', NFT_LIST, 'nft -f -', NFT_LIST]);
  assert.match(host.table ?? '', /tcp dport 8080 accept/);
  assert.deepEqual(await enforceCalls(host, root), ['iptables -V', NFT_LIST], 'unchanged: nothing applied');
  assert.deepEqual(await enforceCalls(host, root, {}, new Map([['PORTS', '9090']])), ['iptables -V', NFT_LIST, 'nft -f -', NFT_LIST]);
  // firewall.backend names the backend: no detection at all; the listing shows nft is there.
  assert.deepEqual(await enforceCalls(host, root, { backend: 'nft' }, new Map([['PORTS', '7070']])), [NFT_LIST, 'nft -f -', NFT_LIST]);
  // Within one process the tools' answers are kept: the same runner asks `iptables -V` once.
  const runner = host.runner();
  const config = parseConfig({ firewall: { mode: 'enforce', guard: { enabled: false } } });
  const from = host.calls.length;
  for (const ports of ['1', '2']) await applyFirewall({ config, paths: new RootedPaths(root), log: silentLogger(), runner, payloadVars: new Map([['PORTS', ports]]), controllerEndpoints: [] });
  assert.deepEqual(host.calls.slice(from), ['iptables -V', NFT_LIST, 'nft -f -', NFT_LIST, NFT_LIST, 'nft -f -', NFT_LIST]);
});

test('enforce on nft without nft installed but configured: the error says so', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-seq-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  await assert.rejects(enforceCalls(new FakeFirewallHost('iptables-nft'), root, { backend: 'nft' }), (e: unknown) => e instanceof FirewallError && /firewall\.backend is "nft" but nft is not installed/.test(e.message));
});

test('enforce on iptables-nft: detection beside the nft probe, both families listed, applied and read back side by side', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-seq-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const host = new FakeFirewallHost('iptables-nft');
  const list = ['iptables-nft -w 5 -t filter -S', 'ip6tables-nft -w 5 -t filter -S'];
  const restore = ['iptables-nft-restore -w 5 --noflush', 'ip6tables-nft-restore -w 5 --noflush'];
  // Nothing recorded: nft is the likely backend, so its listing is tried (it is not installed).
  assert.deepEqual(await enforceCalls(host, root), ['iptables -V', NFT_LIST, 'iptables-nft -V', ...list, ...restore, ...list]);
  assert.equal(host.families.ipv4.jumps, 1);
  assert.equal(host.families.ipv6.jumps, 1);
  assert.ok(host.families.ipv4.chain?.some((l) => l.includes('--dport 8080')));
  // Recorded iptables-nft: that backend is listed beside the detection; unchanged: nothing more.
  assert.deepEqual(await enforceCalls(host, root), ['iptables-nft -V', 'iptables -V', 'nft --version', ...list]);
  assert.deepEqual(await enforceCalls(host, root, {}, new Map([['PORTS', '9090']])), ['iptables-nft -V', 'iptables -V', 'nft --version', ...list, ...restore, ...list]);
});
