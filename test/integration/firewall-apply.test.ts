/**
 * The orchestration the CLI and `once` use (applyFirewall / planFirewall / checkFirewall /
 * removeFirewall) against the real kernel in a namespace, with the state file under a temp
 * --root: modes, the record in firewall.json, unchanged re-apply, check in "another process"
 * (a fresh call that only has the file), refused allowlists, removal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { AgentError } from '../../agent/src/errors';
import { firewallOps } from '../../agent/src/firewall/apply';
import type { CommandRunner } from '../../agent/src/firewall/exec';
import { applyFirewall, checkFirewall, planFirewall, reapplyRecorded, removeFirewall } from '../../agent/src/firewall/index';
import { loadApplied } from '../../agent/src/firewall/state';
import { silentLogger } from '../../agent/src/log';
import { RootedPaths } from '../../agent/src/paths';
import { requireCommands, requireRoot } from '../helpers/env';
import { NetnsPair, targets } from '../helpers/netns';

const PAYLOAD = new Map([['PORTS', '8080'], ['FIREWALL_ALLOW', 'tcp/9100 from 10.0.0.0/8']]);

test('applyFirewall / checkFirewall / planFirewall / removeFirewall (auto backend, real kernel)', async (t: TestContext) => {
  if (!requireRoot(t) || !requireCommands(t, 'ip', 'nft', 'iptables')) return;
  const pair = NetnsPair.create();
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-apply-'));
  const paths = new RootedPaths(root);
  const stateDir = path.join(root, 'var/lib/cartridge-agent');
  const calls: string[] = [];
  const runner: CommandRunner = (cmd, args, opts) => {
    calls.push(`${cmd} ${args.join(' ')}`);
    return pair.runner(cmd, args, opts);
  };
  const config = (mode: 'enforce' | 'plan' | 'off') => parseConfig({ firewall: { mode, guard: { enabled: false } } });
  const deps = (mode: 'enforce' | 'plan' | 'off') => ({ config: config(mode), paths, log: silentLogger(), runner, controllerEndpoints: [] });
  try {
    await pair.listen([8080, 9000]);
    const ops = await firewallOps('nft', pair.runner);

    await t.test('plan and off apply nothing; plan says what would be applied', async () => {
      const plan = await planFirewall({ ...deps('plan'), payloadVars: PAYLOAD });
      assert.equal(plan.backend, 'nft', 'auto: iptables is nf_tables and nft is installed');
      assert.match(plan.text, /tcp dport 8080 accept/);
      assert.match(plan.text, /ip saddr 10\.0\.0\.0\/8 tcp dport 9100 accept/);
      const planned = await applyFirewall({ ...deps('plan'), payloadVars: PAYLOAD });
      assert.deepEqual([planned.mode, planned.digest, planned.appliedAt], ['plan', plan.rendered.digest, null]);
      assert.equal((await applyFirewall({ ...deps('off'), payloadVars: PAYLOAD })).mode, 'off');
      assert.equal(await ops.readBack(), null);
      assert.equal(calls.filter((c) => c.startsWith('nft -f') || c.includes('restore')).length, 0, 'no apply command ran');
    });

    await t.test('enforce: applied, recorded (0600) with the read-back; packets follow', async () => {
      const state = await applyFirewall({ ...deps('enforce'), payloadVars: PAYLOAD });
      assert.equal(state.backend, 'nft');
      assert.ok(state.ruleCount > 0 && state.appliedAt);
      const record = await loadApplied(stateDir);
      assert.equal(record?.digest, state.digest);
      assert.equal(record?.readBack, await ops.readBack());
      assert.equal(statSync(path.join(stateDir, 'firewall.json')).mode & 0o777, 0o600);
      assert.deepEqual(Object.values(await pair.probe(targets('tcp', [8080, 9000]))), ['open', 'open', 'timeout', 'timeout']);
    });

    await t.test('same allowlist again: already in force, nothing re-applied', async () => {
      calls.length = 0;
      await applyFirewall({ ...deps('enforce'), payloadVars: PAYLOAD });
      assert.deepEqual(calls.filter((c) => c.startsWith('nft -f') || c.startsWith('nft -c')), []);
    });

    await t.test('check: clean, then drift reported (not healed), then apply heals', async () => {
      assert.equal((await checkFirewall(deps('enforce'))).report.drifted, false);
      await pair.exec(pair.instance, 'nft', ['flush', 'chain', 'inet', 'cartridge_agent', 'input']);
      const { report, applied } = await checkFirewall(deps('enforce'));
      assert.equal(applied?.backend, 'nft');
      assert.equal(report.drifted, true);
      assert.ok(report.differences.some((d) => d.startsWith('missing: tcp dport 8080 accept')), report.differences.join('\n'));
      assert.equal((await checkFirewall(deps('enforce'))).report.drifted, true, 'check changes nothing');
      await applyFirewall({ ...deps('enforce'), payloadVars: PAYLOAD });
      assert.equal((await checkFirewall(deps('enforce'))).report.drifted, false);
    });

    await t.test('an invalid allowlist is refused naming the entry; nothing changes', async () => {
      const before = await ops.readBack();
      await assert.rejects(applyFirewall({ ...deps('enforce'), payloadVars: new Map([['PORTS', '8080|http']]) }), (err: unknown) => {
        assert.ok(err instanceof AgentError);
        assert.match(err.message, /PORTS/);
        assert.match(err.message, /http/);
        return true;
      });
      assert.equal(await ops.readBack(), before);
    });

    await t.test('early boot: the recorded ruleset is put back as it was', async () => {
      const recorded = await ops.readBack();
      await ops.remove();
      const state = await reapplyRecorded(deps('enforce'));
      assert.equal(state?.backend, 'nft');
      assert.equal(await ops.readBack(), recorded);
    });

    await t.test('the host switches backend: the old backend\'s rules go once the new ones are in force', async () => {
      const legacy = await firewallOps('iptables-legacy', pair.runner);
      const onLegacy = { ...deps('enforce'), config: parseConfig({ firewall: { mode: 'enforce', backend: 'iptables-legacy', guard: { enabled: false } } }) };
      assert.equal((await applyFirewall({ ...onLegacy, payloadVars: PAYLOAD })).backend, 'iptables-legacy');
      assert.equal(await ops.readBack(), null, 'nft table removed when legacy took over');
      assert.notEqual(await legacy.readBack(), null);
      assert.equal((await applyFirewall({ ...deps('enforce'), payloadVars: PAYLOAD })).backend, 'nft');
      assert.equal(await legacy.readBack(), null, 'legacy chain removed when nft took over');
      assert.notEqual(await ops.readBack(), null);
    });

    await t.test('remove: our table gone, record forgotten, check clean', async () => {
      assert.deepEqual(await removeFirewall(deps('enforce')), ['nft']);
      assert.equal(await ops.readBack(), null);
      assert.equal(await loadApplied(stateDir), null);
      assert.equal((await checkFirewall(deps('enforce'))).report.drifted, false);
      assert.deepEqual(Object.values(await pair.probe(targets('tcp', [9000]))), ['open', 'open']);
    });
  } finally {
    pair.destroy();
    rmSync(root, { recursive: true, force: true });
  }
});
