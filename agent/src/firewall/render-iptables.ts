/**
 * iptables backends (iptables-nft and iptables-legacy render the same text): input for
 * `iptables-restore -w --noflush` and `ip6tables-restore -w --noflush`, one transaction per
 * family, touching only our chain in table filter.
 *
 *  - `:CARTRIDGE-INPUT - [0:0]` creates the chain or, if it exists, flushes just it; with
 *    --noflush nothing else in the table is touched, so re-applying rebuilds our chain
 *    idempotently and other tools' chains and rules survive. INPUT's policy is not declared,
 *    so it is left as it is.
 *  - The jump from INPUT is not here: the I/O side inserts `-I INPUT 1 -j CARTRIDGE-INPUT`
 *    only when `iptables -S INPUT` shows it missing, in the same restore (renderJumpRule gives its iptables-save form), so we
 *    never reorder INPUT or fight other tools for position 1.
 *  - Allowed traffic `-j RETURN`s instead of ACCEPT: INPUT goes on after our jump, so rules
 *    that follow it (a ban appended later, Docker, kube) still apply, and INPUT's own rules
 *    and policy decide the fate of what we allow. Consequence for operators: an INPUT policy
 *    of DROP with no ACCEPT rules of its own drops allowed traffic too. fail2ban inserts its
 *    jump at the top of INPUT: its ban runs before our chain, or after our RETURN if we were
 *    inserted later — either way the banned client is dropped. Everything not allowed hits our
 *    final DROP, whatever comes after.
 *
 * Every rule is written exactly as `iptables-save` prints it back (explicit `-m tcp`, `-s`
 * before `-p`, numeric ICMP types, RELATED,ESTABLISHED order), on both nf_tables and legacy,
 * so the drift check can compare read-back lines with rendered lines; the integration test
 * holds us to that.
 */
import { denyComment, RENDER_HEADER, ruleComment, rulesForFamily } from './render-common';
import { IPT_CHAIN, type AllowRule, type Family, type FirewallPolicy } from './types';

export interface RenderedIptables {
  /** The whole restore file. */
  text: string;
  /** Just our `-A CARTRIDGE-INPUT …` lines, as iptables-save prints them. */
  ruleLines: string[];
}

const A = `-A ${IPT_CHAIN}`;

export function renderIptables(policy: FirewallPolicy, family: Family): RenderedIptables {
  const ruleLines = [
    `${A} -i lo -j RETURN`,
    `${A} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
    `${A} -m conntrack --ctstate INVALID -j DROP`,
    ...(family === 'ipv4' ? ipv4Infrastructure(policy.allowIcmpEcho) : ipv6Infrastructure(policy.allowIcmpEcho)),
    ...rulesForFamily(policy, family).map(iptablesAllowRule),
    `${A} -m comment --comment "${denyComment(policy)}" -j DROP`,
  ];
  const text = [RENDER_HEADER, '*filter', `:${IPT_CHAIN} - [0:0]`, ...ruleLines, 'COMMIT', ''].join('\n');
  return { text, ruleLines };
}

/** The jump from INPUT to our chain, as `iptables-save` prints it (for presence checks). */
export function renderJumpRule(): string {
  return `-A INPUT -j ${IPT_CHAIN}`;
}

/** Arguments after `iptables -w 5 -C|-D` (check/delete) or, with `1` inserted, `-I`. */
export const JUMP_RULE_ARGS: readonly string[] = ['INPUT', '-j', IPT_CHAIN];

function ipv4Infrastructure(allowEcho: boolean): string[] {
  const icmp = (type: number) => `${A} -p icmp -m icmp --icmp-type ${type} -j RETURN`;
  return [
    icmp(3), // destination-unreachable, including frag-needed (path MTU discovery)
    icmp(11), // time-exceeded
    icmp(12), // parameter-problem
    ...(allowEcho ? [icmp(8)] : []), // echo-request
    // DHCP renewals arrive over the UDP socket once leased (the first exchange uses a raw
    // socket that netfilter never sees).
    `${A} -p udp -m udp --sport 67 --dport 68 -j RETURN`,
  ];
}

function ipv6Infrastructure(allowEcho: boolean): string[] {
  const icmp6 = (type: number, extra = '') => `${A} -p ipv6-icmp -m icmp6 --icmpv6-type ${type}${extra} -j RETURN`;
  return [
    icmp6(1), // destination-unreachable
    icmp6(2), // packet-too-big (path MTU discovery)
    icmp6(3), // time-exceeded
    icmp6(4), // parameter-problem
    ...(allowEcho ? [icmp6(128)] : []), // echo-request
    // Neighbour discovery is untracked by conntrack, so ESTABLISHED never covers it; hop
    // limit 255 proves the sender is on-link. Redirects (137) are left out.
    icmp6(134, ' -m hl --hl-eq 255'), // router advertisement
    icmp6(135, ' -m hl --hl-eq 255'), // neighbour solicitation
    icmp6(136, ' -m hl --hl-eq 255'), // neighbour advertisement
    // MLD queries: unanswered, MLD-snooping switches stop forwarding our solicited-node
    // multicast, which breaks neighbour discovery.
    `${A} -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 130 -m hl --hl-eq 1 -j RETURN`,
    `${A} -s fe80::/10 -p udp -m udp --sport 547 --dport 546 -j RETURN`, // DHCPv6 replies
  ];
}

function iptablesAllowRule(rule: AllowRule): string {
  // A /0 source only limits the family, which the per-family file already does; iptables-save
  // would print the rule without `-s`, so write it without.
  const source = rule.source && !rule.source.cidr.endsWith('/0') ? ` -s ${rule.source.cidr}` : '';
  const ports = rule.ports.from === rule.ports.to ? `${rule.ports.from}` : `${rule.ports.from}:${rule.ports.to}`;
  const p = rule.proto;
  return `${A}${source} -p ${p} -m ${p} --dport ${ports} -m comment --comment "${ruleComment(rule.origin)}" -j RETURN`;
}
