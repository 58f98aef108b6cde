/**
 * The firewall's I/O shell against the real kernel, on every backend (nft, iptables-nft,
 * iptables-legacy): two namespaces joined by veth, real listeners in the instance, real TCP
 * and UDP probes from the client over IPv4 and IPv6 (neighbour caches flushed first). A
 * fail2ban-like chain exists before we apply; it must stay intact and keep banning.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { FirewallError } from '../../agent/src/errors';
import { buildPolicy } from '../../agent/src/firewall/allowlist';
import { firewallOps, type FirewallOps } from '../../agent/src/firewall/apply';
import { FirewallKeeper } from '../../agent/src/firewall/keeper';
import { fingerprint } from '../../agent/src/firewall/readback';
import { renderRuleset } from '../../agent/src/firewall/render';
import type { AppliedFirewall } from '../../agent/src/firewall/state';
import type { Backend, RenderedRuleset } from '../../agent/src/firewall/types';
import { requireCommands, requireRoot } from '../helpers/env';
import { NetnsPair, targets, type ProbeOutcome } from '../helpers/netns';

const BANNED = 2222; // allowed by us, banned for the client by the foreign chain
const ALLOWED_TCP = [22, 8080];
const BLOCKED_TCP = [8081, 9000];
const ALLOWED_UDP = 5353;
const BLOCKED_UDP = 5354;

const POLICY = buildPolicy(new Map([['PORTS', `${BANNED}|8080`], ['FIREWALL_ALLOW', `udp/${ALLOWED_UDP}`]]), {
  alwaysAllow: ['tcp/22'],
  extraRules: [],
  allowIcmpEcho: true,
});
/** A different allowlist (adds 9000), for "the previous ruleset stays in force" checks. */
const POLICY_2 = buildPolicy(new Map([['PORTS', `${BANNED}|8080|9000`]]), { alwaysAllow: ['tcp/22'], extraRules: [], allowIcmpEcho: true });

/** The iptables variant that plays fail2ban: for the nft backend, iptables-nft (what fail2ban uses by default). */
const FOREIGN: Record<Backend, [string, string]> = {
  nft: ['iptables-nft', 'ip6tables-nft'],
  'iptables-nft': ['iptables-nft', 'ip6tables-nft'],
  'iptables-legacy': ['iptables-legacy', 'ip6tables-legacy'],
};

const ALL = [...targets('tcp', [...ALLOWED_TCP, BANNED, ...BLOCKED_TCP]), ...targets('udp', [ALLOWED_UDP, BLOCKED_UDP])];

function expectProbes(got: Record<string, ProbeOutcome>, expected: Record<string, ProbeOutcome>, when: string): void {
  const mismatches = Object.entries(expected)
    .filter(([k, v]) => got[k] !== v)
    .map(([k, v]) => `${k}: expected ${v}, got ${got[k]}`);
  assert.deepEqual(mismatches, [], `${when}:\n${mismatches.join('\n')}`);
}

function expectation(open: Array<[string, number]>, blocked: Array<[string, number]>): Record<string, ProbeOutcome> {
  const out: Record<string, ProbeOutcome> = {};
  for (const family of ['ipv4', 'ipv6']) {
    for (const [proto, port] of open) out[`${proto}/${port} ${family}`] = 'open';
    for (const [proto, port] of blocked) out[`${proto}/${port} ${family}`] = 'timeout';
  }
  return out;
}

const UNDER_POLICY = expectation(
  [...ALLOWED_TCP.map((p): [string, number] => ['tcp', p]), ['udp', ALLOWED_UDP]],
  [['tcp', BANNED], ...BLOCKED_TCP.map((p): [string, number] => ['tcp', p]), ['udp', BLOCKED_UDP]],
);

function captureLog() {
  const lines: Array<{ level: number; msg: string; differences?: string[] }> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  return { log, lines };
}

/** What `iptables -S` / `nft list` say about everything that is NOT ours. */
async function foreignState(pair: NetnsPair, backend: Backend): Promise<string> {
  const [v4, v6] = FOREIGN[backend];
  const parts: string[] = [];
  for (const cmd of [v4, v6]) {
    const all = await pair.exec(pair.instance, cmd, ['-S']);
    parts.push(all.split('\n').filter((l) => l && !l.includes('CARTRIDGE-INPUT')).join('\n'));
  }
  return parts.join('\n---\n');
}

