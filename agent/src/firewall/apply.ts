/**
 * Applying a rendered ruleset to the kernel: picks the backend's implementation. See ops.ts
 * for the contract (own table/chain only, one transaction per family).
 */
import { iptablesTools } from './backend';
import type { CommandRunner } from './exec';
import { IptablesOps } from './apply-iptables';
import { NftOps } from './apply-nft';
import type { FirewallOps } from './ops';
import type { Backend } from './types';

export type { FirewallOps, FirewallSnapshot } from './ops';

/** The operations for `backend`, running every command through `runner`. */
export async function firewallOps(backend: Backend, runner: CommandRunner): Promise<FirewallOps> {
  if (backend === 'nft') return new NftOps(runner);
  return new IptablesOps(backend, await iptablesTools(backend, runner), runner);
}
