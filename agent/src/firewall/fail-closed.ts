/**
 * Fail closed (`firewall.mode enforce`): the host is never more open than its last good
 * ruleset, and with nothing good recorded never more open than the baseline (baseline.ts).
 *
 *  - restoreAtBoot: the early unit's `firewall restore`. The record → re-applied as it is;
 *    nothing recorded (first boot) → the baseline; a damaged record, or a re-apply the kernel
 *    refuses → the baseline, then the error (exit 8) naming the file.
 *  - ensureFailClosed: for a failed `once` / `run` boot work. When neither the last good nor the
 *    baseline is intact in the kernel (the early unit did not run, someone flushed our rules),
 *    put the last good back, else the baseline.
 *
 * The baseline is never recorded in firewall.json: that file stays "the last payload allowlist
 * applied successfully", so the payload's allowlist later replaces the baseline through
 * enforce's normal path (same table/chain, one transaction per family) and records itself.
 */
import { AgentError, FirewallError } from '../errors';
import { firewallOps } from './apply';
import { baselineReadBack, describeBaseline, renderBaseline } from './baseline';
import { detectBackend } from './backend';
import { runCommand } from './exec';
import { readRecorded, reapplyRecorded, type FirewallDeps } from './index';
import { fingerprint } from './readback';
import type { Backend, FirewallState, RenderedRuleset } from './types';

export interface BaselineInForce {
  backend: Backend;
  rendered: RenderedRuleset;
  /** The allowances in the allowlist syntax, e.g. "tcp/22". */
  allows: string;
}

/** "nft, 21 rules, sha256 …; allows tcp/22" */
export function describeBaselineInForce(b: BaselineInForce): string {
  return `${b.backend}, ${b.rendered.ruleCount} rules, sha256 ${b.rendered.digest}; allows ${b.allows} (firewall.alwaysAllow, firewall.baseline.allow)`;
}

/**
 * Put the baseline in force on this host's backend (detected, or firewall.backend): dry run,
 * then one transaction per family as every apply. Nothing is recorded.
 */
export async function applyBaseline(deps: FirewallDeps): Promise<BaselineInForce> {
  const runner = deps.runner ?? runCommand;
  const backend = await detectBackend(deps.config.firewall.backend, runner);
  const rendered = renderBaseline(deps.config.firewall, backend);
  const ops = await firewallOps(backend, runner);
  try {
    await ops.dryRun(rendered);
    await ops.apply(rendered);
  } catch (err) {
    if (!(err instanceof FirewallError)) throw err;
    throw new FirewallError(`firewall baseline (${backend}): ${err.message}`, err.step, backend, err.stderr, err.ruleset);
  }
  const applied = { backend, rendered, allows: describeBaseline(deps.config.firewall) };
  deps.log.info({ backend, digest: rendered.digest, ruleCount: rendered.ruleCount }, `firewall: baseline ruleset in force (allows ${applied.allows})`);
  return applied;
}

export type BootRestore =
  | { kind: 'restored'; state: FirewallState }
  | { kind: 'baseline'; baseline: BaselineInForce }
  /** Nothing recorded and firewall.baseline.enabled false: nothing touched. */
  | { kind: 'nothing' };

/**
 * `firewall restore` with mode enforce. Throws a FirewallError (exit 8) when the record could
 * not be restored; the baseline is then in force already, and the message says so (or says
 * why it is not).
 */
export async function restoreAtBoot(deps: FirewallDeps): Promise<BootRestore> {
  let state: FirewallState | null;
  try {
    state = await reapplyRecorded(deps);
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    throw await baselineInstead(deps, err);
  }
  if (state) return { kind: 'restored', state };
  if (!deps.config.firewall.baseline.enabled) return { kind: 'nothing' };
  return { kind: 'baseline', baseline: await applyBaseline(deps) };
}

/** After `failure` (a record that could not be restored): the baseline, and the error to report. */
async function baselineInstead(deps: FirewallDeps, failure: AgentError): Promise<FirewallError> {
  const step = failure instanceof FirewallError ? failure.step : 'load state';
  const backend = failure instanceof FirewallError ? failure.backend : null;
  if (!deps.config.firewall.baseline.enabled) {
    return failure instanceof FirewallError ? failure : new FirewallError(failure.message, step, backend);
  }
  try {
    const baseline = await applyBaseline(deps);
    return new FirewallError(`${failure.message}; the baseline ruleset is in force instead: ${describeBaselineInForce(baseline)}`, step, baseline.backend);
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    return new FirewallError(`${failure.message}; the baseline ruleset could NOT be put in force either: ${err.message}`, step, backend);
  }
}

export interface FailClosedResult {
  /** What is in force now: the recorded last good ruleset, the baseline, or nothing of ours (not enforcing, or baseline disabled with nothing recorded). */
  inForce: 'last-good' | 'baseline' | 'none';
  /** Whether the kernel was changed to get there. */
  changed: boolean;
}

/**
 * For the failure path of `once` / `run` (fetch refused, payload refused, disk full): make sure
 * the host is not open. With mode enforce: the last good ruleset or the baseline intact in
 * the kernel → nothing to do; otherwise the last good ruleset is put back, or — none recorded,
 * damaged, or refused — the baseline. Rejects with a FirewallError only when nothing could be
 * put in force; the caller logs it beside its own failure.
 */
export async function ensureFailClosed(deps: FirewallDeps): Promise<FailClosedResult> {
  const { config, log } = deps;
  if (config.firewall.mode !== 'enforce') return { inForce: 'none', changed: false };
  const runner = deps.runner ?? runCommand;
  const recorded = await readRecorded(deps).catch((err: unknown) => {
    if (!(err instanceof AgentError)) throw err;
    log.warn({ err }, `firewall: the recorded ruleset cannot be used: ${err.message}`);
    return null;
  });
  if (recorded) {
    const actual = await (await firewallOps(recorded.backend, runner)).readBack();
    if (fingerprint(actual) === recorded.fingerprint) return { inForce: 'last-good', changed: false };
  }
  const { enabled } = config.firewall.baseline;
  if (enabled) {
    const backend = await detectBackend(config.firewall.backend, runner);
    const actual = await (await firewallOps(backend, runner)).readBack();
    if (actual === baselineReadBack(config.firewall, backend)) return { inForce: 'baseline', changed: false };
  }
  if (recorded) {
    try {
      await reapplyRecorded(deps);
      log.warn({ backend: recorded.backend, digest: recorded.digest }, 'firewall: fail closed: the last good ruleset was not in force; re-applied it');
      return { inForce: 'last-good', changed: true };
    } catch (err) {
      if (!(err instanceof AgentError) || !enabled) throw err;
      log.error({ err }, `firewall: fail closed: re-applying the last good ruleset failed, putting the baseline in force: ${err.message}`);
    }
  }
  if (!enabled) {
    log.warn('firewall: fail closed: nothing recorded and firewall.baseline.enabled is false; the host stays as it is');
    return { inForce: 'none', changed: false };
  }
  await applyBaseline(deps);
  log.warn('firewall: fail closed: no good ruleset was in force; the baseline is');
  return { inForce: 'baseline', changed: true };
}
