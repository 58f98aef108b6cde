/**
 * The pure renderer: a policy and the host's backend in, the exact text(s) to apply out.
 * Same policy, same backend → same bytes and digest (no timestamps, sorted rules).
 */
import { createHash } from 'node:crypto';
import { renderIptables } from './render-iptables';
import { renderNft } from './render-nft';
import type { Backend, FirewallPolicy, RenderedRuleset } from './types';

export function renderRuleset(policy: FirewallPolicy, backend: Backend): RenderedRuleset {
  if (backend === 'nft') {
    const { script, ruleCount } = renderNft(policy);
    return { backend, nft: script, ruleCount, digest: sha256([script]) };
  }
  // iptables-nft and iptables-legacy take the same restore text; only the binaries differ.
  const v4 = renderIptables(policy, 'ipv4');
  const v6 = renderIptables(policy, 'ipv6');
  return {
    backend,
    ipv4: v4.text,
    ipv6: v6.text,
    ruleCount: v4.ruleLines.length + v6.ruleLines.length,
    digest: sha256([v4.text, v6.text]),
  };
}

/**
 * The digest renderRuleset gives `rendered`, recomputed from its texts: a recorded ruleset
 * whose texts no longer match its digest has been damaged (or edited) since it was applied.
 */
export function renderedDigest(rendered: RenderedRuleset): string {
  return sha256(rendered.backend === 'nft' ? [rendered.nft ?? ''] : [rendered.ipv4 ?? '', rendered.ipv6 ?? '']);
}

/** sha256 hex over the texts; a NUL between them so moving a line across the join changes it. */
function sha256(texts: string[]): string {
  const hash = createHash('sha256');
  texts.forEach((t, i) => {
    if (i > 0) hash.update('\0');
    hash.update(t);
  });
  return hash.digest('hex');
}
