/**
 * Which firewall backend this host uses. The host's own iptables decides (a rule added
 * through one backend still runs after the other backend's rules, so we must use whichever
 * the host already uses); on nf_tables hosts native nft is preferred when installed.
 *
 * The tools' answers (`iptables -V`, `nft --version`, …) are asked once per runner and kept for
 * the process's lifetime: a daemon's drift keeper, a fail-closed fallback after a failed boot
 * work, or the removal of the previous backend's rules reuse what the apply already asked. A
 * backend switch on the host (installing nft, update-alternatives) is seen by the next process.
 */
import { FirewallError } from '../errors';
import { commandExists, type CommandResult, type CommandRunner } from './exec';
import type { Backend } from './types';

export type BackendPreference = 'auto' | Backend;

/** The binaries of one iptables variant. */
export interface IptablesTools {
  iptables: string;
  ip6tables: string;
  restore4: string;
  restore6: string;
}

/** What `iptables -V` says about its backend: nf_tables, legacy (no suffix on 1.4/1.6 = legacy). */
export function iptablesVariant(versionOutput: string): 'nf_tables' | 'legacy' | null {
  if (!/^ip6?tables v\d/m.test(versionOutput)) return null;
  if (/\(nf_tables\)/.test(versionOutput)) return 'nf_tables';
  return 'legacy';
}

const answers = new WeakMap<CommandRunner, Map<string, Promise<CommandResult | null>>>();

/** commandExists, asked once per runner and command line; a failure to ask is not kept. */
function toolAnswer(runner: CommandRunner, cmd: string, args: string[]): Promise<CommandResult | null> {
  let known = answers.get(runner);
  if (!known) answers.set(runner, (known = new Map()));
  const key = [cmd, ...args].join(' ');
  let answer = known.get(key);
  if (!answer) {
    answer = commandExists(runner, cmd, args);
    known.set(key, answer);
    answer.catch(() => known.delete(key));
  }
  return answer;
}

async function variantOf(runner: CommandRunner, cmd: string): Promise<'nf_tables' | 'legacy' | null | 'absent'> {
  const r = await toolAnswer(runner, cmd, ['-V']);
  if (!r) return 'absent';
  return iptablesVariant(`${r.stdout}\n${r.stderr}`);
}

async function nftPresent(runner: CommandRunner): Promise<boolean> {
  const r = await toolAnswer(runner, 'nft', ['--version']);
  return r !== null && r.code === 0;
}

/** The error for firewall.backend "nft" on a host without nft. */
export function nftNotInstalled(): FirewallError {
  return new FirewallError('firewall.backend is "nft" but nft is not installed (package nftables)', 'detect', 'nft');
}

export interface DetectHints {
  /**
   * Whether nft is installed, from a command that had to run anyway (the apply's listing of our
   * table: it ran unless the binary is missing), instead of asking `nft --version`.
   */
  nftPresent?: Promise<boolean>;
}

/**
 * auto: `iptables -V` says (nf_tables) and nft exists → nft; (nf_tables) without nft →
 * iptables-nft; (legacy) → iptables-legacy; no iptables: nft if present. An explicit
 * preference is only checked: its binaries must be there.
 */
export async function detectBackend(preference: BackendPreference, runner: CommandRunner, hints: DetectHints = {}): Promise<Backend> {
  if (preference === 'nft') {
    if (await (hints.nftPresent ?? nftPresent(runner))) return 'nft';
    throw nftNotInstalled();
  }
  if (preference === 'iptables-nft' || preference === 'iptables-legacy') {
    await iptablesTools(preference, runner);
    return preference;
  }
  // Both questions at once: two short children side by side, not one after the other.
  const [variant, nft] = await Promise.all([variantOf(runner, 'iptables'), hints.nftPresent ?? nftPresent(runner)]);
  if (variant === 'nf_tables') return nft ? 'nft' : 'iptables-nft';
  if (variant === 'legacy') return 'iptables-legacy';
  if (nft) return 'nft';
  throw new FirewallError(
    variant === 'absent'
      ? 'no firewall tool found: neither iptables nor nft is installed (install nftables or iptables)'
      : 'cannot tell the iptables backend: `iptables -V` printed no version, and nft is not installed',
    'detect',
    null,
  );
}

/**
 * The binaries for an iptables backend. Debian/RHEL name them iptables-nft*, iptables-legacy*;
 * old 1.4/1.6 builds (legacy only) and some distros have only the plain names, which are used
 * when `iptables -V` confirms they are the right variant.
 */
export async function iptablesTools(backend: 'iptables-nft' | 'iptables-legacy', runner: CommandRunner): Promise<IptablesTools> {
  const suffix = backend === 'iptables-nft' ? 'nft' : 'legacy';
  const wanted = backend === 'iptables-nft' ? 'nf_tables' : 'legacy';
  const named = await variantOf(runner, `iptables-${suffix}`);
  if (named === wanted) {
    return { iptables: `iptables-${suffix}`, ip6tables: `ip6tables-${suffix}`, restore4: `iptables-${suffix}-restore`, restore6: `ip6tables-${suffix}-restore` };
  }
  const plain = await variantOf(runner, 'iptables');
  if (plain === wanted) return { iptables: 'iptables', ip6tables: 'ip6tables', restore4: 'iptables-restore', restore6: 'ip6tables-restore' };
  throw new FirewallError(
    `firewall backend "${backend}" is not available: neither iptables-${suffix} nor iptables is the ${wanted} variant` +
      ` (iptables-${suffix}: ${named ?? 'unknown'}, iptables: ${plain ?? 'unknown'})`,
    'detect',
    backend,
  );
}
