/**
 * Pieces both renderers share: the header, rule comments, and which rules apply to a family.
 */
import type { AllowRule, Family, FirewallPolicy } from './types';

/** First line of every rendered file. No timestamp: the same policy must render the same bytes. */
export const RENDER_HEADER = '# cartridge-agent port allowlist. Generated: do not edit, the agent re-applies it on drift.';

export const COMMENT_PREFIX = 'cartridge-agent: ';

/** nft refuses rule comments over 128 characters ("comment too long"); iptables allows 255. */
export const MAX_COMMENT_LENGTH = 128;

export const DEFAULT_DENY_COMMENT = `${COMMENT_PREFIX}default deny`;

/** The baseline's final drop says what is in force, for whoever lists the kernel's rules. */
export const BASELINE_DENY_COMMENT = `${COMMENT_PREFIX}baseline default deny (no payload allowlist applied yet)`;

export function denyComment(policy: FirewallPolicy): string {
  return policy.baseline ? BASELINE_DENY_COMMENT : DEFAULT_DENY_COMMENT;
}

/**
 * A rule comment naming the rule's origin. Origins can carry payload text (a PORT_MAPPINGS
 * NAME), so anything outside a plain set of characters becomes `_`: no quotes, backslashes or
 * line breaks can reach a restore file or an nft script, and the tools print it back verbatim
 * (the drift check compares read-back text).
 */
export function ruleComment(origin: string): string {
  const safe = `${COMMENT_PREFIX}${origin}`.replace(/[^A-Za-z0-9 _.,:;/()[\]=+@-]/g, '_');
  return safe.length <= MAX_COMMENT_LENGTH ? safe : `${safe.slice(0, MAX_COMMENT_LENGTH - 3)}...`;
}

/** Rules without a source apply to both families; a sourced rule only to its own. */
export function rulesForFamily(policy: FirewallPolicy, family: Family): AllowRule[] {
  return policy.rules.filter((r) => !r.source || r.source.family === family);
}
