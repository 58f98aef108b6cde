/**
 * The port allowlist, orchestrated: what `once`, `run` and `cartridge-agent firewall …` call.
 * enforce = build policy → detect the backend beside one listing of our rules (the "unchanged"
 * check and the snapshot) and the guard baseline → render → apply (one transaction per family,
 * no separate dry run) → guard check beside the read-back (roll back to the snapshot on
 * lock-out) → persist. Stopping the agent never
 * removes rules; only removeFirewall does.
 */
import type { AgentConfig } from '../config';
import { FirewallError } from '../errors';
import type { Logger } from '../log';
import type { RootedPaths } from '../paths';
import { buildPolicy } from './allowlist';
import { baselineReadBack } from './baseline';
import { firewallOps, hostOpsWithSnapshot } from './apply';
import { detectBackend, type BackendPreference } from './backend';
import { runCommand, type CommandRunner } from './exec';
import { describeEndpoint, guardBaseline, guardCheck, probeEndpoints, type Endpoint, type ProbeFn } from './guard';
import { compareWithApplied, FirewallKeeper, type DriftReport } from './keeper';
import { fingerprint } from './readback';
import { renderRuleset } from './render';
import { verifyRecorded } from './recorded';
import { forgetApplied, loadApplied, saveApplied, stateFilePath, stateFromApplied, type AppliedFirewall } from './state';
import type { Backend, FirewallState, RenderedRuleset } from './types';

export type { Endpoint, ProbeFn } from './guard';
export { endpointsFromUrls } from './guard';
export type { DriftReport } from './keeper';
export { FirewallKeeper } from './keeper';
export { stageApplied } from './state';

export interface FirewallDeps {
  config: AgentConfig;
  paths: RootedPaths;
  log: Logger;
  /** Runs nft/iptables (default: directly on this host). */
  runner?: CommandRunner;
}

export interface ApplyDeps extends FirewallDeps {
  payloadVars: ReadonlyMap<string, string>;
  /** Payload URL host / broker: must stay reachable after applying (lock-out guard). */
  controllerEndpoints: Endpoint[];
  probe?: ProbeFn;
}

const stateDir = (d: FirewallDeps) => d.paths.resolve(d.config.state.dir);

export interface Plan {
  backend: Backend;
  rendered: RenderedRuleset;
  /** Human-readable: the exact text(s) that would be applied. */
  text: string;
  /** Set when the host's backend could not be detected and nft was assumed. */
  note: string | null;
}

/** Render for this host's backend (or the configured one); applies nothing. */
export async function planFirewall(deps: FirewallDeps & { payloadVars: ReadonlyMap<string, string> }): Promise<Plan> {
  const policy = buildPolicy(deps.payloadVars, deps.config.firewall);
  let backend: Backend;
  let note: string | null = null;
  try {
    backend = await detectBackend(deps.config.firewall.backend, deps.runner ?? runCommand);
  } catch (err) {
    if (!(err instanceof FirewallError) || deps.config.firewall.backend !== 'auto') throw err;
    backend = 'nft';
    note = `${err.message}; planned for nft`;
  }
  const rendered = renderRuleset(policy, backend);
  const text =
    backend === 'nft'
      ? `# nft -f - (backend nft)\n${rendered.nft ?? ''}`
      : `# ${backend}: iptables-restore --noflush (IPv4); plus "-I INPUT 1 -j CARTRIDGE-INPUT" when missing\n${rendered.ipv4 ?? ''}` +
        `# ${backend}: ip6tables-restore --noflush (IPv6); plus the same jump when missing\n${rendered.ipv6 ?? ''}`;
  return { backend, rendered, text, note };
}

/**
 * What the boot transaction gets from the firewall stage: the state now in force, the record
 * to stage (null: nothing new to record), and how to go back when a later stage fails.
 */
export interface FirewallChange {
  state: FirewallState;
  record: AppliedFirewall | null;
  /** Put the rules that were in force before back (a no-op when nothing was applied). */
  rollback(): Promise<void>;
  /** After the commit: tidy up what the change made obsolete (the old backend's rules). */
  finish(): Promise<void>;
}

