/**
 * Fail closed, with real packets, on nft, iptables-nft and iptables-legacy, IPv4 and IPv6: the
 * bundled agent runs `firewall restore` inside an "instance" namespace on a fresh state (first
 * boot) and the client beside it finds only SSH, firewall.alwaysAllow and
 * firewall.baseline.allow open, ICMP echo answered and IPv6 neighbour discovery working
 * (neighbour caches are flushed before every probe). Then the payload's allowlist replaces the
 * baseline through enforce's normal path; after a reboot with a damaged firewall.json, restore
 * puts the baseline back and exits 8 naming the file. In-process on the same kernels:
 * enforce's "unchanged" shortcut is not fooled by a baseline in force, and ensureFailClosed puts
 * the last good ruleset or the baseline back when our rules are gone. And a first boot whose
 * state dir is full: `once` fails, the baseline the early unit put in force stays.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, test, type TestContext } from 'node:test';
import pino from 'pino';
import { parseConfig } from '../../agent/src/config';
import { applyFirewall } from '../../agent/src/firewall';
import { applyBaseline, ensureFailClosed } from '../../agent/src/firewall/fail-closed';
import type { Backend } from '../../agent/src/firewall/types';
import { RootedPaths } from '../../agent/src/paths';
import { requireCommands, requireFile, requireRoot } from '../helpers/env';
import { agentIn, boot, imageFor, ours, reboot, record, startController, STATE_FILE } from '../helpers/instance-firewall';
import { NetnsPair, targets, type ProbeOutcome } from '../helpers/netns';
import { agentRuntimes } from '../helpers/runtimes';
import { BUNDLE, makeImageRoot, type ImageRoot } from '../../scripts/lib/fake-instance';

const PORTS = [22, 2222, 7000, 8080, 9000];
const FIREWALL = { alwaysAllow: ['tcp/22', 'tcp/2222'], baseline: { allow: ['tcp/7000'] } };
const PAYLOAD = { SERVICE_NAME: 'php', PORTS: '8080' };

/** Which of PORTS connect (the rest must time out: dropped), on both families. */
function expect(open: number[]): Record<string, ProbeOutcome> {
  return Object.fromEntries(targets('tcp', PORTS).map((t) => [`tcp/${t.port} ${t.family}`, open.includes(t.port) ? 'open' : 'timeout']));
}
const BASELINE = expect([22, 2222, 7000]); // alwaysAllow + baseline.allow
const PAYLOAD_ALLOWLIST = expect([22, 2222, 8080]); // alwaysAllow + payload PORTS; baseline.allow is gone

const BACKENDS: Array<{ backend: Backend; config: Backend | 'auto'; tools: string[] }> = [
  // nft through detection (`iptables -V` says nf_tables and nft is installed), as first boot does.
  { backend: 'nft', config: 'auto', tools: ['nft', 'iptables'] },
  { backend: 'iptables-nft', config: 'iptables-nft', tools: ['iptables-nft', 'ip6tables-nft', 'iptables-nft-restore', 'ip6tables-nft-restore'] },
  { backend: 'iptables-legacy', config: 'iptables-legacy', tools: ['iptables-legacy', 'ip6tables-legacy', 'iptables-legacy-restore', 'ip6tables-legacy-restore'] },
];

before(() => {
  if (process.getuid?.() === 0) assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
});

