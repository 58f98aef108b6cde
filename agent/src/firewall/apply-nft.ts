/** Native nftables: one `inet` table, replaced as a whole by one `nft -f` transaction. */
import { FirewallError } from '../errors';
import type { CommandRunner } from './exec';
import { requireText, toolFailure, TOOL_TIMEOUT_MS, type FirewallOps, type FirewallSnapshot } from './ops';
import { nftReplaceTableScript, normaliseNftListing } from './readback';
import { NFT_TABLE, type RenderedRuleset } from './types';

export class NftOps implements FirewallOps {
  readonly backend = 'nft' as const;

  constructor(private readonly run: CommandRunner) {}

  private async nftFile(step: string, script: string, check = false): Promise<void> {
    const r = await this.run('nft', [...(check ? ['-c'] : []), '-f', '-'], { input: script, timeoutMs: TOOL_TIMEOUT_MS });
    if (r.code !== 0) throw toolFailure('nft', step, r, script);
  }

  async dryRun(rendered: RenderedRuleset): Promise<void> {
    await this.nftFile('dry run (nft -c -f)', requireText('nft', rendered, 'nft'), true);
  }

  async apply(rendered: RenderedRuleset): Promise<void> {
    // One `nft -f` is one kernel transaction: when it fails, nothing of it happened.
    await this.nftFile('apply (nft -f)', requireText('nft', rendered, 'nft'));
  }

  async snapshot(): Promise<FirewallSnapshot> {
    const r = await this.run('nft', ['-s', 'list', 'table', 'inet', NFT_TABLE], { timeoutMs: TOOL_TIMEOUT_MS });
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return { backend: 'nft', table: null };
      throw toolFailure('nft', `list table inet ${NFT_TABLE}`, r);
    }
    return { backend: 'nft', table: r.stdout };
  }

  async restore(snapshot: FirewallSnapshot): Promise<void> {
    if (snapshot.backend !== 'nft') throw new FirewallError(`firewall (nft): cannot restore a ${snapshot.backend} snapshot`, 'restore', 'nft');
    await this.nftFile('restore snapshot (nft -f)', nftReplaceTableScript(snapshot.table));
  }

  snapshotReadBack(snapshot: FirewallSnapshot): string | null {
    return snapshot.backend === 'nft' && snapshot.table !== null ? normaliseNftListing(snapshot.table) : null;
  }

  async readBack(): Promise<string | null> {
    return this.snapshotReadBack(await this.snapshot());
  }

  async remove(): Promise<void> {
    await this.nftFile(`remove table inet ${NFT_TABLE}`, nftReplaceTableScript(null));
  }
}

