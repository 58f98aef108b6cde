/**
 * The fail-closed baseline without a kernel: its policy (alwaysAllow + baseline.allow, no
 * payload), its rendering by the normal renderers (only the final drop's comment differs),
 * its expected read-back, the config key, and ensureFailClosed's decisions against a fake
 * nft "kernel" (a CommandRunner that keeps our table in memory and logs every command).
 * Real packets are in test/integration/firewall-baseline.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseConfig, type AgentConfig } from '../../agent/src/config';
import { ConfigError, FirewallError } from '../../agent/src/errors';
import { buildPolicy } from '../../agent/src/firewall/allowlist';
import { baselinePolicy, baselineReadBack, describeBaseline, renderBaseline } from '../../agent/src/firewall/baseline';
import { CommandNotFoundError, type CommandRunner } from '../../agent/src/firewall/exec';
import { ensureFailClosed, restoreAtBoot } from '../../agent/src/firewall/fail-closed';
import { fingerprint, normaliseNftListing } from '../../agent/src/firewall/readback';
import { renderRuleset } from '../../agent/src/firewall/render';
import { BASELINE_DENY_COMMENT, DEFAULT_DENY_COMMENT } from '../../agent/src/firewall/render-common';
import { renderNft } from '../../agent/src/firewall/render-nft';
import type { AppliedFirewall } from '../../agent/src/firewall/state';
import { silentLogger } from '../../agent/src/log';
import { RootedPaths } from '../../agent/src/paths';

const config = (firewall: Record<string, unknown> = {}): AgentConfig => parseConfig({ firewall: { mode: 'enforce', ...firewall } });

test('config: firewall.baseline defaults on with no extra rule; unknown keys and bad types are named', () => {
  assert.deepEqual(config().firewall.baseline, { enabled: true, allow: [] });
  assert.deepEqual(config({ baseline: { allow: ['tcp/9100 from 10.0.0.0/8'] } }).firewall.baseline, { enabled: true, allow: ['tcp/9100 from 10.0.0.0/8'] });
  assert.throws(() => config({ baseline: true }), /config key "firewall\.baseline": expected an object, got boolean true/);
  assert.throws(() => config({ baseline: { enable: false } }), /config key "firewall\.baseline\.enable": unknown key/);
  assert.throws(() => config({ baseline: { allow: [''] } }), /config key "firewall\.baseline\.allow\[0\]": must not be empty/);
});

test('the baseline policy: alwaysAllow + baseline.allow, deduplicated and sorted; never extraRules or the payload', () => {
  const cfg = config({ alwaysAllow: ['tcp/22', 'tcp/2222'], extraRules: ['tcp/8080'], baseline: { allow: ['udp/5353', 'tcp/22'] } }).firewall;
  const policy = baselinePolicy(cfg);
  assert.equal(policy.baseline, true);
  assert.deepEqual(policy.rules.map((r) => [r.proto, r.ports.from, r.origin]), [
    ['tcp', 22, 'config firewall.alwaysAllow[0]; config firewall.baseline.allow[1]'],
    ['tcp', 2222, 'config firewall.alwaysAllow[1]'],
    ['udp', 5353, 'config firewall.baseline.allow[0]'],
  ]);
  assert.equal(describeBaseline(cfg), 'tcp/22, tcp/2222, udp/5353');
  assert.equal(describeBaseline(config({ alwaysAllow: [] }).firewall), 'no port');
  assert.throws(
    () => baselinePolicy(config({ baseline: { allow: ['tcp/70000'] } }).firewall),
    (err: unknown) => err instanceof ConfigError && err.key === 'firewall.baseline.allow[0]' && /port 70000 is out of range/.test(err.message),
  );
});

test('rendered by the normal renderers: the payload-free ruleset, only the final drop says "baseline"', () => {
  const cfg = config({ allowIcmpEcho: false }).firewall;
  for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
    const baseline = renderBaseline(cfg, backend);
    const normal = renderRuleset(buildPolicy(new Map(), { ...cfg, extraRules: [] }), backend);
    for (const key of ['nft', 'ipv4', 'ipv6'] as const) {
      assert.equal(baseline[key], normal[key]?.replace(DEFAULT_DENY_COMMENT, BASELINE_DENY_COMMENT), `${backend} ${key}`);
    }
    assert.equal(baseline.ruleCount, normal.ruleCount);
    assert.notEqual(baseline.digest, normal.digest);
    const text = baseline.nft ?? `${baseline.ipv4}${baseline.ipv6}`;
    assert.match(text, backend === 'nft' ? /tcp dport 22 accept/ : /--dport 22 -m comment/);
    assert.match(text, backend === 'nft' ? /nd-neighbor-solicit/ : /--icmpv6-type 135/, 'IPv6 neighbour discovery stays allowed');
  }
});

test('baselineReadBack is what the kernel lists for the rendered baseline, and no payload ruleset reads back the same', () => {
  const cfg = config().firewall;
  assert.equal(baselineReadBack(cfg, 'nft'), normaliseNftListing(renderNft(baselinePolicy(cfg)).table));
  const ipt = baselineReadBack(cfg, 'iptables-legacy');
  assert.match(ipt, /^ipv4:\n-N CARTRIDGE-INPUT\n-A CARTRIDGE-INPUT -i lo -j RETURN\n[^]*baseline default deny[^]*\njumps from INPUT: 1\nipv6:\n/);
  const payloadFree = normaliseNftListing(renderNft(buildPolicy(new Map(), cfg)).table);
  assert.notEqual(baselineReadBack(cfg, 'nft'), payloadFree);
});

/** A host with only nft, whose kernel holds our table in memory. */
function fakeNftHost(opts: { refuseApply?: (script: string) => boolean } = {}) {
  const state = { table: null as string | null, calls: [] as string[] };
  const runner: CommandRunner = async (cmd, args, o) => {
    state.calls.push(`${cmd} ${args.join(' ')}`);
    if (cmd !== 'nft') throw new CommandNotFoundError(cmd);
    const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
    if (args[0] === '--version') return ok('nftables v1.0.6\n');
    if (args.join(' ') === '-s list table inet cartridge_agent') {
      return state.table === null ? { code: 1, stdout: '', stderr: 'Error: No such file or directory\n' } : ok(state.table);
    }
    if (args.join(' ') === '-c -f -') return ok();
    if (args.join(' ') === '-f -') {
      const script = o?.input ?? '';
      if (opts.refuseApply?.(script)) return { code: 1, stdout: '', stderr: 'Error: refused by the fake kernel\n' };
      const table = script.split('delete table inet cartridge_agent\n')[1] ?? '';
      state.table = table.trim() === '' ? null : table;
      return ok();
    }
    throw new Error(`fake nft: unexpected ${args.join(' ')}`);
  };
  return { state, runner };
}

