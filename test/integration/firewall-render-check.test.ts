/**
 * Every rendered form checked by the real tools, each in its own throwaway network namespace:
 * `nft -c -f`, `iptables-restore --test --noflush` and `ip6tables-restore --test --noflush`
 * for both iptables variants (nf_tables and legacy). Beyond syntax, the rendering promises
 * (idempotent replace, other tools' tables/chains and INPUT's policy untouched, and read-back
 * text equal to rendered text) are checked by really loading the rules — still in a namespace
 * with no traffic, so it is cheap.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import { parseRule } from '../../agent/src/firewall/allowlist';
import { renderRuleset } from '../../agent/src/firewall/render';
import { renderIptables } from '../../agent/src/firewall/render-iptables';
import { renderNft } from '../../agent/src/firewall/render-nft';
import type { FirewallPolicy } from '../../agent/src/firewall/types';
import { requireCommands, requireRoot } from '../helpers/env';
import { largePolicy, representativePolicy } from '../fixtures/firewall/policies';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** A fresh namespace for the callback, always deleted afterwards. */
async function inNetns(fn: (exec: (cmd: string[], input?: string) => Run) => void | Promise<void>): Promise<void> {
  const name = `ca-fwr-${process.pid}-${randomBytes(3).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  assert.equal(add.status, 0, `ip netns add ${name}: ${add.stderr}`);
  try {
    await fn((cmd, input) => {
      const r = spawnSync('ip', ['netns', 'exec', name, ...cmd], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    });
  } finally {
    spawnSync('ip', ['netns', 'del', name]);
  }
}

function ok(r: Run, what: string): string {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}

const POLICIES: Array<[string, () => FirewallPolicy]> = [
  ['representative', () => representativePolicy()],
  ['no ICMP echo', () => representativePolicy(false)],
  ['empty allowlist', () => ({ rules: [], allowIcmpEcho: false })],
  ['1000 rules', () => largePolicy(1000)],
];

const IPTABLES_VARIANTS = [
  { backend: 'iptables-nft', v4: 'iptables-nft', v6: 'ip6tables-nft' },
  { backend: 'iptables-legacy', v4: 'iptables-legacy', v6: 'ip6tables-legacy' },
] as const;

function canRun(t: TestContext, ...cmds: string[]): boolean {
  return requireRoot(t) && requireCommands(t, 'ip', ...cmds);
}

describe('nft: rendered scripts pass the real nft', () => {
  for (const [label, policy] of POLICIES) {
    it(`nft -c -f accepts the ${label} script`, async (t) => {
      if (!canRun(t, 'nft')) return;
      const script = renderRuleset(policy(), 'nft').nft ?? '';
      await inNetns((exec) => {
        ok(exec(['nft', '-c', '-f', '-'], script), 'nft -c');
      });
    });
  }

  it('create-then-delete replaces only our table, idempotently, and reads back as rendered', async (t) => {
    if (!canRun(t, 'nft')) return;
    const policy = representativePolicy();
    const { script, table } = renderNft(policy);
    const foreign = 'table inet f2b_like {\n\tchain input {\n\t\ttype filter hook input priority filter - 1; policy accept;\n\t\tip saddr 192.0.2.66 drop\n\t}\n}\n';
    await inNetns((exec) => {
      ok(exec(['nft', '-f', '-'], foreign), 'foreign table');
      ok(exec(['nft', '-f', '-'], script), 'first apply (table absent)');
      ok(exec(['nft', '-f', '-'], script), 'second apply (table present)');
      assert.equal(ok(exec(['nft', '-s', 'list', 'table', 'inet', 'cartridge_agent']), 'list'), table);
      assert.equal(ok(exec(['nft', '-s', 'list', 'table', 'inet', 'f2b_like']), 'list foreign'), foreign);
      assert.equal(ok(exec(['nft', 'list', 'tables']), 'tables'), 'table inet f2b_like\ntable inet cartridge_agent\n');

      // A script that fails half-way changes nothing: the old table stays whole.
      const other = renderNft({ rules: [parseRule('tcp/8080', 'x')], allowIcmpEcho: false });
      const broken = other.script.replace('tcp dport 8080', 'tcp dport 70000');
      assert.notEqual(exec(['nft', '-f', '-'], broken).status, 0);
      assert.equal(ok(exec(['nft', '-s', 'list', 'table', 'inet', 'cartridge_agent']), 'list after failure'), table);

      // A different policy replaces the table entirely (no leftover rules).
      ok(exec(['nft', '-f', '-'], other.script), 'apply other');
      assert.equal(ok(exec(['nft', '-s', 'list', 'table', 'inet', 'cartridge_agent']), 'list other'), other.table);
    });
  });
});

for (const variant of IPTABLES_VARIANTS) {
  describe(`${variant.backend}: rendered restore files pass the real tools`, () => {
    for (const [label, policy] of POLICIES) {
      it(`--test --noflush accepts the ${label} IPv4 and IPv6 files`, async (t) => {
        if (!canRun(t, `${variant.v4}-restore`, `${variant.v6}-restore`)) return;
        const rendered = renderRuleset(policy(), variant.backend);
        await inNetns((exec) => {
          ok(exec([`${variant.v4}-restore`, '--test', '--noflush'], rendered.ipv4), `${variant.v4}-restore --test`);
          ok(exec([`${variant.v6}-restore`, '--test', '--noflush'], rendered.ipv6), `${variant.v6}-restore --test`);
        });
      });
    }

    it('--test refuses what the kernel would refuse (the check can fail)', async (t) => {
      if (!canRun(t, `${variant.v4}-restore`)) return;
      const text = renderIptables({ rules: [parseRule('tcp/8080', 'x')], allowIcmpEcho: true }, 'ipv4').text.replace('--dport 8080', '--dport 70000');
      await inNetns((exec) => {
        assert.notEqual(exec([`${variant.v4}-restore`, '--test', '--noflush'], text).status, 0);
      });
    });

    it('re-applying rebuilds only our chain, leaves INPUT and foreign chains alone, and reads back as rendered', async (t) => {
      if (!canRun(t, `${variant.v4}-restore`, `${variant.v6}-restore`, `${variant.v4}-save`, `${variant.v6}-save`)) return;
      const policy = representativePolicy();
      await inNetns((exec) => {
        for (const [family, tool] of [['ipv4', variant.v4], ['ipv6', variant.v6]] as const) {
          const source = family === 'ipv4' ? '192.0.2.66' : '2001:db8::66';
          // A fail2ban-like setup and a DROP policy on INPUT, made before us.
          ok(exec([tool, '-w', '5', '-N', 'f2b-like']), 'foreign chain');
          ok(exec([tool, '-w', '5', '-A', 'f2b-like', '-s', source, '-j', 'DROP']), 'foreign rule');
          ok(exec([tool, '-w', '5', '-I', 'INPUT', '1', '-j', 'f2b-like']), 'foreign jump');
          ok(exec([tool, '-w', '5', '-P', 'INPUT', 'DROP']), 'INPUT policy');
          const before = ok(exec([`${tool}-save`, '-t', 'filter']), 'save before');

          const { text, ruleLines } = renderIptables(policy, family);
          ok(exec([`${tool}-restore`, '-w', '5', '--noflush'], text), 'first apply');
          ok(exec([`${tool}-restore`, '-w', '5', '--noflush'], text), 'second apply');
          const after = ok(exec([`${tool}-save`, '-t', 'filter']), 'save after');
          assert.deepEqual(after.split('\n').filter((l) => l.startsWith('-A CARTRIDGE-INPUT ')), ruleLines, 'read-back equals rendered');
          // Everything that is not ours is exactly as it was (INPUT policy, foreign chain and jump).
          const notOurs = (save: string) => save.split('\n').filter((l) => !l.startsWith('#') && !/CARTRIDGE-INPUT/.test(l));
          assert.deepEqual(notOurs(after), notOurs(before));
          assert.match(after, /^:INPUT DROP /m);
        }
      });
    });
  });
}
