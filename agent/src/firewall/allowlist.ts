/**
 * The port allowlist: rules from the payload (Stratos `PORTS`, `PORT_MAPPINGS`, our
 * `FIREWALL_ALLOW`) and from config (`firewall.alwaysAllow`, `firewall.extraRules`), parsed
 * strictly, merged, deduplicated and sorted. Pure: no I/O. An invalid entry throws an error
 * naming the entry and where it came from, and nothing is built, so nothing half-valid can
 * ever be applied.
 *
 * Rule syntax (FIREWALL_ALLOW entries, one per `,`; config arrays, one per element):
 *   PROTO/PORT[-PORT] [from CIDR]      e.g. tcp/8080  udp/5353  tcp/8000-8100
 *                                            tcp/5432 from 10.0.0.0/8  tcp/443 from 2001:db8::/32
 * PROTO is tcp or udp; a range is inclusive with low ≤ high; a source CIDR (or a bare host
 * address) limits the rule to that address family. Case-insensitive; no spaces inside
 * `PROTO/PORT-PORT`, one or more around `from`.
 * `,` is safe in a launch-params payload: that parser only splits at `,NAME=` (see
 * payload/parse-launch-params.ts).
 *
 * Origins are deliberately coarse (`payload PORTS`, `config firewall.alwaysAllow[0]`), not
 * "entry 3 of PORTS": they end up in rule comments, and the same allowlist must render the
 * same ruleset whatever order the payload lists it in. Errors carry the exact entry instead.
 */
import type { AgentConfig } from '../config';
import { ConfigError, PayloadError } from '../errors';
import { CidrSyntaxError, cidrSortKey, parseCidr } from './cidr';
import type { AllowRule, FirewallPolicy, PortRange, Protocol } from './types';

/** Our own payload key for rich rules (syntax above). */
export const FIREWALL_ALLOW_KEY = 'FIREWALL_ALLOW';

/** A rule's text is wrong; `message` is the detail, callers add where the text came from. */
export class RuleSyntaxError extends Error {}

export type FirewallRuleConfig = Pick<AgentConfig['firewall'], 'alwaysAllow' | 'extraRules' | 'allowIcmpEcho'>;

const RULE_HINT = 'expected PROTO/PORT[-PORT] [from CIDR], e.g. "tcp/8080" or "tcp/5432 from 10.0.0.0/8"';

/** Parse one rule in the allowlist syntax. Throws RuleSyntaxError. */
export function parseRule(text: string, origin: string): AllowRule {
  const trimmed = text.trim();
  if (trimmed === '') throw new RuleSyntaxError(`empty rule; ${RULE_HINT}`);
  if (trimmed.includes(',')) throw new RuleSyntaxError(`one rule per entry ("," separates rules only inside ${FIREWALL_ALLOW_KEY})`);
  const tokens = trimmed.split(/\s+/);
  const [protoPorts = '', from, source, ...rest] = tokens;
  if (rest.length > 0 || (from !== undefined && (from.toLowerCase() !== 'from' || source === undefined))) {
    throw new RuleSyntaxError(RULE_HINT);
  }
  const m = /^([A-Za-z0-9]*)\/(.*)$/.exec(protoPorts);
  if (!m) throw new RuleSyntaxError(`missing "/" between protocol and port; ${RULE_HINT}`);
  const proto = parseProtocol(m[1] ?? '');
  const ports = parsePortSpec(m[2] ?? '');
  const rule: AllowRule = { proto, ports, origin };
  if (source !== undefined) {
    try {
      rule.source = parseCidr(source);
    } catch (err) {
      if (err instanceof CidrSyntaxError) throw new RuleSyntaxError(`source ${err.message}`);
      throw err;
    }
  }
  return rule;
}

/** The rule in the allowlist syntax: `parseRule(describeRule(r))` gives r back (origin aside). */
export function describeRule(rule: AllowRule): string {
  const ports = rule.ports.from === rule.ports.to ? `${rule.ports.from}` : `${rule.ports.from}-${rule.ports.to}`;
  return `${rule.proto}/${ports}${rule.source ? ` from ${rule.source.cidr}` : ''}`;
}