/** A temp state dir; `firewall.json` holds `record` when given (a string is written as is). */
function stateDir(t: TestContext, record?: AppliedFirewall | string) {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-baseline-unit-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const file = path.join(root, 'var/lib/cartridge-agent/firewall.json');
  if (record !== undefined) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, typeof record === 'string' ? record : JSON.stringify(record));
  }
  return { paths: new RootedPaths(root), file };
}

/** The record enforce would have saved for a payload allowlist on nft. */
function lastGood(cfg: AgentConfig): AppliedFirewall {
  const policy = buildPolicy(new Map([['PORTS', '8080']]), cfg.firewall);
  const rendered = renderRuleset(policy, 'nft');
  const readBack = normaliseNftListing(renderNft(policy).table);
  return { version: 1, backend: 'nft', digest: rendered.digest, ruleCount: rendered.ruleCount, rendered, readBack, fingerprint: fingerprint(readBack), appliedAt: '2024-05-01T10:00:00.000Z' };
}

const applies = (calls: string[]) => calls.filter((c) => c === 'nft -f -').length;

test('ensureFailClosed: nothing of ours in force, nothing recorded → the baseline', async (t) => {
  const cfg = config();
  const host = fakeNftHost();
  const result = await ensureFailClosed({ config: cfg, ...stateDir(t), log: silentLogger(), runner: host.runner });
  assert.deepEqual(result, { inForce: 'baseline', changed: true });
  assert.equal(normaliseNftListing(host.state.table ?? ''), baselineReadBack(cfg.firewall, 'nft'));
  assert.ok(host.state.calls.includes('nft -c -f -'), 'dry run first');

  // Called again (another failed attempt): the baseline is intact, nothing is applied.
  host.state.calls = [];
  assert.deepEqual(await ensureFailClosed({ config: cfg, ...stateDir(t), log: silentLogger(), runner: host.runner }), { inForce: 'baseline', changed: false });
  assert.equal(applies(host.state.calls), 0);
});

