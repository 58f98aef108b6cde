/**
 * Port allowlist types shared by the pure core (allowlist parsing, rendering) and the I/O
 * shell (backend detection, apply, drift). See docs/firewall.md.
 */

export type Family = 'ipv4' | 'ipv6';
export type Protocol = 'tcp' | 'udp';

export interface PortRange {
  from: number;
  /** Equal to `from` for a single port. */
  to: number;
}

/** One inbound allowance. No `source`: any source, both families. */
export interface AllowRule {
  proto: Protocol;
  ports: PortRange;
  /** Source CIDR, normalised (e.g. "10.0.0.0/8", "2001:db8::/32"); its family limits the rule. */
  source?: { family: Family; cidr: string };
  /** Where the rule came from, e.g. `payload PORTS` or `config firewall.extraRules[2]` (coarse on purpose: it goes into rule comments, which must not change when the payload is reordered). */
  origin: string;
}

/** Everything the renderer needs: deduplicated rules in a stable order plus fixed options. */
export interface FirewallPolicy {
  rules: AllowRule[];
  allowIcmpEcho: boolean;
  /** The fail-closed baseline (no payload allowlist yet): only the final drop's comment says so. */
  baseline?: boolean;
}

/**
 * nft: native nftables, one `inet` table applied with `nft -f`.
 * iptables-nft / iptables-legacy: an own chain applied with `iptables-restore --noflush`
 * (+ ip6tables-restore) of that variant.
 */
export type Backend = 'nft' | 'iptables-nft' | 'iptables-legacy';

/** Fixed names: the agent only ever touches these. */
export const NFT_TABLE = 'cartridge_agent'; // table inet cartridge_agent
export const IPT_CHAIN = 'CARTRIDGE-INPUT'; // in table filter, jumped to from INPUT

export interface RenderedRuleset {
  backend: Backend;
  /** nft backend: the whole `nft -f` script (one transaction, both families). */
  nft?: string;
  /** iptables backends: iptables-restore input for IPv4 and IPv6 (one transaction each). */
  ipv4?: string;
  ipv6?: string;
  /** Number of rules in our chain(s), for status and health. */
  ruleCount: number;
  /** sha256 hex of the rendered text(s): identifies what was applied. */
  digest: string;
}

/** Reported in status and (later) health: what the firewall is doing. */
export interface FirewallState {
  mode: 'enforce' | 'plan' | 'off';
  backend: Backend | null;
  /** Digest of the ruleset applied (enforce) or planned (plan). */
  digest: string | null;
  ruleCount: number;
  appliedAt: string | null;
  lastDriftAt: string | null;
  lastDrift: string | null;
  lastError: string | null;
}
