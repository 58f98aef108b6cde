import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseRule } from '../../agent/src/firewall/allowlist';
import { renderRuleset } from '../../agent/src/firewall/render';
import { MAX_COMMENT_LENGTH, ruleComment } from '../../agent/src/firewall/render-common';
import { JUMP_RULE_ARGS, renderIptables, renderJumpRule } from '../../agent/src/firewall/render-iptables';
import { renderNft, renderNftRemoval } from '../../agent/src/firewall/render-nft';
import type { FirewallPolicy } from '../../agent/src/firewall/types';
import { largePolicy, representativePolicy } from '../fixtures/firewall/policies';

const GOLDEN_DIR = path.join(__dirname, '..', 'fixtures', 'firewall', 'golden');

/** Compare with a golden file; UPDATE_GOLDEN=1 rewrites it (review the diff before committing). */
function assertGolden(name: string, actual: string | undefined): void {
  assert.ok(actual !== undefined, `${name}: nothing rendered`);
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `differs from golden file ${file}`);
}

const POLICY = representativePolicy();

describe('golden rulesets', () => {
  it('nft', () => assertGolden('ruleset.nft', renderRuleset(POLICY, 'nft').nft));
  it('iptables IPv4', () => assertGolden('ruleset.v4.rules', renderRuleset(POLICY, 'iptables-nft').ipv4));
  it('iptables IPv6', () => assertGolden('ruleset.v6.rules', renderRuleset(POLICY, 'iptables-nft').ipv6));
  it('without ICMP echo (nft)', () => assertGolden('ruleset-no-echo.nft', renderRuleset(representativePolicy(false), 'nft').nft));
});

/** Index of the first line matching, failing if none does. */
function lineIndex(lines: string[], pattern: RegExp): number {
  const i = lines.findIndex((l) => pattern.test(l));
  assert.ok(i >= 0, `no line matches ${pattern}`);
  return i;
}

describe('iptables rendering', () => {
  for (const family of ['ipv4', 'ipv6'] as const) {
    it(`${family}: only our chain, fixed rules in order, allowlist RETURNs, final DROP`, () => {
      const { text, ruleLines } = renderIptables(POLICY, family);
      const lines = text.trimEnd().split('\n');
      assert.equal(lines[1], '*filter');
      assert.equal(lines[2], ':CARTRIDGE-INPUT - [0:0]');
      assert.equal(lines.at(-1), 'COMMIT');
      assert.ok(text.endsWith('COMMIT\n'));
      // Nothing but our chain: no other chain declared (that would flush it or set INPUT's
      // policy), no -F/-X/-P/-I, no jump from INPUT.
      assert.deepEqual(lines.filter((l) => l.startsWith(':')), [':CARTRIDGE-INPUT - [0:0]']);
      for (const l of lines.slice(3, -1)) assert.match(l, /^-A CARTRIDGE-INPUT /);
      assert.deepEqual(ruleLines, lines.slice(3, -1));
      const order = [/ -i lo -j RETURN$/, /--ctstate RELATED,ESTABLISHED -j RETURN$/, /--ctstate INVALID -j DROP$/, /icmp/, /--sport (67|547)/, /--dport 22 .*alwaysAllow/]
        .map((p) => lineIndex(ruleLines, p));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), 'fixed rules out of order');
      assert.equal(ruleLines.at(-1), '-A CARTRIDGE-INPUT -m comment --comment "cartridge-agent: default deny" -j DROP');
      // Allowed traffic never ACCEPTs (other tools' bans after our chain must still apply).
      assert.ok(!text.includes('ACCEPT'));
    });
  }

  it('splits sourced rules by family and keeps unsourced rules in both', () => {
    const v4 = renderIptables(POLICY, 'ipv4').text;
    const v6 = renderIptables(POLICY, 'ipv6').text;
    assert.match(v4, /-s 10\.0\.0\.0\/8 -p tcp -m tcp --dport 5432 /);
    assert.doesNotMatch(v6, /10\.0\.0\.0/);
    assert.match(v6, /-s 2001:db8::\/32 -p tcp -m tcp --dport 443 /);
    assert.doesNotMatch(v4, /2001:db8/);
    for (const t of [v4, v6]) assert.match(t, /-p tcp -m tcp --dport 8000:8100 -m comment --comment "cartridge-agent: payload FIREWALL_ALLOW" -j RETURN/);
    // A /0 source only restricts the family: written without -s, as iptables-save prints it.
    assert.match(v4, /-A CARTRIDGE-INPUT -p tcp -m tcp --dport 9100 /);
    assert.doesNotMatch(v6, /--dport 9100 /);
    assert.match(v6, /-A CARTRIDGE-INPUT -p tcp -m tcp --dport 9101 /);
    assert.match(v6, /-s ::0\.2\.0\.3\/128 /);
    // ICMP of the right family only.
    assert.doesNotMatch(v4, /icmp6|ipv6-icmp|fe80/);
    assert.doesNotMatch(v6, /-p icmp |--sport 67 /);
  });

  it('echo-request only when allowed', () => {
    assert.match(renderIptables(POLICY, 'ipv4').text, /--icmp-type 8 -j RETURN/);
    assert.match(renderIptables(POLICY, 'ipv6').text, /--icmpv6-type 128 -j RETURN/);
    const closed = representativePolicy(false);
    assert.doesNotMatch(renderIptables(closed, 'ipv4').text, /--icmp-type 8 /);
    assert.doesNotMatch(renderIptables(closed, 'ipv6').text, /--icmpv6-type 128 /);
  });

  it('IPv6 neighbour discovery requires hop limit 255', () => {
    const v6 = renderIptables(POLICY, 'ipv6').ruleLines;
    for (const type of [134, 135, 136]) {
      assert.match(v6[lineIndex(v6, new RegExp(`--icmpv6-type ${type} `))] ?? '', /-m hl --hl-eq 255 -j RETURN$/);
    }
    assert.equal(v6.filter((l) => / --icmpv6-type 137 /.test(l)).length, 0, 'redirects stay blocked');
  });

  it('jump rule helpers', () => {
    assert.equal(renderJumpRule(), '-A INPUT -j CARTRIDGE-INPUT');
    assert.deepEqual(JUMP_RULE_ARGS, ['INPUT', '-j', 'CARTRIDGE-INPUT']);
  });
});