async function addFail2banChain(pair: NetnsPair, backend: Backend): Promise<void> {
  const [v4, v6] = FOREIGN[backend];
  for (const [cmd, client] of [[v4, pair.clientV4], [v6, pair.clientV6]] as const) {
    await pair.exec(pair.instance, cmd, ['-N', 'f2b-test']);
    await pair.exec(pair.instance, cmd, ['-A', 'f2b-test', '-s', client, '-j', 'DROP']);
    await pair.exec(pair.instance, cmd, ['-A', 'f2b-test', '-j', 'RETURN']);
    await pair.exec(pair.instance, cmd, ['-I', 'INPUT', '1', '-p', 'tcp', '-m', 'multiport', '--dports', `${BANNED}`, '-j', 'f2b-test']);
  }
}

/** A copy of `rendered` that the tool refuses: a port out of range in the IPv6 text (or the nft script). */
function broken(rendered: RenderedRuleset): RenderedRuleset {
  if (rendered.nft) return { ...rendered, nft: rendered.nft.replace('tcp dport 8080 ', 'tcp dport 70000 '), digest: 'broken' };
  assert.ok(rendered.ipv6?.includes('--dport 8080 '));
  return { ...rendered, ipv6: rendered.ipv6?.replace('--dport 8080 ', '--dport 70000 '), digest: 'broken' };
}

/** Make our rules drift the way an admin or a careless script would. */
async function vandalise(pair: NetnsPair, backend: Backend, how: 'flush' | 'jump' | 'table'): Promise<void> {
  if (backend === 'nft') {
    if (how === 'table') await pair.exec(pair.instance, 'nft', ['delete', 'table', 'inet', 'cartridge_agent']);
    else await pair.exec(pair.instance, 'nft', ['flush', 'chain', 'inet', 'cartridge_agent', 'input']);
    return;
  }
  const [v4, v6] = FOREIGN[backend];
  if (how === 'flush') await pair.exec(pair.instance, v4, ['-F', 'CARTRIDGE-INPUT']);
  else await pair.exec(pair.instance, v6, ['-D', 'INPUT', '-j', 'CARTRIDGE-INPUT']);
}

async function appliedRecord(ops: FirewallOps, rendered: RenderedRuleset): Promise<AppliedFirewall> {
  const readBack = await ops.readBack();
  return { version: 1, backend: ops.backend, digest: rendered.digest, ruleCount: rendered.ruleCount, rendered, readBack, fingerprint: fingerprint(readBack), appliedAt: new Date().toISOString() };
}

const TOOLS: Record<Backend, string[]> = {
  nft: ['nft', 'iptables-nft', 'ip6tables-nft'],
  'iptables-nft': ['iptables-nft-restore', 'ip6tables-nft-restore', 'iptables-nft'],
  'iptables-legacy': ['iptables-legacy-restore', 'ip6tables-legacy-restore', 'iptables-legacy'],
};

