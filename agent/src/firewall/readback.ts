/**
 * Pure text work for the I/O shell: picking our rules out of what the kernel reports,
 * normalising it into a stable read-back (counters, handles and other tools' rules removed),
 * fingerprinting and diffing read-backs, and building the small iptables-restore texts that
 * add/remove our jump or put a snapshot back. Nothing here runs a command.
 */
import { createHash } from 'node:crypto';
import { IPT_CHAIN, NFT_TABLE } from './types';

/** Our part of one iptables family: the chain's rules (null: no chain) and how many INPUT jumps to it. */
export interface IptablesFamilyState {
  chain: string[] | null;
  jumps: number;
}

const JUMP_RULE = `-A INPUT -j ${IPT_CHAIN}`;

/**
 * From `iptables -S` of the whole filter table (one call, no error text to interpret when our
 * chain is absent), keep only our chain and exact jumps to it. Warnings ("# Warning: …") and
 * every other tool's rule are ignored.
 */
export function pickIptablesState(listing: string): IptablesFamilyState {
  let chain: string[] | null = null;
  const rules: string[] = [];
  let jumps = 0;
  for (const raw of listing.split('\n')) {
    const line = raw.trimEnd();
    if (line === `-N ${IPT_CHAIN}`) chain = rules;
    else if (line.startsWith(`-A ${IPT_CHAIN} `)) rules.push(line);
    else if (line === JUMP_RULE) jumps++;
  }
  return { chain, jumps };
}

function familyReadBack(name: string, s: IptablesFamilyState): string {
  if (s.chain === null && s.jumps === 0) return `${name}: absent\n`;
  const chain = s.chain === null ? ['(no chain)'] : [`-N ${IPT_CHAIN}`, ...s.chain];
  return `${name}:\n${chain.join('\n')}\njumps from INPUT: ${s.jumps}\n`;
}

/** The normalised read-back of both iptables families; null when nothing of ours exists. */
export function iptablesReadBack(ipv4: IptablesFamilyState, ipv6: IptablesFamilyState): string | null {
  const absent = (s: IptablesFamilyState) => s.chain === null && s.jumps === 0;
  if (absent(ipv4) && absent(ipv6)) return null;
  return familyReadBack('ipv4', ipv4) + familyReadBack('ipv6', ipv6);
}

/**
 * `nft -s list table …` already omits counters; handles, counter values and comments of the
 * `# handle` kind are stripped anyway so a listing made with other flags compares equal.
 */
export function normaliseNftListing(listing: string): string | null {
  const lines = listing
    .split('\n')
    .map((l) =>
      l
        .replace(/\s+# handle \d+$/, '')
        .replace(/\bcounter packets \d+ bytes \d+/g, 'counter')
        .trimEnd(),
    )
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('# Warning'));
  return lines.length === 0 ? null : `${lines.join('\n')}\n`;
}

/** Stable identity of a read-back; "absent" when nothing of ours is there. */
export function fingerprint(readBack: string | null): string {
  return readBack === null ? 'absent' : createHash('sha256').update(readBack).digest('hex');
}

/**
 * What differs between the read-back we applied and the one found, in words for the log:
 * lines missing, lines nobody of ours added, or the same lines in another order.
 */
export function diffReadBack(expected: string | null, actual: string | null): string[] {
  if (expected === actual) return [];
  if (actual === null) return ['all of our rules are gone (table/chain and jumps absent)'];
  if (expected === null) return ['rules of ours are present although none were applied'];
  const exp = expected.split('\n').filter(Boolean);
  const act = actual.split('\n').filter(Boolean);
  const count = (lines: string[]) => lines.reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map<string, number>());
  const expCount = count(exp);
  const actCount = count(act);
  const out: string[] = [];
  for (const [line, n] of expCount) {
    const missing = n - (actCount.get(line) ?? 0);
    if (missing > 0) out.push(`missing${missing > 1 ? ` ×${missing}` : ''}: ${line.trim()}`);
  }
  for (const [line, n] of actCount) {
    const extra = n - (expCount.get(line) ?? 0);
    if (extra > 0) out.push(`unexpected${extra > 1 ? ` ×${extra}` : ''}: ${line.trim()}`);
  }
  if (out.length === 0) out.push('same rules in a different order');
  return out;
}

/** nft script that brings `table inet cartridge_agent` to `table` (null: absent), in one transaction. */
export function nftReplaceTableScript(table: string | null): string {
  return `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${table ?? ''}`;
}

/** The jump edits that take INPUT from `current` jumps to `wanted` (0 or 1 in practice). */
function jumpEdits(current: number, wanted: number): string[] {
  const edits: string[] = [];
  for (let i = current; i < wanted; i++) edits.push(`-I INPUT 1 -j ${IPT_CHAIN}`);
  for (let i = wanted; i < current; i++) edits.push(`-D INPUT -j ${IPT_CHAIN}`);
  return edits;
}

/**
 * The rendered restore text plus the jump edits, so chain and jump change in the same
 * transaction: the jump is added only when missing (never moved: fail2ban, Docker and kube
 * insert theirs at 1 too) and duplicates are removed.
 */
export function withJump(rendered: string, currentJumps: number): string {
  const lines = rendered.replace(/\n+$/, '').split('\n');
  const commit = lines.lastIndexOf('COMMIT');
  if (commit < 0) throw new Error('rendered iptables-restore text has no COMMIT line');
  lines.splice(commit, 0, ...jumpEdits(currentJumps, 1));
  return `${lines.join('\n')}\n`;
}

/** Restore text that puts one family back to `snapshot`, given what is there now. */
export function iptablesRestoreText(snapshot: IptablesFamilyState, currentJumps: number): string {
  const lines = ['*filter', `:${IPT_CHAIN} - [0:0]`];
  if (snapshot.chain === null) {
    lines.push(...jumpEdits(currentJumps, 0), `-X ${IPT_CHAIN}`);
  } else {
    lines.push(...snapshot.chain, ...jumpEdits(currentJumps, snapshot.jumps));
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