/**
 * The whole allowlist from the payload and config. Throws PayloadError (payload entries) or
 * ConfigError (key like `firewall.extraRules[2]`) for the first bad entry.
 */
export function buildPolicy(payloadVars: ReadonlyMap<string, string>, cfg: FirewallRuleConfig): FirewallPolicy {
  const rules = configRules([['firewall.alwaysAllow', cfg.alwaysAllow], ['firewall.extraRules', cfg.extraRules]]);
  rules.push(...parsePortsValue(payloadVars.get('PORTS') ?? ''));
  rules.push(...parsePortMappingsValue(payloadVars.get('PORT_MAPPINGS') ?? ''));
  rules.push(...parseFirewallAllowValue(payloadVars.get(FIREWALL_ALLOW_KEY) ?? ''));
  return { rules: mergeRules(rules), allowIcmpEcho: cfg.allowIcmpEcho };
}

/**
 * Rules from config arrays, each named by its dotted key (`firewall.alwaysAllow`): origin
 * `config firewall.alwaysAllow[0]`; a bad entry is a ConfigError on that element's key.
 */
export function configRules(lists: ReadonlyArray<readonly [key: string, rules: readonly string[]]>): AllowRule[] {
  const rules: AllowRule[] = [];
  for (const [section, list] of lists) {
    list.forEach((text, i) => {
      const key = `${section}[${i}]`;
      try {
        rules.push(parseRule(text, `config ${key}`));
      } catch (err) {
        if (err instanceof RuleSyntaxError) throw new ConfigError(key, `${quote(text)}: ${err.message}`);
        throw err;
      }
    });
  }
  return rules;
}

/** Stratos `PORTS`: `80|443`, TCP ports. Empty entries are skipped. */
export function parsePortsValue(value: string): AllowRule[] {
  return splitEntries(value, '|').map(({ text, index }) =>
    payloadEntry('PORTS', index, text, () => ({ proto: 'tcp', ports: single(parsePortNumber(text)), origin: 'payload PORTS' })),
  );
}

/**
 * Stratos `PORT_MAPPINGS`: `NAME:http|PROTOCOL:http|PORT:8080|PROXY_PORT:80;NAME:…`. We open
 * PORT, the port the application listens on here. PROXY_PORT is the port the load balancer
 * listens on (it forwards PROXY_PORT → instance:PORT), so it is never opened on the instance.
 * PROTOCOL http/https/tcp (or absent) → tcp, udp → udp. Other fields (NAME, TYPE, …) are
 * not ours to judge and are ignored; NAME labels the rule's origin.
 */
export function parsePortMappingsValue(value: string): AllowRule[] {
  return splitEntries(value, ';').map(({ text, index }) =>
    payloadEntry('PORT_MAPPINGS', index, text, () => {
      const fields = new Map<string, string>();
      for (const raw of text.split('|')) {
        const field = raw.trim();
        if (field === '') continue;
        const colon = field.indexOf(':');
        if (colon <= 0) throw new RuleSyntaxError(`field ${quote(field)} is not KEY:VALUE`);
        const key = field.slice(0, colon).trim().toUpperCase();
        if (fields.has(key)) throw new RuleSyntaxError(`field ${key} given twice`);
        fields.set(key, field.slice(colon + 1).trim());
      }
      const port = fields.get('PORT');
      if (port === undefined) throw new RuleSyntaxError('no PORT field');
      const proxyPort = fields.get('PROXY_PORT');
      // 0 is allowed: it means "no proxy port" to some Stratos tooling.
      if (proxyPort !== undefined && !(/^\d{1,5}$/.test(proxyPort) && Number(proxyPort) <= 65535)) {
        throw new RuleSyntaxError(`PROXY_PORT ${quote(proxyPort)} is not a port number (0-65535)`);
      }
      const name = fields.get('NAME');
      const label = name ? ` (${name.slice(0, 40)})` : '';
      return { proto: mappingProtocol(fields.get('PROTOCOL')), ports: single(parsePortNumber(port)), origin: `payload PORT_MAPPINGS${label}` };
    }),
  );
}

