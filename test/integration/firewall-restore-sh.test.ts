/**
 * agent/bootstrap/firewall-restore.sh, the early unit's restore without Node, on real nft,
 * iptables-nft and iptables-legacy inside an "instance" namespace, with real packets from a
 * client namespace, under dash and bash. The agent (the bundle) records, as bake.sh and the boot
 * work do; the script alone restores:
 *  - first boot (only the baked baseline record): the baseline, read back exactly as rendered;
 *  - after `firewall apply` and a reboot: the recorded rules, read back exactly as recorded,
 *    twice in a row the same (one jump);
 *  - a damaged record (text edited, text missing, manifest torn or edited): the baseline, exit 8
 *    naming the file; a tool refusing the recorded apply: the baseline, exit 8;
 *  - mode off: nothing; plan: nothing touched, says what it would do;
 *  - a config changed since it was recorded, or no record at all: handed over to the agent,
 *    which re-records, so the next boot needs no Node again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { baselineReadBack } from '../../agent/src/firewall/baseline';
import type { Backend } from '../../agent/src/firewall/types';
import { requireCommands, requireRoot } from '../helpers/env';
import {
  agentIn,
  BASELINE_RESTORE_FILE,
  bakeBaseline,
  boot,
  imageFor,
  manifest,
  ours,
  reboot,
  record,
  RESTORE_FILE,
  restoreShIn,
  RULES_DIR,
} from '../helpers/instance-firewall';
import { NetnsPair, targets, type ProbeOutcome } from '../helpers/netns';
import { BUNDLE, type ImageRoot } from '../../scripts/lib/fake-instance';

const PORTS = [22, 7000, 8080, 9000];
const FIREWALL = { baseline: { allow: ['tcp/7000'] } };
const PAYLOAD = { SERVICE_NAME: 'php', PORTS: '8080' };
const expect = (open: number[]): Record<string, ProbeOutcome> =>
  Object.fromEntries(targets('tcp', PORTS).map((t) => [`tcp/${t.port} ${t.family}`, open.includes(t.port) ? 'open' : 'timeout']));
const BASELINE = expect([22, 7000]);
const PAYLOAD_ALLOWLIST = expect([22, 8080]);

const BACKENDS: Array<{ backend: Backend; config: Backend | 'auto'; tools: string[] }> = [
  // nft through the script's own detection (`iptables -V` says nf_tables, nft installed).
  { backend: 'nft', config: 'auto', tools: ['nft', 'iptables'] },
  { backend: 'iptables-nft', config: 'iptables-nft', tools: ['iptables-nft', 'ip6tables-nft', 'iptables-nft-restore', 'ip6tables-nft-restore'] },
  { backend: 'iptables-legacy', config: 'iptables-legacy', tools: ['iptables-legacy', 'ip6tables-legacy', 'iptables-legacy-restore', 'ip6tables-legacy-restore'] },
];
const SHELLS = ['dash', 'bash'] as const;

let shimDir: string | undefined;
before(() => {
  if (process.getuid?.() !== 0) return;
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  shimDir = mkdtempSync(path.join(tmpdir(), 'ca-fw-sh-shim-'));
});
after(() => {
  if (shimDir) rmSync(shimDir, { recursive: true, force: true });
});

function canRun(t: TestContext, b: (typeof BACKENDS)[number]): boolean {
  return requireRoot(t) && requireCommands(t, 'ip', 'sha256sum', ...SHELLS, ...b.tools);
}
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const baselineOf = (b: (typeof BACKENDS)[number], extra: Record<string, unknown> = {}) =>
  baselineReadBack(parseConfig({ firewall: { ...FIREWALL, ...extra } }).firewall, b.backend);
const ALLOWS = 'allows tcp/22, tcp/7000 \\(firewall\\.alwaysAllow, firewall\\.baseline\\.allow\\)';

/** The text files firewall.restore names. */
function recordedTexts(image: ImageRoot): string[] {
  const m = manifest(image, RESTORE_FILE);
  return m.backend === 'nft' ? [`${RULES_DIR}/${m.nft_sha256}.nft`] : [`${RULES_DIR}/${m.ipv4_sha256}.ipv4`, `${RULES_DIR}/${m.ipv6_sha256}.ipv6`];
}