for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
  test(`firewall on ${backend}: real packets, foreign chain, idempotence, bad rules, drift, removal`, async (t: TestContext) => {
    if (!requireRoot(t) || !requireCommands(t, 'ip', ...TOOLS[backend])) return;
    const pair = NetnsPair.create();
    try {
      await pair.listen([...ALLOWED_TCP, BANNED, ...BLOCKED_TCP], [ALLOWED_UDP, BLOCKED_UDP]);
      await addFail2banChain(pair, backend);
      const foreignBefore = await foreignState(pair, backend);
      const ops = await firewallOps(backend, pair.runner);
      const rendered = renderRuleset(POLICY, backend);
      let applied!: AppliedFirewall;

      await t.test('before: everything open except the banned port (the listeners and the ban work)', async () => {
        const open = expectation([...ALLOWED_TCP, ...BLOCKED_TCP].map((p): [string, number] => ['tcp', p]), [['tcp', BANNED]]);
        expectProbes(await pair.probe(ALL), { ...open, 'udp/5353 ipv4': 'open', 'udp/5354 ipv6': 'open' }, 'without our firewall');
        assert.equal(await ops.readBack(), null, 'nothing of ours yet');
      });

      await t.test('apply: allowed ports connect, others time out (DROP), IPv4 and IPv6, TCP and UDP; the ban still bites', async () => {
        await ops.dryRun(rendered);
        const before = await ops.snapshot();
        assert.equal(ops.snapshotReadBack(before), null, 'absent is a valid snapshot');
        await ops.apply(rendered, before);
        expectProbes(await pair.probe(ALL), UNDER_POLICY, `under the policy (${backend})`);
        assert.equal(await foreignState(pair, backend), foreignBefore, 'the fail2ban-like chain, its jump and INPUT policy are untouched');
        applied = await appliedRecord(ops, rendered);
        assert.notEqual(applied.readBack, null);
      });

      await t.test('re-applying is idempotent: same read-back, one jump, same order', async () => {
        for (let i = 0; i < 2; i++) await ops.apply(rendered);
        const again = await ops.readBack();
        assert.equal(again, applied.readBack);
        if (backend === 'nft') {
          const tables = await pair.exec(pair.instance, 'nft', ['list', 'tables']);
          assert.equal(tables.split('\n').filter((l) => l.includes('cartridge_agent')).length, 1);
        } else {
          for (const cmd of FOREIGN[backend]) {
            const input = await pair.exec(pair.instance, cmd, ['-S', 'INPUT']);
            assert.equal(input.split('\n').filter((l) => l === '-A INPUT -j CARTRIDGE-INPUT').length, 1, `${cmd}: exactly one jump`);
          }
        }
      });

      await t.test('a ruleset the tool refuses changes nothing and says why', async () => {
        const bad = broken(renderRuleset(POLICY_2, backend));
        await assert.rejects(ops.dryRun(bad), (err: unknown) => err instanceof FirewallError && /dry run/.test(err.message) && err.stderr.length > 0);
        // Straight to apply (no dry run): for iptables IPv4 goes in first, IPv6 fails, IPv4 is rolled back.
        await assert.rejects(ops.apply(bad), (err: unknown) => {
          assert.ok(err instanceof FirewallError, String(err));
          assert.match(err.message, new RegExp(`firewall \\(${backend}\\): apply`));
          assert.ok(err.stderr.length > 0 && err.message.includes(err.stderr.split('\n')[0]?.trim() ?? '\0'), `tool message in the error: ${err.message}`);
          assert.ok(err.ruleset?.includes('70000'), 'the rendered ruleset is attached');
          return true;
        });
        assert.equal(await ops.readBack(), applied.readBack, 'previous rules in force, exactly');
        expectProbes(await pair.probe(ALL), UNDER_POLICY, 'after the refused ruleset (9000 still dropped on both families)');
      });

      await t.test('drift: the keeper detects vandalised rules, says what differed (throttled) and heals', async () => {
        const { log, lines } = captureLog();
        const keeper = new FirewallKeeper({ runner: pair.runner, applied, intervalSeconds: 3600, log, ops });
        assert.equal((await keeper.checkOnce()).drifted, false);

        await vandalise(pair, backend, 'flush');
        const leaked = await pair.probe(targets('tcp', [9000]));
        assert.deepEqual(Object.values(leaked), ['open', backend === 'iptables-nft' || backend === 'iptables-legacy' ? 'timeout' : 'open'], 'the vandalism really opened the port');
        const r1 = await keeper.checkOnce();
        assert.equal(r1.drifted, true);
        assert.equal(r1.healed, true, r1.error ?? '');
        assert.ok(r1.differences.some((d) => d.startsWith('missing')), r1.differences.join('; '));
        assert.equal(await ops.readBack(), applied.readBack);
        const warn = lines.find((l) => l.level === 40);
        assert.ok(warn && warn.msg.includes('missing'), `the log says what differed: ${JSON.stringify(lines)}`);

        // The same vandalism again: healed, but not logged again within the window.
        const warnings = () => lines.filter((l) => l.level === 40).length;
        await vandalise(pair, backend, 'flush');
        assert.equal((await keeper.checkOnce()).healed, true);
        assert.equal(warnings(), 1, 'same difference → throttled');

        // Another kind of drift is logged at once.
        await vandalise(pair, backend, backend === 'nft' ? 'table' : 'jump');
        const r3 = await keeper.checkOnce();
        assert.equal(r3.healed, true, r3.error ?? '');
        assert.ok(r3.differences.length > 0);
        assert.equal(warnings(), 2);
        assert.equal(keeper.state.lastDrift, r3.differences.join('; '));
        assert.equal(await ops.readBack(), applied.readBack);
        expectProbes(await pair.probe(ALL), UNDER_POLICY, 'after healing');
        assert.equal(await foreignState(pair, backend), foreignBefore);
      });

      await t.test('remove: no trace of ours, the foreign chain intact and still banning', async () => {
        await ops.remove();
        await ops.remove(); // idempotent
        assert.equal(await ops.readBack(), null);
        if (backend === 'nft') {
          assert.doesNotMatch(await pair.exec(pair.instance, 'nft', ['list', 'ruleset']), /cartridge_agent/);
        } else {
          for (const cmd of FOREIGN[backend]) assert.doesNotMatch(await pair.exec(pair.instance, cmd, ['-S']), /CARTRIDGE-INPUT/);
        }
        assert.equal(await foreignState(pair, backend), foreignBefore);
        const open = expectation([...ALLOWED_TCP, ...BLOCKED_TCP].map((p): [string, number] => ['tcp', p]), [['tcp', BANNED]]);
        expectProbes(await pair.probe(ALL), open, 'after remove');
      });
    } finally {
      pair.destroy();
    }
  });
}
