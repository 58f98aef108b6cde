/**
 * The boot bench's arithmetic, pure: the timestamps one boot left (all on CLOCK_MONOTONIC, µs,
 * the clock systemd's *TimestampMonotonic use; a container shares it with the host) in, the
 * side-by-side figures, the agent's phase table and the targets out. bench/boot.ts collects the
 * samples (bench/lib/boot-probe.ts) and prints what this returns.
 */
import type { ImageKind } from './boot-images';

export interface LogLine {
  /** The agent's pino `msg`. */
  msg: string;
  /** When the agent logged it (its own `time`, converted to CLOCK_MONOTONIC µs). */
  us: number;
}

export interface UnitTimes {
  /** InactiveExitTimestampMonotonic: the unit started (its first ExecStartPre=). */
  start: number;
  /** ActiveEnterTimestampMonotonic: a oneshot finished, a Type=notify service sent READY=1. */
  active: number;
}

export interface BootSample {
  kind: ImageKind;
  round: number;
  /** systemd-nspawn spawned. */
  launch: number;
  /** multi-user.target reached. */
  multiUser: number;
  /** The boot work's profile.d file got its final name and content (its ctime). */
  varsInPlace?: number;
  /** Agent: READY=1; cloud-init: runcmd's marker touched (its ctime). */
  effect?: number;
  /** Units by name (the agent's, cloud-init's stages): where the time went. */
  units: Record<string, UnitTimes>;
  /** The agent unit's JSON log lines, in order. */
  log: LogLine[];
}

export const AGENT_UNIT = 'cartridge-agent.service';
export const FIREWALL_UNIT = 'cartridge-agent-firewall.service';
export const CLOUD_INIT_UNITS = ['cloud-init-local.service', 'cloud-init.service', 'cloud-config.service', 'cloud-final.service'];

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? (s[(n - 1) / 2] as number) : ((s[n / 2 - 1] as number) + (s[n / 2] as number)) / 2;
};

/** A point in one agent boot: a unit timestamp, the first log line, or the first line whose msg matches. */
type Point = 'launch' | 'firewall start' | 'firewall done' | 'unit start' | 'first log line' | 'READY=1' | RegExp;

function pointUs(s: BootSample, p: Point): number | undefined {
  const unit = s.units[AGENT_UNIT];
  const fw = s.units[FIREWALL_UNIT];
  if (p === 'launch') return s.launch;
  if (p === 'firewall start') return fw?.start;
  if (p === 'firewall done') return fw?.active;
  if (p === 'unit start') return unit?.start;
  if (p === 'READY=1') return unit?.active;
  const lines = unit ? s.log.filter((l) => l.us >= unit.start - 1000) : s.log;
  if (p === 'first log line') return lines[0]?.us;
  return lines.find((l) => p.test(l.msg))?.us;
}

/**
 * The agent's phases, named after what happens between two of its log lines (agent/src/boot.ts,
 * agent/src/firewall/index.ts) or unit timestamps. A phase whose line is not logged (the
 * code changed) shows as not measured, never as 0.
 */
export const AGENT_PHASES: ReadonlyArray<{ name: string; from: Point; to: Point }> = [
  { name: 'launch → firewall unit start (container boot up to local-fs.target)', from: 'launch', to: 'firewall start' },
  { name: `${FIREWALL_UNIT} (start → done)`, from: 'firewall start', to: 'firewall done' },
  { name: `firewall unit done → ${AGENT_UNIT} start`, from: 'firewall done', to: 'unit start' },
  { name: 'agent unit start → first log line (node start, bundle, config)', from: 'unit start', to: 'first log line' },
  { name: 'discovery (discovering → pointer found)', from: /^discovering payload pointer$/, to: /^payload pointer found$/ },
  { name: 'pointer found → payload accepted', from: /^payload pointer found$/, to: /^payload accepted$/ },
  { name: 'payload accepted → firewall: enforce (exports staged)', from: /^payload accepted$/, to: /^firewall: enforce$/ },
  { name: 'firewall enforce (→ allowlist applied)', from: /^firewall: enforce$/, to: /^firewall: (allowlist applied|ruleset already in force)/ },
  { name: 'allowlist applied → exports written (commit)', from: /^firewall: (allowlist applied|ruleset already in force)/, to: /^exports written$/ },
  { name: 'exports written → READY=1', from: /^exports written$/, to: 'READY=1' },
  { name: 'agent unit start → READY=1', from: 'unit start', to: 'READY=1' },
];

export interface Row {
  name: string;
  /** Per run, ms (NaN: not measured in that run). */
  runs: number[];
  median: number;
}

function row(name: string, runs: number[]): Row {
  const measured = runs.filter((x) => Number.isFinite(x));
  return { name, runs, median: median(measured) };
}

const ms = (from: number | undefined, to: number | undefined): number => (from === undefined || to === undefined ? NaN : (to - from) / 1000);

export function agentPhases(agentBoots: readonly BootSample[]): Row[] {
  return AGENT_PHASES.map((p) => row(p.name, agentBoots.map((s) => ms(pointUs(s, p.from), pointUs(s, p.to)))));
}

