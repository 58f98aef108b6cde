/**
 * The fail-closed baseline: what is in force with `firewall.mode enforce` while no payload
 * allowlist is (first boot before the agent has applied one, a damaged record, a boot work that
 * failed). It is the normal ruleset — same renderers, same table/chain, same ICMP/ND
 * infrastructure, established/related — built without a payload: `firewall.alwaysAllow` (SSH by
 * default) plus `firewall.baseline.allow`, everything else inbound dropped. Its final drop is
 * commented "baseline …", so `nft list ruleset` / `iptables -S` say what is in force, and its
 * read-back never equals a payload ruleset's. Pure: config in, texts out — the rendered texts
 * are what a recorded-file restore (a later sh unit) would hand to nft / iptables-restore.
 */
import type { AgentConfig } from '../config';
import { configRules, describeRule, mergeRules } from './allowlist';
import { iptablesReadBack, normaliseNftListing } from './readback';
import { renderRuleset } from './render';
import { renderIptables } from './render-iptables';
import { renderNft } from './render-nft';
import type { Backend, FirewallPolicy, RenderedRuleset } from './types';

export type BaselineConfig = Pick<AgentConfig['firewall'], 'alwaysAllow' | 'allowIcmpEcho' | 'baseline'>;

/** The baseline's policy. Throws ConfigError naming the key of a bad rule. */
export function baselinePolicy(cfg: BaselineConfig): FirewallPolicy {
  const rules = configRules([['firewall.alwaysAllow', cfg.alwaysAllow], ['firewall.baseline.allow', cfg.baseline.allow]]);
  return { rules: mergeRules(rules), allowIcmpEcho: cfg.allowIcmpEcho, baseline: true };
}

/** The baseline rendered for `backend`: the exact texts to apply (or to record to files). */
export function renderBaseline(cfg: BaselineConfig, backend: Backend): RenderedRuleset {
  return renderRuleset(baselinePolicy(cfg), backend);
}

/**
 * The read-back `ops.readBack()` gives while the baseline is in force. The renderers write
 * every rule exactly as the tools list it back (held by test/integration/firewall-render-check),
 * so this is known without applying anything.
 */
export function baselineReadBack(cfg: BaselineConfig, backend: Backend): string {
  const policy = baselinePolicy(cfg);
  if (backend === 'nft') return normaliseNftListing(renderNft(policy).table) ?? '';
  const chain = (family: 'ipv4' | 'ipv6') => ({ chain: renderIptables(policy, family).ruleLines, jumps: 1 });
  return iptablesReadBack(chain('ipv4'), chain('ipv6')) ?? '';
}

/** The baseline's allowances in the allowlist syntax, for messages: "tcp/22, tcp/2222". */
export function describeBaseline(cfg: BaselineConfig): string {
  const rules = baselinePolicy(cfg).rules.map(describeRule);
  return rules.length > 0 ? rules.join(', ') : 'no port';
}