for (const b of BACKENDS) {
  test(`${b.backend}: first boot → the baseline; after apply and a reboot → the recorded rules exactly (dash and bash)`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.config, PAYLOAD, FIREWALL);
    let pair = await boot(PORTS);
    try {
      await bakeBaseline(image);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), expect(PORTS), 'before: everything open (the listeners work)');
      for (const shell of SHELLS) {
        const first = await restoreShIn(pair, image, shell);
        assert.equal(first.code, 0, `${shell}: ${first.out}${first.err}`);
        assert.equal(first.err, '', `${shell}: no hand-over, no warning`);
        assert.match(first.out, new RegExp(`^firewall: nothing recorded \\(first boot\\?\\); the baseline ruleset is in force: ${b.backend}, \\d+ rules, sha256 [0-9a-f]{64}; ${ALLOWS}\\n$`));
        assert.equal(await ours(pair, b.backend), baselineOf(b), `${shell}: the baseline, read back exactly as rendered (one jump)`);
      }
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, 'baseline: SSH and baseline.allow only');

      const applied = await agentIn(pair, image, ['firewall', 'apply']);
      assert.equal(applied.code, 0, applied.out + applied.err);
      const rec = record(image);
      assert.equal(manifest(image, RESTORE_FILE).digest, rec.digest, 'firewall.restore is written with firewall.json');
      for (const shell of SHELLS) {
        pair = await reboot(pair, image, PORTS);
        assert.equal(await ours(pair, b.backend), null, 'the kernel starts empty');
        const r = await restoreShIn(pair, image, shell);
        assert.equal(r.code, 0, `${shell}: ${r.out}${r.err}`);
        assert.equal(r.out, `firewall: restored the recorded ruleset: ${b.backend}, ${rec.ruleCount} rules, sha256 ${rec.digest} (applied ${rec.appliedAt})\n`);
        assert.equal(await ours(pair, b.backend), rec.readBack, `${shell}: read back exactly as recorded`);
        const again = await restoreShIn(pair, image, shell);
        assert.equal(again.code, 0, again.err);
        assert.equal(await ours(pair, b.backend), rec.readBack, `${shell}: restoring twice reads back the same (one jump)`);
      }
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), PAYLOAD_ALLOWLIST, 'the recorded allowlist filters again');
      const checked = await agentIn(pair, image, ['firewall', 'check']);
      assert.equal(checked.code, 0, checked.out + checked.err);
    } finally {
      pair.destroy();
      image.remove();
    }
  });

  test(`${b.backend}: a damaged record or text file → the baseline, exit 8 naming the file`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.config, PAYLOAD, FIREWALL);
    let pair = await boot(PORTS);
    try {
      await bakeBaseline(image);
      assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
      const goodManifest = readFileSync(image.at(RESTORE_FILE), 'utf8');
      const [text] = recordedTexts(image) as [string];
      const goodText = readFileSync(image.at(text), 'utf8');
      const file = (f: string) => esc(image.at(f));
      const cases: Array<[string, () => void, RegExp]> = [
        ['a port added by hand', () => writeFileSync(image.at(text), goodText.replace('8080', '9000')), new RegExp(`^cartridge-agent: ${file(text)} has sha256 [0-9a-f]{64}, not the recorded [0-9a-f]{64}, not restoring it; the baseline ruleset is in force instead: ${b.backend}, `)],
        ['the text file gone', () => unlinkSync(image.at(text)), new RegExp(`^cartridge-agent: ${file(text)} is missing or unreadable, not restoring it; the baseline ruleset is in force instead: `)],
        ['the manifest torn', () => writeFileSync(image.at(RESTORE_FILE), goodManifest.slice(0, goodManifest.indexOf('\nrules='))), new RegExp(`^cartridge-agent: ${file(RESTORE_FILE)} is damaged, not restoring it: .*; the baseline ruleset is in force instead: `)],
        ['the manifest edited', () => writeFileSync(image.at(RESTORE_FILE), `${goodManifest}extra=1\n`), new RegExp(`^cartridge-agent: ${file(RESTORE_FILE)} is damaged, not restoring it: unknown key "extra"; the baseline ruleset is in force instead: `)],
      ];
      for (const [i, [label, damage, message]] of cases.entries()) {
        pair = await reboot(pair, image, PORTS);
        writeFileSync(image.at(RESTORE_FILE), goodManifest);
        writeFileSync(image.at(text), goodText);
        damage();
        const r = await restoreShIn(pair, image, SHELLS[i % 2] as string);
        assert.equal(r.code, 8, `${label}: ${r.out}${r.err}`);
        assert.equal(r.out, '', label);
        assert.match(r.err, message, label);
        assert.match(r.err, new RegExp(ALLOWS), label);
        assert.equal(await ours(pair, b.backend), baselineOf(b), `${label}: the baseline is in force`);
      }
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), BASELINE, 'a damaged record: the baseline, never an open host');
    } finally {
      pair.destroy();
      image.remove();
    }
  });
}

