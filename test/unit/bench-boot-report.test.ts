/**
 * The boot bench's arithmetic (bench/lib/boot-report.ts) on made-up samples: deltas over the
 * bare boot of the same round, the agent's phases from its log lines and unit timestamps, and
 * the targets (met, missed by how much, not measured counts as missed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentPhases, agentTimeline, AGENT_UNIT, bootTargets, FIREWALL_UNIT, median, sideBySide, type BootSample } from '../../bench/lib/boot-report';

const MS = 1000;

function bare(round: number, upMs: number): BootSample {
  return { kind: 'bare', round, launch: 0, multiUser: upMs * MS, units: {}, log: [] };
}

/** An agent boot whose unit starts at `startMs` after launch and takes `readyMs` to READY=1. */
function agent(round: number, startMs: number, readyMs: number, varsMs: number): BootSample {
  const t = (ms: number) => (startMs + ms) * MS;
  return {
    kind: 'agent',
    round,
    launch: 0,
    multiUser: t(readyMs + 5),
    varsInPlace: t(varsMs),
    effect: t(readyMs),
    units: { [AGENT_UNIT]: { start: t(0), active: t(readyMs) }, [FIREWALL_UNIT]: { start: t(-300), active: t(-10) } },
    log: [
      { msg: 'discovering payload pointer', us: t(50) },
      { msg: 'payload pointer found', us: t(60) },
      { msg: 'payload accepted', us: t(62) },
      { msg: 'staging exports', us: t(63) },
      { msg: 'firewall: enforce', us: t(70) },
      { msg: 'firewall: allowlist applied', us: t(90) },
      { msg: 'exports written', us: t(varsMs + 1) },
    ],
  };
}

function cloudInit(round: number, varsMs: number, effectMs: number): BootSample {
  return { kind: 'cloud-init', round, launch: 0, multiUser: effectMs * MS, varsInPlace: varsMs * MS, effect: effectMs * MS, units: {}, log: [] };
}

test('median of odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('deltas are over the bare boot of the same round; the ratio is of their medians', () => {
  const samples = [bare(1, 1000), bare(2, 2000), agent(1, 1100, 100, 95), agent(2, 2100, 100, 95), cloudInit(1, 2000, 3000), cloudInit(2, 3000, 4000)];
  const r = sideBySide(samples);
  assert.deepEqual(r.varsDelta.agent.runs, [195, 195]);
  assert.deepEqual(r.varsDelta.cloudInit.runs, [1000, 1000]);
  assert.deepEqual(r.effectDelta.agent.runs, [200, 200]);
  assert.deepEqual(r.unitToReady.runs, [100, 100]);
  const [ready, ratio, stretch] = bootTargets(r);
  assert.equal(ready?.met, true);
  assert.equal(ratio?.met, true, ratio?.detail); // 195 ≤ 1000 / 5
  assert.equal(stretch?.met, false, stretch?.detail); // 195 > 1000 / 10
  assert.equal(stretch?.stretch, true);
  assert.match(stretch?.detail ?? '', /over by 95 ms/);
});

test('a missed target says by how much', () => {
  const r = sideBySide([bare(1, 1000), agent(1, 1500, 480, 470), cloudInit(1, 2000, 3000)]);
  const [ready, ratio] = bootTargets(r);
  assert.equal(ready?.met, false);
  assert.match(ready?.detail ?? '', /480 ms, over by 360 ms \(4\.0× the target\)/);
  assert.equal(ratio?.met, false);
  assert.match(ratio?.detail ?? '', /agent \+970 ms vs cloud-init \+1000 ms: ratio 0\.97, limit \+200 ms, over by 770 ms/);
});

test('nothing measured is a missed target, not a met one', () => {
  const outcomes = bootTargets(sideBySide([bare(1, 1000)]));
  assert.ok(outcomes.every((o) => !o.met && o.detail === 'not measured'), JSON.stringify(outcomes));
});

test('agent phases come from its log lines and unit timestamps; a line not logged is not measured', () => {
  const boot = agent(1, 1000, 120, 95);
  boot.log = boot.log.filter((l) => l.msg !== 'payload pointer found');
  const phases = new Map(agentPhases([boot]).map((p) => [p.name, p.median]));
  assert.equal(phases.get('launch → firewall unit start (container boot up to local-fs.target)'), 700);
  assert.equal(phases.get(`${FIREWALL_UNIT} (start → done)`), 290);
  assert.equal(phases.get(`firewall unit done → ${AGENT_UNIT} start`), 10);
  assert.equal(phases.get('agent unit start → first log line (node start, bundle, config)'), 50);
  assert.ok(Number.isNaN(phases.get('discovery (discovering → pointer found)')));
  assert.equal(phases.get('firewall enforce (→ allowlist applied)'), 20);
  assert.equal(phases.get('allowlist applied → exports written (commit)'), 6);
  assert.equal(phases.get('exports written → READY=1'), 24);
  assert.equal(phases.get('agent unit start → READY=1'), 120);
});

test('the timeline lists every message once, ordered by when it came', () => {
  const rows = agentTimeline([agent(1, 1000, 120, 95), agent(2, 1000, 120, 95)]);
  assert.deepEqual(rows.map((r) => r.name).slice(0, 3), ['discovering payload pointer', 'payload pointer found', 'payload accepted']);
  assert.deepEqual(rows[0]?.runs, [50, 50]);
});