function canRun(t: TestContext, b: (typeof BACKENDS)[number]): boolean {
  return requireRoot(t) && requireCommands(t, 'ip', 'python3', ...b.tools);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

for (const b of BACKENDS) {
  test(`${b.backend}: first boot puts the baseline in force; the payload replaces it; a damaged record puts it back (exit 8)`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.config, PAYLOAD, FIREWALL);
    let pair = await boot(PORTS);
    try {
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), expect(PORTS), 'before: everything open (the listeners work)');

      const first = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(first.code, 0, first.out + first.err);
      assert.match(
        first.out,
        new RegExp(`^firewall: nothing recorded \\(first boot\\?\\); the baseline ruleset is in force: ${b.backend}, \\d+ rules, sha256 [0-9a-f]{64}; allows tcp/22, tcp/2222, tcp/7000 \\(firewall\\.alwaysAllow, firewall\\.baseline\\.allow\\)\\n$`),
      );
      assert.equal(existsSync(image.at(STATE_FILE)), false, 'the baseline is not recorded as the last good ruleset');
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, 'baseline: SSH, alwaysAllow and baseline.allow only');
      assert.deepEqual(await pair.ping(), { ipv4: 'open', ipv6: 'open' }, 'ICMP echo answered (and IPv6 ND works)');
      const baselineRules = await ours(pair, b.backend);
      assert.match(baselineRules ?? '', /baseline default deny/);

      const checked = await agentIn(pair, image, ['firewall', 'check']);
      assert.deepEqual([checked.code, checked.out], [0, 'applied: nothing recorded; the baseline ruleset is in force (firewall.baseline)\nin force, no drift\n'], checked.err);
      const again = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(again.code, 0, again.err);
      assert.equal(await ours(pair, b.backend), baselineRules, 'restoring twice reads back the same (one jump)');

      // The boot work succeeds: enforce's normal path replaces the baseline in one transaction per family.
      const applied = await agentIn(pair, image, ['firewall', 'apply']);
      assert.equal(applied.code, 0, applied.out + applied.err);
      assert.match(applied.err, /firewall: allowlist applied/);
      const rec = record(image);
      assert.equal(rec.backend, b.backend);
      assert.equal(await ours(pair, b.backend), rec.readBack);
      assert.doesNotMatch(rec.readBack ?? '', /baseline/);
      if (b.backend !== 'nft') assert.equal(rec.readBack?.match(/^jumps from INPUT: 1$/gm)?.length, 2, 'one jump per family, the baseline\'s reused');
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), PAYLOAD_ALLOWLIST, 'the payload allowlist, nothing of the baseline left');
      assert.equal((await agentIn(pair, image, ['firewall', 'check'])).code, 0);

      // A reboot with a damaged record: the baseline, exit 8 naming the file.
      pair = await reboot(pair, image, PORTS);
      writeFileSync(image.at(STATE_FILE), '{"version": 1, "backend": "nft", "dig');
      const damaged = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(damaged.code, 8, damaged.out + damaged.err);
      assert.equal(damaged.out, '');
      assert.match(
        damaged.err,
        new RegExp(`^cartridge-agent: ${esc(image.at(STATE_FILE))}: the firewall record is damaged: not valid JSON .*; the baseline ruleset is in force instead: ${b.backend}, \\d+ rules, sha256 [0-9a-f]{64}; allows tcp/22, tcp/2222, tcp/7000 `, 'm'),
      );
      assert.equal(await ours(pair, b.backend), baselineRules);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, 'damaged record: the baseline, never an open host');
      assert.equal((await agentIn(pair, image, ['firewall', 'check'])).code, 8, 'check names the damaged file too');

      // And the payload replaces it again, rewriting the record.
      mkdirSync(image.at('/run/cartridge-agent'), { recursive: true }); // what `once` exports after the reboot
      writeFileSync(image.at('/run/cartridge-agent/payload.json'), JSON.stringify(PAYLOAD));
      assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
      assert.equal(await ours(pair, b.backend), record(image).readBack);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), PAYLOAD_ALLOWLIST);
    } finally {
      pair.destroy();
      image.remove();
    }
  });

  test(`${b.backend}: enforce is not fooled by a baseline in force; ensureFailClosed puts the last good or the baseline back`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.config, PAYLOAD, FIREWALL);
    const pair = await boot(PORTS);
    const lines: Array<{ msg: string }> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const config = parseConfig({ firewall: { mode: 'enforce', backend: b.config, guard: { enabled: false }, ...FIREWALL } });
    const deps = { config, paths: new RootedPaths(image.root), log, runner: pair.runner };
    const enforce = () => applyFirewall({ ...deps, payloadVars: new Map(Object.entries(PAYLOAD)), controllerEndpoints: [] });
    const drop = () => (b.backend === 'nft' ? pair.exec(pair.instance, 'nft', ['delete', 'table', 'inet', 'cartridge_agent']) : pair.exec(pair.instance, `${b.backend.replace('iptables', 'ip6tables')}`, ['-D', 'INPUT', '-j', 'CARTRIDGE-INPUT']));
    try {
      await enforce();
      const rec = record(image);
      // The last good is recorded, but the baseline is what is in force (e.g. restore fell back to it).
      await applyBaseline(deps);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE);
      lines.length = 0;
      await enforce();
      assert.ok(!lines.some((l) => /already in force, unchanged/.test(l.msg)), `the shortcut must not take the baseline for the recorded ruleset: ${JSON.stringify(lines)}`);
      assert.equal(await ours(pair, b.backend), rec.readBack);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), PAYLOAD_ALLOWLIST);

      assert.deepEqual(await ensureFailClosed(deps), { inForce: 'last-good', changed: false }, 'the last good in force: nothing to do');
      await drop(); // nft: our table gone; iptables: the IPv6 jump gone (IPv6 open)
      assert.deepEqual(await ensureFailClosed(deps), { inForce: 'last-good', changed: true });
      assert.equal(await ours(pair, b.backend), rec.readBack);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), PAYLOAD_ALLOWLIST);

      for (const [label, prepare] of [['nothing recorded', () => rmSync(image.at(STATE_FILE))], ['a damaged record', () => writeFileSync(image.at(STATE_FILE), '[]')]] as const) {
        prepare();
        await drop();
        assert.deepEqual(await ensureFailClosed(deps), { inForce: 'baseline', changed: true }, label);
        assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, `${label}: the baseline`);
        assert.deepEqual(await ensureFailClosed(deps), { inForce: 'baseline', changed: false }, `${label}: the baseline intact, nothing to do`);
      }
    } finally {
      pair.destroy();
      image.remove();
    }
  });
}