/** Our `FIREWALL_ALLOW`: rules in the allowlist syntax separated by `,`. */
export function parseFirewallAllowValue(value: string): AllowRule[] {
  return splitEntries(value, ',').map(({ text, index }) =>
    payloadEntry(FIREWALL_ALLOW_KEY, index, text, () => parseRule(text, `payload ${FIREWALL_ALLOW_KEY}`)),
  );
}

/**
 * Deduplicate (same proto, ports and source; origins joined) and sort (proto, ports, source)
 * so an allowlist renders identically whatever order its entries came in.
 */
export function mergeRules(rules: readonly AllowRule[]): AllowRule[] {
  const byKey = new Map<string, { rule: AllowRule; origins: Set<string> }>();
  for (const rule of rules) {
    const key = describeRule(rule);
    const seen = byKey.get(key);
    if (seen) seen.origins.add(rule.origin);
    else byKey.set(key, { rule, origins: new Set([rule.origin]) });
  }
  return [...byKey.values()]
    .map(({ rule, origins }) => ({ ...rule, origin: [...origins].sort().join('; ') }))
    .sort(compareRules);
}

export function compareRules(a: AllowRule, b: AllowRule): number {
  return (
    cmp(a.proto, b.proto) ||
    a.ports.from - b.ports.from ||
    a.ports.to - b.ports.to ||
    cmp(a.source ? cidrSortKey(a.source.cidr) : '', b.source ? cidrSortKey(b.source.cidr) : '')
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function parseProtocol(text: string): Protocol {
  const p = text.toLowerCase();
  if (p === 'tcp' || p === 'udp') return p;
  if (p === '') throw new RuleSyntaxError(`missing protocol; ${RULE_HINT}`);
  throw new RuleSyntaxError(`unknown protocol ${quote(text)} (tcp or udp)`);
}

function mappingProtocol(text: string | undefined): Protocol {
  const p = (text ?? 'tcp').toLowerCase();
  if (p === 'http' || p === 'https' || p === 'tcp') return 'tcp';
  if (p === 'udp') return 'udp';
  throw new RuleSyntaxError(`PROTOCOL ${quote(text ?? '')} is not http, https, tcp or udp`);
}

function parsePortSpec(text: string): PortRange {
  const m = /^(\w+)(?:-(\w+))?$/.exec(text);
  if (!m) throw new RuleSyntaxError(`bad port ${quote(text)}: a port (1-65535) or a range LOW-HIGH`);
  const from = parsePortNumber(m[1] ?? '');
  const to = m[2] === undefined ? from : parsePortNumber(m[2]);
  if (to < from) throw new RuleSyntaxError(`reversed port range ${from}-${to} (LOW must not exceed HIGH)`);
  return { from, to };
}

function parsePortNumber(text: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t)) throw new RuleSyntaxError(`${quote(t)} is not a port number (1-65535)`);
  const n = Number(t);
  if (n < 1 || n > 65535) throw new RuleSyntaxError(`port ${t} is out of range (1-65535)`);
  return n;
}

function single(port: number): PortRange {
  return { from: port, to: port };
}

/** Non-empty entries with their 1-based position (empty ones count, so users can find it). */
function splitEntries(value: string, sep: string): Array<{ text: string; index: number }> {
  return value
    .split(sep)
    .map((raw, i) => ({ text: raw.trim(), index: i + 1 }))
    .filter((e) => e.text !== '');
}

function payloadEntry(key: string, index: number, text: string, parse: () => AllowRule): AllowRule {
  try {
    return parse();
  } catch (err) {
    if (err instanceof RuleSyntaxError) {
      throw new PayloadError(`payload ${key} entry ${index} (${quote(text)}): ${err.message}`, { key, entry: index });
    }
    throw err;
  }
}

/** Payload text in an error: quoted, escaped, and short. */
function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}