const NO_CHANGE = { record: null, rollback: async () => undefined, finish: async () => undefined };

/** `firewall apply`: mode off: nothing; plan: render and log; enforce: apply, guard and record at once. */
export async function applyFirewall(deps: ApplyDeps): Promise<FirewallState> {
  const change = await changeFirewall(deps);
  if (change.record) {
    try {
      await saveApplied(stateDir(deps), change.record, deps.paths);
    } catch (err) {
      await change.rollback();
      throw err;
    }
  }
  await change.finish();
  return change.state;
}

/**
 * The firewall stage of the boot work: mode off: nothing; plan: render and log; enforce:
 * apply, lock-out guard (rolled back on lock-out) and read back — but the record is
 * left to the caller, who stages it with the other files and rolls back if they fail.
 */
export async function changeFirewall(deps: ApplyDeps): Promise<FirewallChange> {
  const { config, log } = deps;
  const { mode } = config.firewall;
  if (mode === 'off') {
    log.info('firewall: mode off, not touching the firewall');
    return { state: stateFromApplied('off', null), ...NO_CHANGE };
  }
  if (mode === 'plan') {
    const plan = await planFirewall(deps);
    log.info({ backend: plan.backend, digest: plan.rendered.digest, ruleCount: plan.rendered.ruleCount, ruleset: plan.text, note: plan.note }, 'firewall: mode plan, rendered ruleset not applied');
    return { state: { ...stateFromApplied('plan', null), backend: plan.backend, digest: plan.rendered.digest, ruleCount: plan.rendered.ruleCount }, ...NO_CHANGE };
  }
  return enforce(deps);
}