test("nft on Debian's Node 18, allowIcmpEcho false: the baseline drops ICMP echo, IPv6 neighbour discovery still works", async (t) => {
  const nft = BACKENDS[0] as (typeof BACKENDS)[number];
  const node18 = agentRuntimes()[1];
  if (!canRun(t, nft) || !requireFile(t, node18?.node ?? null, node18?.missing ?? 'no Node 18')) return;
  const image: ImageRoot = imageFor('nft', PAYLOAD, { ...FIREWALL, allowIcmpEcho: false });
  const pair: NetnsPair = await boot(PORTS);
  try {
    assert.deepEqual(await pair.ping(), { ipv4: 'open', ipv6: 'open' }, 'before: echo answered (the probe works)');
    const r = await agentIn(pair, image, ['firewall', 'restore'], { node: node18?.node ?? undefined });
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /^firewall: nothing recorded \(first boot\?\); the baseline ruleset is in force: nft, /);
    assert.deepEqual(await pair.ping(), { ipv4: 'timeout', ipv6: 'timeout' }, 'echo dropped');
    assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, 'IPv6 TCP after a neighbour flush: ND answered');
  } finally {
    pair.destroy();
    image.remove();
  }
});

test('nft: a first boot whose state dir is full: once fails, the baseline stays in force (never an open host)', async (t) => {
  const nft = BACKENDS[0] as (typeof BACKENDS)[number];
  if (!canRun(t, nft) || !requireCommands(t, 'mount', 'umount')) return;
  const pair = await boot(PORTS);
  const controller = await startController(pair, 'SERVICE_NAME=php,PORTS=8080|9000', 8000);
  const image = makeImageRoot(`http://${pair.clientV4}:8000/payload/php.member-1?token=t`, { firewall: { mode: 'enforce', ...FIREWALL } });
  const stateDir = image.at('/var/lib/cartridge-agent');
  let mounted = false;
  try {
    const restored = await agentIn(pair, image, ['firewall', 'restore']);
    assert.equal(restored.code, 0, restored.out + restored.err);
    assert.match(restored.out, /the baseline ruleset is in force/);

    mkdirSync(stateDir, { recursive: true });
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', stateDir]).status, 0, 'mount a tiny tmpfs on the state dir');
    mounted = true;
    assert.throws(() => writeFileSync(path.join(stateDir, 'fill'), Buffer.alloc(1 << 20)), /ENOSPC/, 'the state dir is full');

    const once = await agentIn(pair, image, ['once']);
    assert.equal(once.code, 7, `once fails writing its state: ${once.out}${once.err}`);
    assert.match(once.err, /ENOSPC|no space left/i);
    assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, 'the payload opened nothing; everything else still dropped');
    assert.match((await ours(pair, 'nft')) ?? '', /baseline default deny/);
  } finally {
    controller.kill('SIGKILL');
    if (mounted) spawnSync('umount', [stateDir]);
    pair.destroy();
    image.remove();
  }
});