describe('nft rendering', () => {
  it('replaces only our table in one script, idempotently', () => {
    const { script, table } = renderNft(POLICY);
    const lines = script.split('\n');
    assert.equal(lines[1], 'table inet cartridge_agent {}');
    assert.equal(lines[2], 'delete table inet cartridge_agent');
    assert.ok(script.endsWith(table));
    assert.doesNotMatch(script, /flush ruleset|flush table|\btable (ip|ip6|arp|bridge|netdev) /);
    assert.equal(script.match(/^table /gm)?.length, 2);
    assert.match(table, /^\t\ttype filter hook input priority filter \+ 10; policy accept;$/m);
    assert.equal(renderNftRemoval(), 'table inet cartridge_agent {}\ndelete table inet cartridge_agent\n');
  });

  it('fixed rules first and in order, allowlist next, final drop last', () => {
    const rules = renderNft(POLICY).table.split('\n').filter((l) => l.startsWith('\t\t') && !l.includes('type filter hook'));
    const order = [/^\t\tiif "lo" accept$/, /^\t\tct state established,related accept$/, /^\t\tct state invalid drop$/, /icmp type/, /nd-neighbor-solicit.* ip6 hoplimit 255 accept$/, /udp sport 67 udp dport 68/, /udp sport 547 udp dport 546/, /tcp dport 22 accept/]
      .map((p) => lineIndex(rules, p));
    assert.deepEqual(order, [...order].sort((a, b) => a - b));
    assert.equal(rules.at(-1), '\t\tcounter drop comment "cartridge-agent: default deny"');
    assert.equal(rules.length, renderNft(POLICY).ruleCount);
    assert.ok(rules.includes('\t\tip saddr 10.0.0.0/8 tcp dport 5432 accept comment "cartridge-agent: payload FIREWALL_ALLOW"'));
    assert.ok(rules.includes('\t\tip6 saddr 2001:db8::/32 tcp dport 443 accept comment "cartridge-agent: payload FIREWALL_ALLOW"'));
    // Hosts are written without /32 and /128, as nft prints them.
    assert.ok(rules.includes('\t\tip saddr 192.0.2.7 udp dport 53 accept comment "cartridge-agent: payload FIREWALL_ALLOW"'));
    assert.ok(rules.includes('\t\tip6 saddr 2001:db8::53 udp dport 53 accept comment "cartridge-agent: payload FIREWALL_ALLOW"'));
    assert.ok(rules.includes('\t\ttcp dport 8000-8100 accept comment "cartridge-agent: payload FIREWALL_ALLOW"'));
  });
});