async function enforce(deps: ApplyDeps): Promise<FirewallChange> {
  const { config, log } = deps;
  const runner = deps.runner ?? runCommand;
  const { guard } = config.firewall;
  const probe = deps.probe ?? probeEndpoints;
  const policy = buildPolicy(deps.payloadVars, config.firewall);
  const recorded = await loadApplied(stateDir(deps)).catch(() => null);

  // The guard's baseline probe changes nothing: when the digests already say the rules will
  // change (no record, another payload), it runs beside the detection and the listing.
  const guess = guessBackend(config.firewall.backend, recorded);
  const forGuess = renderRuleset(policy, guess);
  const mayBeUnchanged = recorded !== null && recorded.backend === guess && recorded.digest === forGuess.digest;
  const probeBaseline = () => (guard.enabled ? probe(deps.controllerEndpoints, guard.timeoutMs) : Promise.resolve(null));
  const early = mayBeUnchanged ? null : probeBaseline();
  early?.catch(() => undefined); // awaited below; a failed detection must not leave it unhandled
  const { backend, ops, before } = await hostOpsWithSnapshot(config.firewall.backend, guess, runner);
  const rendered = backend === guess ? forGuess : renderRuleset(policy, backend);

  // One listing serves as the "unchanged" check, the snapshot to roll back to, and the jumps.
  if (recorded && recorded.backend === backend && recorded.digest === rendered.digest && fingerprint(ops.snapshotReadBack(before)) === recorded.fingerprint) {
    log.info({ backend, digest: rendered.digest }, 'firewall: ruleset already in force, unchanged');
    await early;
    return { state: stateFromApplied('enforce', recorded), ...NO_CHANGE };
  }

  const baselineProbe = await (early ?? probeBaseline());
  const baseline = baselineProbe ? guardBaseline(baselineProbe) : { endpoints: [], skipped: 'disabled by firewall.guard.enabled' };
  if (baseline.skipped) log.warn({ backend }, `firewall: lock-out guard skipped: ${baseline.skipped}`);

  // No separate dry run: the apply is one transaction per family, and a refused one changes
  // nothing (nft) or is put back (the other iptables family); a dry run would cost as much.
  await ops.apply(rendered, before);
  /** Back to `before`; true when the read-back matches it exactly. */
  const restoreBefore = async (): Promise<boolean> => {
    await ops.restore(before);
    return fingerprint(await ops.readBack()) === fingerprint(ops.snapshotReadBack(before));
  };

  // The read-back runs beside the guard's check; it is only kept when the guard passes.
  const readBackNow = ops.readBack().then(
    (value) => ({ value, error: null }),
    (error: unknown) => ({ value: null, error }),
  );
  const failures = baseline.endpoints.length > 0 ? await guardCheck(baseline.endpoints, guard.timeoutMs, probe) : [];
  if (failures.length > 0) {
    await readBackNow;
    const lost = failures.map((f) => `${describeEndpoint(f.endpoint)} (${f.detail})`).join(', ');
    let restored = false;
    let why = '';
    try {
      restored = await restoreBefore();
    } catch (err) {
      why = `: ${(err as Error).message}`;
    }
    const err = new FirewallError(
      `firewall (${backend}): lock-out guard: controller reachable before applying but not within ${guard.timeoutMs} ms after: ${lost}; ` +
        (restored ? 'rolled back to the previous rules' : `rolling back did NOT restore the previous rules exactly${why}`),
      'guard',
      backend,
      '',
      rendered.nft ?? `${rendered.ipv4 ?? ''}${rendered.ipv6 ?? ''}`,
    );
    log.error({ err, backend, digest: rendered.digest }, err.message);
    throw err;
  }
  if (baseline.endpoints.length > 0) log.info({ backend, endpoints: baseline.endpoints.map(describeEndpoint) }, 'firewall: controller still reachable after applying');

  const listed = await readBackNow;
  if (listed.error !== null) {
    // Applied but not listed: put the previous rules back, as for any later failure.
    await restoreBefore().catch(() => false);
    throw listed.error;
  }
  const readBack = listed.value;
  const applied: AppliedFirewall = {
    version: 1,
    backend,
    digest: rendered.digest,
    ruleCount: rendered.ruleCount,
    rendered,
    readBack,
    fingerprint: fingerprint(readBack),
    appliedAt: new Date().toISOString(),
  };
  log.info({ backend, digest: rendered.digest, ruleCount: rendered.ruleCount }, 'firewall: allowlist applied');
  return {
    state: stateFromApplied('enforce', applied),
    record: applied,
    async rollback() {
      const exact = await restoreBefore().catch((err: unknown) => {
        log.error({ err, backend }, `firewall: rolling back to the previous rules failed: ${(err as Error).message}`);
        return false;
      });
      log.warn({ backend, exact }, exact ? 'firewall: rolled back to the previous rules' : 'firewall: rolling back did NOT restore the previous rules exactly');
    },
    async finish() {
      if (recorded && recorded.backend !== backend) await removeStale(recorded.backend, runner, log);
    },
  };
}

/** The backend enforce lists first: the configured one, else the recorded one, else nft. */
function guessBackend(preference: BackendPreference, recorded: AppliedFirewall | null): Backend {
  return preference !== 'auto' ? preference : (recorded?.backend ?? 'nft');
}

/**
 * The host changed backend since the last apply (nft installed, config changed): the old
 * backend's rules would still be evaluated — and drop what the new allowlist allows — so they
 * go, once the new ones are in force.
 */
async function removeStale(old: Backend, runner: CommandRunner, log: Logger): Promise<void> {
  try {
    await (await firewallOps(old, runner)).remove();
    log.info({ backend: old }, `firewall: removed our rules from the previous backend ${old}`);
  } catch (err) {
    log.warn({ err, backend: old }, `firewall: could not remove our rules from the previous backend ${old}: ${(err as Error).message}`);
  }
}

/**
 * The record `firewall restore` works from: null when nothing is recorded (a fresh image's
 * first boot); a FirewallError naming the file when it is unreadable, not a record, or its
 * ruleset text is not what was applied.
 */
export async function readRecorded(deps: FirewallDeps): Promise<AppliedFirewall | null> {
  const applied = await loadApplied(stateDir(deps));
  if (applied) verifyRecorded(applied, stateFilePath(stateDir(deps)));
  return applied;
}

/**
 * Early boot, before the network (`firewall restore`): put the recorded last-good ruleset back
 * exactly as recorded — no payload, no controller, so no re-rendering, no backend detection and
 * no guard. Dry run first, then one transaction per family (ops.apply puts a family that went
 * in back as it was when the other fails), so a failure leaves no half-applied ruleset.
 * Null when nothing is recorded.
 */
