/**
 * The lock-out guard through applyFirewall, on the real kernel in a namespace: it rolls back
 * to the exact snapshot when the controller stops answering after apply, it does NOT roll back
 * when the controller was unreachable before (an outage must never open the firewall), and a
 * real probe made from inside the instance passes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { parseConfig } from '../../agent/src/config';
import { FirewallError } from '../../agent/src/errors';
import { firewallOps } from '../../agent/src/firewall/apply';
import type { Endpoint, ProbeFn } from '../../agent/src/firewall/guard';
import { applyFirewall } from '../../agent/src/firewall/index';
import { loadApplied } from '../../agent/src/firewall/state';
import type { Backend } from '../../agent/src/firewall/types';
import { RootedPaths } from '../../agent/src/paths';
import { requireCommands, requireRoot } from '../helpers/env';
import { NetnsPair, targets } from '../helpers/netns';

const CONTROLLER_PORT = 7443;
const P1 = new Map([['PORTS', '8080']]);
const P2 = new Map([['PORTS', '8080|9000']]); // opens 9000: tells which ruleset is in force

/** A probe scripted per phase: the first call is the baseline, later ones the post-apply check. */
function scriptedProbe(before: boolean, after: boolean): ProbeFn & { calls: number } {
  let calls = 0;
  const fn: ProbeFn = async (endpoints: Endpoint[]) => {
    const reachable = calls++ === 0 ? before : after;
    return endpoints.map((endpoint) => ({ endpoint, reachable, detail: reachable ? 'connected' : 'no answer (scripted)' }));
  };
  return Object.defineProperty(fn, 'calls', { get: () => calls }) as ProbeFn & { calls: number };
}

for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const satisfies readonly Backend[]) {
  test(`lock-out guard on ${backend}`, async (t: TestContext) => {
    if (!requireRoot(t) || !requireCommands(t, 'ip', 'nft', 'iptables-nft', 'iptables-legacy')) return;
    const pair = NetnsPair.create();
    const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-guard-'));
    const lines: Array<{ level: number; msg: string }> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const config = parseConfig({ firewall: { mode: 'enforce', backend, guard: { enabled: true, timeoutMs: 300 } } });
    const deps = { config, paths: new RootedPaths(root), log, runner: pair.runner, controllerEndpoints: [{ host: pair.clientV4, port: CONTROLLER_PORT }] };
    try {
      await pair.listen([8080, 9000]);
      await pair.listen([CONTROLLER_PORT], [], pair.client);
      const ops = await firewallOps(backend, pair.runner);
      const probe9000 = async () => Object.values(await pair.probe(targets('tcp', [9000])));

      await t.test('first apply ever, controller lost after → rolled back to "absent"', async () => {
        await assert.rejects(applyFirewall({ ...deps, payloadVars: P1, probe: scriptedProbe(true, false) }), (err: unknown) => {
          assert.ok(err instanceof FirewallError);
          assert.equal(err.step, 'guard');
          assert.match(err.message, /reachable before applying but not within 300 ms.*rolled back to the previous rules/);
          return true;
        });
        assert.equal(await ops.readBack(), null);
        assert.equal(await loadApplied(path.join(root, 'var/lib/cartridge-agent')), null, 'nothing recorded as applied');
      });

      let p1ReadBack: string | null = null;
      await t.test('a real probe from inside the instance to the controller passes the guard', async () => {
        const state = await applyFirewall({ ...deps, payloadVars: P1, probe: pair.instanceProbe });
        assert.equal(state.backend, backend);
        p1ReadBack = await ops.readBack();
        assert.notEqual(p1ReadBack, null);
        assert.ok(lines.some((l) => l.msg.includes('controller still reachable after applying')));
        assert.deepEqual(await probe9000(), ['timeout', 'timeout']);
      });

      await t.test('controller reachable before, not after → the previous ruleset is back, exactly', async () => {
        const probe = scriptedProbe(true, false);
        await assert.rejects(applyFirewall({ ...deps, payloadVars: P2, probe }), (err: unknown) => err instanceof FirewallError && err.step === 'guard');
        assert.ok(probe.calls >= 2, 'probed before and after');
        assert.equal(await ops.readBack(), p1ReadBack, 'read-back equals the snapshot');
        assert.deepEqual(await probe9000(), ['timeout', 'timeout'], 'P2 (which opens 9000) is not in force');
        assert.equal((await loadApplied(path.join(root, 'var/lib/cartridge-agent')))?.readBack, p1ReadBack, 'the record still names P1');
      });

      await t.test('controller unreachable before → guard skipped (and said so), ruleset applied', async () => {
        const probe = scriptedProbe(false, false);
        const state = await applyFirewall({ ...deps, payloadVars: P2, probe });
        assert.equal(probe.calls, 1, 'no post-apply check');
        assert.ok(lines.some((l) => l.level === 40 && /lock-out guard skipped: controller unreachable before applying/.test(l.msg)));
        assert.notEqual(await ops.readBack(), p1ReadBack);
        assert.equal(state.digest, (await loadApplied(path.join(root, 'var/lib/cartridge-agent')))?.digest);
        assert.deepEqual(await probe9000(), ['open', 'open']);
      });
    } finally {
      pair.destroy();
      rmSync(root, { recursive: true, force: true });
    }
  });
}