describe('comments', () => {
  it('hostile payload text cannot reach a rule comment', () => {
    const { nft, ipv4 = '', ipv6 = '' } = { ...renderRuleset(POLICY, 'nft'), ...renderRuleset(POLICY, 'iptables-legacy') };
    for (const text of [nft ?? '', ipv4, ipv6]) {
      for (const m of text.matchAll(/comment "([^"\n]*)"/g)) {
        assert.match(m[1] ?? '', /^cartridge-agent: [A-Za-z0-9 _.,:;/()[\]=+@-]*$/);
        assert.ok((m[1] ?? '').length <= MAX_COMMENT_LENGTH);
      }
      // Every line is a whole rule: the payload's quote/backslash/backtick did not split one.
      assert.doesNotMatch(text, /we"ird|\\n|`/);
    }
    assert.match(ipv6, /"cartridge-agent: payload PORT_MAPPINGS \(we_ird_na_me\)"/);
  });

  it('long origins are cut to the tools\u2019 limit', () => {
    const c = ruleComment(`payload PORT_MAPPINGS (${'x'.repeat(300)})`);
    assert.equal(c.length, MAX_COMMENT_LENGTH);
    assert.ok(c.endsWith('...'));
  });
});

describe('renderRuleset', () => {
  it('counts rules and digests exactly the rendered text', () => {
    const nft = renderRuleset(POLICY, 'nft');
    assert.equal(nft.backend, 'nft');
    assert.equal(nft.ipv4, undefined);
    assert.equal(nft.digest, createHash('sha256').update(nft.nft ?? '').digest('hex'));
    assert.equal(nft.ruleCount, renderNft(POLICY).ruleCount);

    const ipt = renderRuleset(POLICY, 'iptables-legacy');
    assert.equal(ipt.nft, undefined);
    const v4 = renderIptables(POLICY, 'ipv4');
    const v6 = renderIptables(POLICY, 'ipv6');
    assert.equal(ipt.ruleCount, v4.ruleLines.length + v6.ruleLines.length);
    assert.equal(ipt.digest, createHash('sha256').update(`${v4.text}\0${v6.text}`).digest('hex'));
    // Both iptables variants take the same text.
    assert.deepEqual({ ...renderRuleset(POLICY, 'iptables-nft'), backend: 'iptables-legacy' }, ipt);
  });

  it('is deterministic, and any rule change changes the digest', () => {
    assert.deepEqual(renderRuleset(representativePolicy(), 'nft'), renderRuleset(representativePolicy(), 'nft'));
    const base: FirewallPolicy = { rules: [parseRule('tcp/22', 'a')], allowIcmpEcho: true };
    const digests = new Set(
      [
        base,
        { ...base, allowIcmpEcho: false },
        { ...base, rules: [parseRule('tcp/23', 'a')] },
        { ...base, rules: [parseRule('udp/22', 'a')] },
        { ...base, rules: [parseRule('tcp/22 from 10.0.0.0/8', 'a')] },
        { ...base, rules: [parseRule('tcp/22', 'b')] },
      ].flatMap((p) => [renderRuleset(p, 'nft').digest, renderRuleset(p, 'iptables-nft').digest]),
    );
    assert.equal(digests.size, 12);
  });

  it('an empty allowlist still renders the fixed rules and the final drop', () => {
    const empty: FirewallPolicy = { rules: [], allowIcmpEcho: false };
    const nft = renderNft(empty);
    assert.match(nft.table, /counter drop comment/);
    assert.equal(nft.ruleCount, 10);
    assert.equal(renderIptables(empty, 'ipv4').ruleLines.length, 8);
    assert.equal(renderIptables(empty, 'ipv6').ruleLines.length, 13);
  });

  it('renders 1000 rules quickly', () => {
    const policy = largePolicy(1000);
    const start = process.hrtime.bigint();
    const nft = renderRuleset(policy, 'nft');
    const ipt = renderRuleset(policy, 'iptables-nft');
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(nft.ruleCount, 1000 + 12);
    assert.equal(ipt.ruleCount, 750 + 750 + 9 + 14); // 500 unsourced rules in both files, 250 sourced in each
    assert.ok(ms < 500, `rendering 1000 rules took ${ms} ms`);
  });
});