export async function reapplyRecorded(deps: FirewallDeps): Promise<FirewallState | null> {
  const applied = await readRecorded(deps);
  if (!applied) return null;
  try {
    const ops = await firewallOps(applied.backend, deps.runner ?? runCommand);
    await ops.dryRun(applied.rendered);
    await ops.apply(applied.rendered);
  } catch (err) {
    if (!(err instanceof FirewallError)) throw err;
    throw new FirewallError(
      `firewall restore (${applied.backend}, recorded in ${stateFilePath(stateDir(deps))}): ${err.message}`,
      err.step,
      err.backend ?? applied.backend,
      err.stderr,
      err.ruleset,
    );
  }
  deps.log.info({ backend: applied.backend, digest: applied.digest, appliedAt: applied.appliedAt }, 'firewall: recorded ruleset re-applied');
  return stateFromApplied('enforce', applied);
}

export interface CheckResult {
  /** What was recorded as applied (null: nothing recorded). */
  applied: Pick<AppliedFirewall, 'backend' | 'digest' | 'ruleCount' | 'appliedAt'> | null;
  /** `baseline`: nothing recorded and the fail-closed baseline is what is in force. */
  report: DriftReport & { baseline?: boolean };
}

/** `firewall check`: compare the kernel's rules with the recorded ones; changes nothing. */
export async function checkFirewall(deps: FirewallDeps): Promise<CheckResult> {
  const runner = deps.runner ?? runCommand;
  const applied = await loadApplied(stateDir(deps));
  const checkedAt = new Date().toISOString();
  if (applied) {
    const { drifted, differences } = await compareWithApplied(await firewallOps(applied.backend, runner), applied);
    const { backend, digest, ruleCount, appliedAt } = applied;
    return { applied: { backend, digest, ruleCount, appliedAt }, report: { checkedAt, drifted, differences, healed: false, error: null } };
  }
  // Nothing recorded: the baseline (fail closed) is expected; other rules of ours in the kernel
  // are drift (e.g. a half-done removal).
  const backend = await detectBackend(deps.config.firewall.backend, runner);
  const actual = await (await firewallOps(backend, runner)).readBack();
  const baseline = actual !== null && deps.config.firewall.baseline.enabled && actual === baselineReadBack(deps.config.firewall, backend);
  const differences = actual === null || baseline ? [] : [`rules of ours are present (${backend}) although none are recorded as applied`];
  return { applied: null, report: { checkedAt, drifted: differences.length > 0, differences, healed: false, error: null, baseline } };
}

/** `firewall remove`: delete our table/chains and jumps (recorded and detected backend), forget the record. */
export async function removeFirewall(deps: FirewallDeps): Promise<Backend[]> {
  const runner = deps.runner ?? runCommand;
  const recorded = await loadApplied(stateDir(deps)).catch(() => null);
  const backends = new Set<Backend>();
  if (recorded) backends.add(recorded.backend);
  try {
    backends.add(await detectBackend(deps.config.firewall.backend, runner));
  } catch (err) {
    if (backends.size === 0) throw err;
  }
  for (const backend of backends) await (await firewallOps(backend, runner)).remove();
  await forgetApplied(stateDir(deps));
  deps.log.info({ backends: [...backends] }, 'firewall: our rules removed');
  return [...backends];
}

/** The drift loop for `run`, from the recorded ruleset; null when nothing is applied (or not enforcing). */
export async function createFirewallKeeper(deps: FirewallDeps & { onState?: (s: FirewallState) => void }): Promise<FirewallKeeper | null> {
  if (deps.config.firewall.mode !== 'enforce') return null;
  const applied = await loadApplied(stateDir(deps));
  if (!applied) return null;
  return new FirewallKeeper({
    runner: deps.runner ?? runCommand,
    applied,
    intervalSeconds: deps.config.firewall.driftCheckSeconds,
    log: deps.log,
    ...(deps.onState ? { onState: deps.onState } : {}),
  });
}
