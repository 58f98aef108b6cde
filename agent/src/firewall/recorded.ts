/**
 * Is a loaded firewall.json fit to be put back into the kernel as it is? loadApplied checks
 * the record's shape; `firewall restore` runs at early boot with no payload to re-render
 * from, so the texts it is about to hand to nft / iptables-restore must also be the very
 * texts that were applied: right backend, text present for each transaction, digest matching.
 * Pure: the record in, a FirewallError naming the file out.
 */
import { FirewallError } from '../errors';
import { renderedDigest } from './render';
import type { AppliedFirewall } from './state';

/** Throws a FirewallError naming `file` and what is wrong when the record cannot be restored as recorded. */
export function verifyRecorded(applied: AppliedFirewall, file: string): void {
  const problem = recordProblem(applied);
  if (problem) {
    throw new FirewallError(`${file} is damaged, not restoring it: ${problem}`, 'load state', applied.backend);
  }
}

function recordProblem(applied: AppliedFirewall): string | null {
  const rendered = applied.rendered as unknown as Record<string, unknown>;
  if (rendered.backend !== applied.backend) {
    return `the ruleset is rendered for ${String(rendered.backend)} but recorded as applied with ${applied.backend}`;
  }
  const keys = applied.backend === 'nft' ? (['nft'] as const) : (['ipv4', 'ipv6'] as const);
  for (const key of keys) {
    if (typeof rendered[key] !== 'string') return `rendered.${key} (the ${applied.backend} ruleset text) is missing or not text`;
  }
  if (!Number.isInteger(applied.ruleCount) || applied.ruleCount < 0) return `ruleCount is not a count: ${JSON.stringify(applied.ruleCount)}`;
  if (rendered.digest !== applied.digest) return `rendered.digest ${String(rendered.digest)} differs from digest ${applied.digest}`;
  const actual = renderedDigest(applied.rendered);
  if (actual !== applied.digest) return `the ruleset text has sha256 ${actual}, not the recorded ${applied.digest}`;
  return null;
}