/** Every distinct log message of the agent, ms after its unit start (first occurrence), in order. */
export function agentTimeline(agentBoots: readonly BootSample[]): Row[] {
  const names: string[] = [];
  for (const s of agentBoots) for (const l of s.log) if (!names.includes(l.msg)) names.push(l.msg);
  const rows = names.map((msg) => row(msg, agentBoots.map((s) => ms(s.units[AGENT_UNIT]?.start, s.log.find((l) => l.msg === msg)?.us))));
  return rows.sort((a, b) => a.median - b.median);
}

/** cloud-init's stages: each unit's start → done. */
export function cloudInitStages(ciBoots: readonly BootSample[]): Row[] {
  return CLOUD_INIT_UNITS.map((u) => row(`${u} (start → done)`, ciBoots.map((s) => ms(s.units[u]?.start, s.units[u]?.active))));
}

export interface SideBySide {
  /** launch → …, per kind. */
  launch: Row[];
  /** Per round: the agent's and cloud-init's launch → point minus the same round's bare launch → multi-user.target. */
  varsDelta: { agent: Row; cloudInit: Row };
  effectDelta: { agent: Row; cloudInit: Row };
  unitToReady: Row;
}

export function sideBySide(samples: readonly BootSample[]): SideBySide {
  const of = (kind: ImageKind) => samples.filter((s) => s.kind === kind).sort((a, b) => a.round - b.round);
  const bare = of('bare');
  const bareUp = new Map(bare.map((s) => [s.round, ms(s.launch, s.multiUser)]));
  const since = (s: BootSample, t: number | undefined) => ms(s.launch, t);
  const delta = (kind: ImageKind, pick: (s: BootSample) => number | undefined) =>
    of(kind).map((s) => since(s, pick(s)) - (bareUp.get(s.round) ?? NaN));
  return {
    launch: [
      row('bare: multi-user.target reached', bare.map((s) => since(s, s.multiUser))),
      row('agent: variables in place', of('agent').map((s) => since(s, s.varsInPlace))),
      row('agent: effect complete (READY=1)', of('agent').map((s) => since(s, s.effect))),
      row('agent: multi-user.target reached', of('agent').map((s) => since(s, s.multiUser))),
      row('cloud-init: variables in place', of('cloud-init').map((s) => since(s, s.varsInPlace))),
      row('cloud-init: effect complete (runcmd)', of('cloud-init').map((s) => since(s, s.effect))),
      row('cloud-init: multi-user.target reached', of('cloud-init').map((s) => since(s, s.multiUser))),
    ],
    varsDelta: { agent: row('agent', delta('agent', (s) => s.varsInPlace)), cloudInit: row('cloud-init', delta('cloud-init', (s) => s.varsInPlace)) },
    effectDelta: { agent: row('agent', delta('agent', (s) => s.effect)), cloudInit: row('cloud-init', delta('cloud-init', (s) => s.effect)) },
    unitToReady: row('agent unit start → READY=1', of('agent').map((s) => ms(s.units[AGENT_UNIT]?.start, s.units[AGENT_UNIT]?.active))),
  };
}

export interface TargetOutcome {
  name: string;
  met: boolean;
  /** Stretch targets are printed but do not fail the bench. */
  stretch: boolean;
  detail: string;
}

export const READY_TARGET_MS = 120;
export const VARS_RATIO_TARGET = 1 / 5;
export const VARS_RATIO_STRETCH = 1 / 10;

/** The issue's boot targets against this run's medians; a target that could not be measured is missed. */
export function bootTargets(r: SideBySide): TargetOutcome[] {
  const out: TargetOutcome[] = [];
  const ready = r.unitToReady.median;
  out.push({
    name: `agent unit start → READY=1 median ≤ ${READY_TARGET_MS} ms`,
    met: ready <= READY_TARGET_MS,
    stretch: false,
    detail: Number.isFinite(ready)
      ? `${ready.toFixed(0)} ms${ready <= READY_TARGET_MS ? '' : `, over by ${(ready - READY_TARGET_MS).toFixed(0)} ms (${(ready / READY_TARGET_MS).toFixed(1)}× the target)`}`
      : 'not measured',
  });
  const agent = r.varsDelta.agent.median;
  const ci = r.varsDelta.cloudInit.median;
  for (const [ratio, stretch] of [[VARS_RATIO_TARGET, false], [VARS_RATIO_STRETCH, true]] as const) {
    const limit = ci * ratio;
    const met = Number.isFinite(agent) && Number.isFinite(ci) && agent <= limit;
    out.push({
      name: `launch → variables in place, delta over bare: agent ≤ 1/${Math.round(1 / ratio)} of cloud-init's${stretch ? ' (stretch)' : ''}`,
      met,
      stretch,
      detail:
        Number.isFinite(agent) && Number.isFinite(ci)
          ? `agent ${signed(agent)} ms vs cloud-init ${signed(ci)} ms: ratio ${(agent / ci).toFixed(2)}, limit ${signed(limit)} ms${met ? '' : `, over by ${(agent - limit).toFixed(0)} ms`}`
          : 'not measured',
    });
  }
  return out;
}

export const signed = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(0)}` : '—');
