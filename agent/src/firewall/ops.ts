/**
 * The contract of one backend's I/O (snapshot, apply, read back, remove) and the helpers its
 * implementations share. Every operation touches only our own table (nft) or our own chain and
 * its INPUT jump (iptables); other tools' rules and the INPUT policy are never changed. Each
 * family changes in one transaction (`nft -f`, `iptables-restore --noflush`), so a refused
 * ruleset changes nothing.
 */
import { FirewallError } from '../errors';
import type { CommandResult } from './exec';
import type { IptablesFamilyState } from './readback';
import type { Backend, RenderedRuleset } from './types';

/** Our rules as they were at one moment; "absent" (null table / chain) is a valid snapshot. */
export type FirewallSnapshot =
  | { backend: 'nft'; table: string | null }
  | { backend: 'iptables-nft' | 'iptables-legacy'; ipv4: IptablesFamilyState; ipv6: IptablesFamilyState };

export interface FirewallOps {
  readonly backend: Backend;
  /** Let the tool parse/check the ruleset without committing anything. */
  dryRun(rendered: RenderedRuleset): Promise<void>;
  /**
   * Apply. On failure the previous rules are in force again and a FirewallError is thrown.
   * `before`: a snapshot taken just now (saves listing the rules a second time).
   */
  apply(rendered: RenderedRuleset, before?: FirewallSnapshot): Promise<void>;
  snapshot(): Promise<FirewallSnapshot>;
  restore(snapshot: FirewallSnapshot): Promise<void>;
  /** Our rules as the kernel reports them, normalised (stable fingerprint); null: none. */
  readBack(): Promise<string | null>;
  /** The read-back a snapshot corresponds to (readBack() === snapshotReadBack(snapshot())). */
  snapshotReadBack(snapshot: FirewallSnapshot): string | null;
  /** Delete our table, or our jumps and chains. Nothing else. */
  remove(): Promise<void>;
}

/** Lock wait for the xtables lock (legacy; a no-op for iptables-nft), like kube-proxy. */
export const XTABLES_WAIT = ['-w', '5'];
export const TOOL_TIMEOUT_MS = 20_000;

export function firstLine(text: string): string {
  return text.trim().split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}

/** The FirewallError for a tool that said no: backend, step, exit code, the tool's words. */
export function toolFailure(backend: Backend, step: string, r: CommandResult, ruleset?: string): FirewallError {
  const said = firstLine(r.stderr) || firstLine(r.stdout) || 'no message';
  return new FirewallError(`firewall (${backend}): ${step} failed (exit ${r.code}): ${said}`, step, backend, r.stderr.trim() || r.stdout.trim(), ruleset);
}

export function requireText(backend: Backend, rendered: RenderedRuleset, key: 'nft' | 'ipv4' | 'ipv6'): string {
  if (rendered.backend !== backend) {
    throw new FirewallError(`firewall: ruleset rendered for ${rendered.backend} cannot be applied with ${backend}`, 'apply', backend);
  }
  const text = rendered[key];
  if (text === undefined) throw new FirewallError(`firewall (${backend}): rendered ruleset has no ${key} text`, 'apply', backend);
  return text;
}

