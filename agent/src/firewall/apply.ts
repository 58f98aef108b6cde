/**
 * Applying a rendered ruleset to the kernel: picks the backend's implementation. See ops.ts
 * for the contract (own table/chain only, one transaction per family).
 */
import { detectBackend, iptablesTools, nftNotInstalled, type BackendPreference } from './backend';
import { CommandNotFoundError, type CommandRunner } from './exec';
import { IptablesOps } from './apply-iptables';
import { NftOps } from './apply-nft';
import type { FirewallOps, FirewallSnapshot } from './ops';
import type { Backend } from './types';

export type { FirewallOps, FirewallSnapshot } from './ops';

/** The operations for `backend`, running every command through `runner`. */
export async function firewallOps(backend: Backend, runner: CommandRunner): Promise<FirewallOps> {
  if (backend === 'nft') return new NftOps(runner);
  return new IptablesOps(backend, await iptablesTools(backend, runner), runner);
}

/**
 * This host's backend, its ops and a snapshot of our rules, in as few rounds of children as
 * possible. A configured backend is not probed: listing our rules is the check that its tool
 * is there. With "auto", `iptables -V` runs beside the listing of the likely backend (the
 * recorded one, else nft), and that listing also answers whether nft is installed; only when
 * the host's backend turns out to be another one is that one listed after.
 */
export async function hostOpsWithSnapshot(preference: BackendPreference, guess: Backend, runner: CommandRunner): Promise<{ backend: Backend; ops: FirewallOps; before: FirewallSnapshot }> {
  const listed = (async () => {
    const ops = await firewallOps(guess, runner);
    return { ops, before: await ops.snapshot() };
  })().then(
    (value) => ({ value, error: null }),
    (error: unknown) => ({ value: null, error }),
  );
  const nftPresent = guess === 'nft' ? listed.then((l) => !(l.error instanceof CommandNotFoundError)) : undefined;
  let backend: Backend;
  try {
    backend = preference === 'auto' ? await detectBackend('auto', runner, nftPresent ? { nftPresent } : {}) : preference;
  } finally {
    await listed; // never leave a child of ours running unobserved
  }
  const { value, error } = await listed;
  if (backend === guess) {
    if (value) return { backend, ...value };
    throw guess === 'nft' && error instanceof CommandNotFoundError ? nftNotInstalled() : error;
  }
  const ops = await firewallOps(backend, runner);
  return { backend, ops, before: await ops.snapshot() };
}