test('ensureFailClosed: a recorded last good ruleset is put back; when in force, left alone', async (t) => {
  const cfg = config();
  const rec = lastGood(cfg);
  const host = fakeNftHost();
  const deps = { config: cfg, ...stateDir(t, rec), log: silentLogger(), runner: host.runner };
  assert.deepEqual(await ensureFailClosed(deps), { inForce: 'last-good', changed: true });
  assert.equal(host.state.table, renderNft(buildPolicy(new Map([['PORTS', '8080']]), cfg.firewall)).table);
  host.state.calls = [];
  assert.deepEqual(await ensureFailClosed(deps), { inForce: 'last-good', changed: false });
  assert.equal(applies(host.state.calls), 0);

  // Our table flushed by someone (drift, not absent): the last good goes back.
  host.state.table = 'table inet cartridge_agent {\n\tchain input {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n}\n';
  assert.deepEqual(await ensureFailClosed(deps), { inForce: 'last-good', changed: true });
});

test('ensureFailClosed: a damaged record or a refused re-apply → the baseline', async (t) => {
  const cfg = config();
  const damaged = fakeNftHost();
  assert.deepEqual(await ensureFailClosed({ config: cfg, ...stateDir(t, '{ torn'), log: silentLogger(), runner: damaged.runner }), { inForce: 'baseline', changed: true });
  assert.equal(normaliseNftListing(damaged.state.table ?? ''), baselineReadBack(cfg.firewall, 'nft'));

  const refusing = fakeNftHost({ refuseApply: (s) => s.includes('dport 8080') });
  const deps = { config: cfg, ...stateDir(t, lastGood(cfg)), log: silentLogger(), runner: refusing.runner };
  assert.deepEqual(await ensureFailClosed(deps), { inForce: 'baseline', changed: true });
  assert.equal(normaliseNftListing(refusing.state.table ?? ''), baselineReadBack(cfg.firewall, 'nft'));
});

test('ensureFailClosed: mode plan/off or the baseline disabled touch nothing; nothing applicable rejects', async (t) => {
  for (const mode of ['plan', 'off'] as const) {
    const host = fakeNftHost();
    assert.deepEqual(await ensureFailClosed({ config: config({ mode }), ...stateDir(t), log: silentLogger(), runner: host.runner }), { inForce: 'none', changed: false });
    assert.deepEqual(host.state.calls, [], `mode ${mode}: no command at all`);
  }
  const host = fakeNftHost();
  assert.deepEqual(await ensureFailClosed({ config: config({ baseline: { enabled: false } }), ...stateDir(t), log: silentLogger(), runner: host.runner }), { inForce: 'none', changed: false });
  assert.equal(host.state.table, null);

  const refusing = fakeNftHost({ refuseApply: () => true });
  await assert.rejects(
    ensureFailClosed({ config: config(), ...stateDir(t), log: silentLogger(), runner: refusing.runner }),
    (err: unknown) => err instanceof FirewallError && /^firewall baseline \(nft\): firewall \(nft\): apply \(nft -f\) failed .*refused by the fake kernel/.test(err.message),
  );
});

test('restoreAtBoot: first boot → baseline; damaged record → baseline, then an error naming the file', async (t) => {
  const cfg = config();
  const first = fakeNftHost();
  const done = await restoreAtBoot({ config: cfg, ...stateDir(t), log: silentLogger(), runner: first.runner });
  assert.equal(done.kind, 'baseline');
  assert.equal(normaliseNftListing(first.state.table ?? ''), baselineReadBack(cfg.firewall, 'nft'));

  const host = fakeNftHost();
  const dir = stateDir(t, '{"version": 2}');
  await assert.rejects(
    restoreAtBoot({ config: cfg, ...dir, log: silentLogger(), runner: host.runner }),
    (err: unknown) =>
      err instanceof FirewallError &&
      err.message.startsWith(`${dir.file}: the firewall record is damaged: not a firewall record of this agent (version 2, expected 1); the baseline ruleset is in force instead: nft, `) &&
      err.message.endsWith('allows tcp/22 (firewall.alwaysAllow, firewall.baseline.allow)'),
  );
  assert.equal(normaliseNftListing(host.state.table ?? ''), baselineReadBack(cfg.firewall, 'nft'));

  const disabled = fakeNftHost();
  await assert.rejects(restoreAtBoot({ config: config({ baseline: { enabled: false } }), ...stateDir(t, '{ torn'), log: silentLogger(), runner: disabled.runner }), /the firewall record is damaged: not valid JSON/);
  assert.equal(disabled.state.table, null, 'baseline disabled: nothing applied');
  assert.deepEqual(await restoreAtBoot({ config: config({ baseline: { enabled: false } }), ...stateDir(t), log: silentLogger(), runner: disabled.runner }), { kind: 'nothing' });
});
