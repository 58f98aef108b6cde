/**
 * iptables (nf_tables or legacy variant): our chain CARTRIDGE-INPUT in table filter plus one
 * `-j CARTRIDGE-INPUT` in INPUT, per family. Each family is one `iptables-restore --noflush`
 * transaction that carries the chain and, when missing, the jump. The two families are two
 * transactions (run side by side), so when one fails and the other went in, that one is put
 * back from the snapshot.
 */
import { FirewallError } from '../errors';
import type { IptablesTools } from './backend';
import type { CommandRunner } from './exec';
import { requireText, toolFailure, TOOL_TIMEOUT_MS, XTABLES_WAIT, type FirewallOps, type FirewallSnapshot } from './ops';
import { iptablesReadBack, iptablesRestoreText, pickIptablesState, withJump, type IptablesFamilyState } from './readback';
import type { RenderedRuleset } from './types';

type Family = 'ipv4' | 'ipv6';

function sameFamilyState(a: IptablesFamilyState, b: IptablesFamilyState): boolean {
  return a.jumps === b.jumps && JSON.stringify(a.chain) === JSON.stringify(b.chain);
}
type IptSnapshot = Extract<FirewallSnapshot, { backend: 'iptables-nft' | 'iptables-legacy' }>;

export class IptablesOps implements FirewallOps {
  constructor(
    readonly backend: 'iptables-nft' | 'iptables-legacy',
    private readonly tools: IptablesTools,
    private readonly run: CommandRunner,
  ) {}

  private restoreCmd(family: Family): string {
    return family === 'ipv4' ? this.tools.restore4 : this.tools.restore6;
  }

  private async restore_(family: Family, step: string, text: string, test = false): Promise<void> {
    const args = [...XTABLES_WAIT, '--noflush', ...(test ? ['--test'] : [])];
    const r = await this.run(this.restoreCmd(family), args, { input: text, timeoutMs: TOOL_TIMEOUT_MS });
    if (r.code !== 0) throw toolFailure(this.backend, `${step} (${this.restoreCmd(family)}${test ? ' --test' : ''})`, r, text);
  }

  private async familyState(family: Family): Promise<IptablesFamilyState> {
    const cmd = family === 'ipv4' ? this.tools.iptables : this.tools.ip6tables;
    const r = await this.run(cmd, [...XTABLES_WAIT, '-t', 'filter', '-S'], { timeoutMs: TOOL_TIMEOUT_MS });
    if (r.code !== 0) throw toolFailure(this.backend, `list ${family} filter table (${cmd} -S)`, r);
    return pickIptablesState(r.stdout);
  }

  private ownSnapshot(snapshot: FirewallSnapshot): IptSnapshot {
    if (snapshot.backend !== this.backend) {
      throw new FirewallError(`firewall (${this.backend}): cannot use a ${snapshot.backend} snapshot`, 'restore', this.backend);
    }
    return snapshot as IptSnapshot;
  }

  async snapshot(): Promise<FirewallSnapshot> {
    const [ipv4, ipv6] = await Promise.all([this.familyState('ipv4'), this.familyState('ipv6')]);
    return { backend: this.backend, ipv4, ipv6 };
  }

  async dryRun(rendered: RenderedRuleset): Promise<void> {
    // Tested with the jump line, as apply sends it when the jump is missing.
    for (const family of ['ipv4', 'ipv6'] as const) {
      await this.restore_(family, `dry run ${family}`, withJump(requireText(this.backend, rendered, family), 0), true);
    }
  }

  async apply(rendered: RenderedRuleset, before?: FirewallSnapshot): Promise<void> {
    const texts = { ipv4: requireText(this.backend, rendered, 'ipv4'), ipv6: requireText(this.backend, rendered, 'ipv6') };
    const prev = this.ownSnapshot(before ?? (await this.snapshot()));
    // The families are independent transactions (separate tables): run them side by side.
    // The legacy variant serialises on the xtables lock itself (-w).
    const families = ['ipv4', 'ipv6'] as const;
    const results = await Promise.allSettled(families.map((f) => this.restore_(f, `apply ${f}`, withJump(texts[f], prev[f].jumps))));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed < 0) return;
    const err = (results[failed] as PromiseRejectedResult).reason as FirewallError;
    // A refused family is unchanged (one transaction); put a family that went in back as it was.
    const applied = families.filter((_, i) => results[i]?.status === 'fulfilled');
    for (const family of applied) {
      try {
        const now = await this.familyState(family);
        await this.restore_(family, `roll back ${family}`, iptablesRestoreText(prev[family], now.jumps));
      } catch (rollbackErr) {
        throw new FirewallError(
          `${err.message}; rolling ${family} back ALSO failed: ${(rollbackErr as Error).message}`,
          err.step,
          this.backend,
          err.stderr,
          err.ruleset,
        );
      }
    }
    throw err;
  }

  async restore(snapshot: FirewallSnapshot): Promise<void> {
    const snap = this.ownSnapshot(snapshot);
    const now = await this.snapshot();
    const cur = this.ownSnapshot(now);
    for (const family of ['ipv4', 'ipv6'] as const) {
      if (sameFamilyState(snap[family], cur[family])) continue; // nothing to undo; no empty transaction
      await this.restore_(family, `restore ${family} snapshot`, iptablesRestoreText(snap[family], cur[family].jumps));
    }
  }

  snapshotReadBack(snapshot: FirewallSnapshot): string | null {
    const snap = this.ownSnapshot(snapshot);
    return iptablesReadBack(snap.ipv4, snap.ipv6);
  }

  async readBack(): Promise<string | null> {
    return this.snapshotReadBack(await this.snapshot());
  }

  async remove(): Promise<void> {
    const cur = this.ownSnapshot(await this.snapshot());
    const absent: IptablesFamilyState = { chain: null, jumps: 0 };
    for (const family of ['ipv4', 'ipv6'] as const) {
      // Nothing of ours: leave the table alone (a restore would create an empty filter table on iptables-nft).
      if (sameFamilyState(absent, cur[family])) continue;
      await this.restore_(family, `remove ${family} chain`, iptablesRestoreText(absent, cur[family].jumps));
    }
  }
}
