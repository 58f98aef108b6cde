/**
 * Native nftables: one `inet` table (IPv4 and IPv6 in one chain), applied with `nft -f` as
 * ONE kernel transaction.
 *
 * Replacing only our table, idempotently, whether or not it exists yet:
 *     table inet cartridge_agent {}          declare (a no-op if it exists)
 *     delete table inet cartridge_agent      so this can never fail with "No such file"
 *     table inet cartridge_agent { … }       the full new table
 * All three lines are one transaction: nobody ever sees the table missing, a bad rule
 * anywhere aborts the lot and the old table stays, and no other table is touched. Deleting
 * (rather than `flush table`) also replaces the chain definition and any future sets.
 *
 * Why `priority filter + 10` and `accept` (not `return`) is still "allowed traffic returns":
 * every base chain on the input hook sees the packet, in priority order. `accept` ends only
 * OUR chain — the packet still traverses every other table's chains — while `drop` anywhere
 * is final. So our accepts cannot bypass anyone's ban, and verdicts do not depend on the
 * order. We still run after the usual filter chains (iptables-nft's INPUT and fail2ban's
 * table sit at filter = 0 or just below) so their bans and log rules see the packet first,
 * and well after conntrack (-200) so `ct state` is known.
 *
 * The table text (`renderNftTable`) is written exactly as `nft -s list table inet
 * cartridge_agent` prints it back (tabs, `icmp type` without `meta nfproto`, symbolic
 * priority), so the drift check can compare read-back and rendered text directly; the
 * integration test holds us to that.
 */
import { denyComment, RENDER_HEADER, ruleComment } from './render-common';
import { NFT_TABLE, type AllowRule, type FirewallPolicy } from './types';

export const NFT_CHAIN = 'input';

export interface RenderedNft {
  /** The whole `nft -f` script. */
  script: string;
  /** Just `table inet cartridge_agent { … }`, as `nft -s list table` prints it. */
  table: string;
  ruleCount: number;
}

export function renderNft(policy: FirewallPolicy): RenderedNft {
  const rules = nftChainRules(policy);
  const table = [
    `table inet ${NFT_TABLE} {`,
    `\tchain ${NFT_CHAIN} {`,
    '\t\ttype filter hook input priority filter + 10; policy accept;',
    ...rules.map((r) => `\t\t${r}`),
    '\t}',
    '}',
    '',
  ].join('\n');
  const script = [RENDER_HEADER, `table inet ${NFT_TABLE} {}`, `delete table inet ${NFT_TABLE}`, table].join('\n');
  return { script, table, ruleCount: rules.length };
}

/** `nft -f` input that removes our table, and succeeds whether or not it exists. */
export function renderNftRemoval(): string {
  return `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n`;
}

function nftChainRules(policy: FirewallPolicy): string[] {
  const rules = [
    'iif "lo" accept',
    'ct state established,related accept',
    'ct state invalid drop',
    // Errors: destination-unreachable includes frag-needed (path MTU); RELATED covers the
    // errors of tracked flows, these keep PMTU working for untracked ones.
    'icmp type { destination-unreachable, time-exceeded, parameter-problem } accept',
    'icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept',
  ];
  if (policy.allowIcmpEcho) rules.push('icmp type echo-request accept', 'icmpv6 type echo-request accept');
  rules.push(
    // Neighbour discovery is untracked by conntrack, so ESTABLISHED never covers it; without
    // it IPv6 dies once neighbour caches expire. Hop limit 255 proves the sender is on-link
    // (routers decrement it). Redirects are left out: a host does not need them.
    'icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept',
    // MLD queries (link-local source, hop limit 1): without answers, MLD-snooping switches
    // stop forwarding our solicited-node multicast, which breaks neighbour discovery.
    'ip6 saddr fe80::/10 icmpv6 type mld-listener-query ip6 hoplimit 1 accept',
    // DHCP renewals arrive over the UDP socket once leased (the initial exchange uses a raw
    // socket netfilter never sees).
    'meta nfproto ipv4 udp sport 67 udp dport 68 accept',
    'ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept',
    ...policy.rules.map(nftAllowRule),
    `counter drop comment "${denyComment(policy)}"`,
  );
  return rules;
}

function nftAllowRule(rule: AllowRule): string {
  const source = rule.source ? `${rule.source.family === 'ipv4' ? 'ip' : 'ip6'} saddr ${nftAddress(rule.source)} ` : '';
  const ports = rule.ports.from === rule.ports.to ? `${rule.ports.from}` : `${rule.ports.from}-${rule.ports.to}`;
  return `${source}${rule.proto} dport ${ports} accept comment "${ruleComment(rule.origin)}"`;
}

/** nft prints a host without its /32 or /128; write it that way so read-back compares equal. */
function nftAddress(source: NonNullable<AllowRule['source']>): string {
  const hostPrefix = source.family === 'ipv4' ? '/32' : '/128';
  return source.cidr.endsWith(hostPrefix) ? source.cidr.slice(0, -hostPrefix.length) : source.cidr;
}