/** PATH with a stand-in for `tool` that refuses any restore text carrying `marker`. */
function refusingEnv(tool: string, marker: string): NodeJS.ProcessEnv {
  const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  assert.ok(real.startsWith('/'), `${tool} not found`);
  const dir = path.join(shimDir as string, tool);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, tool),
    `#!/bin/sh\ninput=$(cat)\ncase $input in *'${marker}'*) echo "${tool}: refused by the test (simulated kernel refusal)" >&2; exit 4 ;; esac\nprintf '%s\\n' "$input" | exec ${real} "$@"\n`,
  );
  chmodSync(path.join(dir, tool), 0o755);
  return { ...process.env, PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
}

test('iptables-legacy: IPv6 refused after IPv4 went in → the baseline on both families, exit 8 naming the tool and the record', async (t) => {
  const b = BACKENDS[2] as (typeof BACKENDS)[number];
  if (!canRun(t, b)) return;
  const image = imageFor(b.config, PAYLOAD, FIREWALL);
  let pair = await boot(PORTS);
  try {
    await bakeBaseline(image);
    assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
    pair = await reboot(pair, image, PORTS);
    const r = await restoreShIn(pair, image, 'dash', { env: refusingEnv('ip6tables-legacy-restore', 'dport 8080') });
    assert.equal(r.code, 8, r.out + r.err);
    assert.match(
      r.err,
      new RegExp(`^cartridge-agent: firewall restore \\(iptables-legacy, recorded in ${esc(image.at(RESTORE_FILE))}\\): firewall \\(iptables-legacy\\): apply ipv6 \\(ip6tables-legacy-restore\\) failed \\(exit 4\\): ip6tables-legacy-restore: refused by the test .*; the baseline ruleset is in force instead: iptables-legacy, `),
    );
    assert.equal(await ours(pair, 'iptables-legacy'), baselineOf(b), 'both families: the baseline');
  } finally {
    pair.destroy();
    image.remove();
  }
});

