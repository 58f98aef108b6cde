/**
 * Source CIDRs for allowlist rules: strict parsing and one canonical spelling per network.
 *
 * Canonical form matters beyond looks: it is the dedup key, the sort key, and exactly what
 * `iptables-save` / `nft list` print back, so the drift check can compare text with text.
 *  - IPv4: dotted quad, no leading zeros (inet_aton reads `010` as octal 8 — refuse, not guess).
 *  - IPv6: as glibc's inet_ntop prints it, i.e. RFC 5952 (lower case, longest run of two or
 *    more zero groups as `::`) except `::a.b.c.d` for IPv4-compatible addresses; embedded
 *    IPv4 allowed on input; zone ids (`%eth0`) refused — they
 *    have no meaning in a firewall rule; IPv4-mapped hosts (`::ffff:a.b.c.d`) refused.
 *  - A bare address is a host: /32 or /128.
 *  - Host bits set (`10.0.0.1/8`) is an error that names the network meant, not a silent
 *    normalisation: the writer probably meant a single host or mistyped the prefix.
 */
import type { Family } from './types';

export interface Cidr {
  family: Family;
  /** Canonical `address/prefix`. */
  cidr: string;
}

/** Thrown with a human detail; callers add where the text came from. */
export class CidrSyntaxError extends Error {}

export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? null : text.slice(slash + 1);
  const family: Family = addrText.includes(':') ? 'ipv6' : 'ipv4';
  const bytes = family === 'ipv4' ? parseIpv4(addrText) : parseIpv6(addrText);
  if (!bytes) throw new CidrSyntaxError(`"${text}" is not an IPv4 or IPv6 address or CIDR`);
  const maxPrefix = bytes.length * 8;
  let prefix = maxPrefix;
  if (prefixText !== null) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
      throw new CidrSyntaxError(`"${text}": prefix length must be 0-${maxPrefix} for ${family === 'ipv4' ? 'IPv4' : 'IPv6'}`);
    }
    prefix = Number(prefixText);
  }
  if (family === 'ipv6' && prefix >= 96 && isV4Mapped(bytes)) {
    // Such sources never arrive as IPv6 on the wire, and the tools print them in mixed
    // notation: refuse rather than write a rule that silently matches nothing.
    throw new CidrSyntaxError(`"${text}" is an IPv4-mapped IPv6 address; write the IPv4 address or CIDR instead`);
  }
  const network = maskBytes(bytes, prefix);
  const canonical = `${formatAddress(network)}/${prefix}`;
  if (network.some((b, i) => b !== bytes[i])) {
    throw new CidrSyntaxError(`"${text}" has host bits set; the network is ${canonical} (or write a host as ${formatAddress(bytes)})`);
  }
  return { family, cidr: canonical };
}

/** Fixed-width key that orders canonical CIDRs numerically (IPv4 before IPv6). */
export function cidrSortKey(cidr: string): string {
  const [addr = '', prefix = '0'] = cidr.split('/');
  const bytes = (addr.includes(':') ? parseIpv6(addr) : parseIpv4(addr)) ?? [];
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${bytes.length === 4 ? '4' : '6'}${hex.padEnd(32, '0')}${prefix.padStart(3, '0')}`;
}

function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null;
    bytes.push(Number(p));
  }
  return bytes;
}

function parseIpv6(text: string): number[] | null {
  if (text.includes('%')) return null;
  let hexText = text;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    // Embedded IPv4 (`64:ff9b::192.0.2.1`): rewrite its four bytes as two hex groups.
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (!v4) return null;
    const [a = 0, b = 0, c = 0, d = 0] = v4;
    hexText = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = hexText.split('::');
  if (halves.length > 2) return null;
  const left = parseGroups(halves[0] ?? '');
  const right = halves.length === 2 ? parseGroups(halves[1] ?? '') : [];
  if (!left || !right) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return null; // `::` stands for at least one zero group
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    if (left.length !== 8) return null;
    groups = left;
  }
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

function parseGroups(s: string): number[] | null {
  if (s === '') return [];
  const out: number[] = [];
  for (const g of s.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    out.push(parseInt(g, 16));
  }
  return out;
}

function isV4Mapped(bytes: number[]): boolean {
  return bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
}

function formatAddress(bytes: number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run of two or more zero groups (the first one on a tie).
  let best = { start: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start === 0 && (best.len === 6 || (best.len === 5 && groups[5] === 0xffff))) {
    // glibc's inet_ntop (which iptables-save and nft print with) writes IPv4-compatible
    // addresses in mixed notation (`::0.2.0.3`); match it so read-back compares equal.
    return `::${best.len === 5 ? 'ffff:' : ''}${bytes.slice(12).join('.')}`;
  }
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.len).join(':')}`;
}