test('nft: mode off → nothing; mode plan → nothing touched, says what it would do', async (t) => {
  const b = BACKENDS[0] as (typeof BACKENDS)[number];
  if (!canRun(t, b)) return;
  let pair = await boot(PORTS);
  for (const [mode, said] of [
    ['off', 'firewall: mode off (firewall.mode), nothing restored\n'],
    ['plan', /^firewall: mode plan \(firewall\.mode\), the kernel is not touched; would restore the recorded ruleset: nft, \d+ rules, sha256 [0-9a-f]{64} \(applied .*\)\n$/],
  ] as const) {
    const image = imageFor('auto', PAYLOAD, FIREWALL);
    try {
      assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
      const config = JSON.parse(readFileSync(image.at('/etc/cartridge-agent/agent.json'), 'utf8')) as { firewall: Record<string, unknown> };
      writeFileSync(image.at('/etc/cartridge-agent/agent.json'), JSON.stringify({ ...config, firewall: { ...config.firewall, mode } }));
      await bakeBaseline(image); // the agent records the new decision (as once / run do)
      assert.equal(manifest(image, BASELINE_RESTORE_FILE).mode, mode);
      pair = await reboot(pair, image, PORTS);
      for (const shell of SHELLS) {
        const r = await restoreShIn(pair, image, shell);
        assert.equal(r.code, 0, `${mode} ${shell}: ${r.out}${r.err}`);
        if (typeof said === 'string') assert.equal(r.out, said);
        else assert.match(r.out, said);
        assert.equal((await pair.exec(pair.instance, 'nft', ['list', 'ruleset'])).trim(), '', `${mode}: the kernel untouched`);
      }
    } finally {
      image.remove();
    }
  }
  pair.destroy();
});

test('nft: the config changed since it was recorded, or nothing recorded: handed over to the agent, which re-records', async (t) => {
  const b = BACKENDS[0] as (typeof BACKENDS)[number];
  if (!canRun(t, b)) return;
  const image = imageFor('auto', PAYLOAD, FIREWALL);
  const pair = NetnsPair.create();
  try {
    // No baseline record at all (an image baked without one): the agent decides.
    const none = await restoreShIn(pair, image, 'dash');
    assert.equal(none.code, 8, none.out + none.err);
    assert.match(none.err, /no .*firewall-baseline\.restore .*and the agent \(\/nonexistent\/node .*\) is not there to decide; nothing restored/);
    const handed = await restoreShIn(pair, image, 'dash', { handover: true });
    assert.equal(handed.code, 0, handed.out + handed.err);
    assert.match(handed.err, /firewall-restore\.sh: no .*firewall-baseline\.restore .*; handing over to cartridge-agent firewall restore/);
    assert.match(handed.out, /^firewall: nothing recorded \(first boot\?\); the baseline ruleset is in force: nft, /);
    assert.ok(existsSync(image.at(BASELINE_RESTORE_FILE)), 'the agent recorded the baseline for the next boot');
    const next = await restoreShIn(pair, image, 'bash');
    assert.deepEqual([next.code, next.err], [0, ''], 'the next boot needs no Node');

    // The config edited (a new baseline port) after the record: the record is stale.
    const config = JSON.parse(readFileSync(image.at('/etc/cartridge-agent/agent.json'), 'utf8')) as { firewall: Record<string, unknown> };
    writeFileSync(image.at('/etc/cartridge-agent/agent.json'), JSON.stringify({ ...config, firewall: { ...config.firewall, baseline: { allow: ['tcp/9000'] } } }));
    const stale = await restoreShIn(pair, image, 'bash', { handover: true });
    assert.equal(stale.code, 0, stale.out + stale.err);
    assert.match(stale.err, /agent\.json changed since the agent recorded the early restore; handing over/);
    assert.match(stale.out, /allows tcp\/22, tcp\/9000 /, 'the new config decides');
    assert.equal(await ours(pair, 'nft'), baselineOf(b, { baseline: { allow: ['tcp/9000'] } }));
    const after2 = await restoreShIn(pair, image, 'dash');
    assert.deepEqual([after2.code, after2.err], [0, ''], 're-recorded: no hand-over');
    assert.match(after2.out, /allows tcp\/22, tcp\/9000 /);
  } finally {
    pair.destroy();
    image.remove();
  }
});
