/**
 * `cartridge-agent firewall restore`, the early-boot command, through the built bundle inside
 * an "instance" network namespace, on real nft and real iptables-legacy, IPv4 and IPv6.
 *
 * A reboot is played by throwing the namespaces away and making new ones (a new network
 * namespace starts with an empty ruleset, as a booted kernel does) and by emptying the image's
 * /run (tmpfs at boot: the exported payload is gone, so restore must not need it). What must
 * survive is the state dir's firewall.json, and from it alone restore puts the rules back:
 * `firewall check` reads them back as recorded and real packets from the client are filtered
 * again. Also: nothing recorded (first boot) exits 0 and touches nothing; a corrupt or edited
 * record exits 8 naming the file and touches nothing; an apply that fails half-way (IPv4 in,
 * IPv6 refused) exits 8 and leaves no half-applied ruleset.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import type { Backend } from '../../agent/src/firewall/types';
import { requireCommands, requireFile, requireRoot } from '../helpers/env';
import { agentIn, boot as bootWith, imageFor as imageWith, ours, reboot as rebootWith, record, STATE_FILE } from '../helpers/instance-firewall';
import { NetnsPair, targets, type ProbeOutcome } from '../helpers/netns';
import { agentRuntimes } from '../helpers/runtimes';
import { BUNDLE, type ImageRoot } from '../../scripts/lib/fake-instance';
const PORTS = [22, 8080, 9000]; // 22: firewall.alwaysAllow, 8080: payload PORTS, 9000: not allowed
const UNDER_POLICY: Record<string, ProbeOutcome> = {
  'tcp/22 ipv4': 'open', 'tcp/22 ipv6': 'open',
  'tcp/8080 ipv4': 'open', 'tcp/8080 ipv6': 'open',
  'tcp/9000 ipv4': 'timeout', 'tcp/9000 ipv6': 'timeout',
};
const NO_RULES: Record<string, ProbeOutcome> = Object.fromEntries(Object.keys(UNDER_POLICY).map((k) => [k, 'open']));

const BACKENDS: Array<{ backend: Backend; tools: string[]; last: string; isTest: string }> = [
  // `last`: the tool of the last transaction apply runs; `isTest`: the flag of its dry run.
  { backend: 'nft', tools: ['nft'], last: 'nft', isTest: '-c' },
  {
    backend: 'iptables-legacy',
    tools: ['iptables-legacy', 'ip6tables-legacy', 'iptables-legacy-restore', 'ip6tables-legacy-restore'],
    last: 'ip6tables-legacy-restore',
    isTest: '--test',
  },
];

let shimDir: string | undefined;
before(() => {
  if (process.getuid?.() !== 0) return;
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  shimDir = mkdtempSync(path.join(tmpdir(), 'ca-fw-restore-shim-'));
});
after(() => {
  if (shimDir) rmSync(shimDir, { recursive: true, force: true });
});

function canRun(t: TestContext, backend: (typeof BACKENDS)[number]): boolean {
  return requireRoot(t) && requireCommands(t, 'ip', 'sh', ...backend.tools);
}

// This file's instance: the payload opens 8080; the baseline is off (its own tests are in
// firewall-baseline.test.ts), so "nothing recorded" and a damaged record touch nothing here.
const imageFor = (backend: Backend): ImageRoot => imageWith(backend, { SERVICE_NAME: 'php', PORTS: '8080' }, { baseline: { enabled: false } });
const boot = () => bootWith(PORTS);
const reboot = (pair: NetnsPair, image: ImageRoot) => rebootWith(pair, image, PORTS);

/** PATH with a stand-in for `tool` that passes dry runs to the real one and refuses the real apply. */
function failingApplyEnv(tool: string, isTest: string): NodeJS.ProcessEnv {
  const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  assert.ok(real.startsWith('/'), `${tool} not found`);
  const dir = path.join(shimDir as string, tool);
  mkdirSync(dir, { recursive: true });
  const shim = path.join(dir, tool);
  writeFileSync(
    shim,
    `#!/bin/sh\nfor a in "$@"; do [ "$a" = "${isTest}" ] && exec ${real} "$@"; done\necho "${tool}: refused by the test (simulated kernel refusal)" >&2\nexit 4\n`,
  );
  chmodSync(shim, 0o755);
  return { ...process.env, PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
}

for (const b of BACKENDS) {
  test(`${b.backend}: apply, reboot, restore: the recorded rules are back exactly, packets filtered again`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.backend);
    let pair: NetnsPair | undefined;
    try {
      pair = await boot();
      const applied = await agentIn(pair, image, ['firewall', 'apply']);
      assert.equal(applied.code, 0, applied.out + applied.err);
      const rec = record(image);
      assert.equal(rec.backend, b.backend);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), UNDER_POLICY, 'after apply');

      pair = await reboot(pair, image);
      assert.equal(existsSync(image.at('/run/cartridge-agent/payload.json')), false, 'the exported payload is gone, as after a reboot');
      assert.equal(await ours(pair, b.backend), null, 'the kernel starts empty');
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), NO_RULES, 'rebooted, before restore: everything open');
      const beforeRestore = await agentIn(pair, image, ['firewall', 'check']);
      assert.equal(beforeRestore.code, 9, `check sees the recorded rules missing: ${beforeRestore.out}${beforeRestore.err}`);

      const restored = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(restored.code, 0, restored.out + restored.err);
      assert.equal(restored.out, `firewall: restored the recorded ruleset: ${b.backend}, ${rec.ruleCount} rules, sha256 ${rec.digest} (applied ${rec.appliedAt})\n`);
      assert.equal(await ours(pair, b.backend), rec.readBack, 'read back exactly as recorded');
      const checked = await agentIn(pair, image, ['firewall', 'check']);
      assert.equal(checked.code, 0, checked.out + checked.err);
      assert.match(checked.out, /in force, no drift/);
      assert.deepEqual(await pair.probe(targets('tcp', PORTS)), UNDER_POLICY, 'after restore');

      // The unit may run again (a restart): same rules, one jump, the record untouched.
      const again = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(again.code, 0, again.out + again.err);
      assert.equal(await ours(pair, b.backend), rec.readBack, 'restoring twice reads back the same');
      assert.equal((await agentIn(pair, image, ['firewall', 'check'])).code, 0);
      assert.deepEqual(record(image), rec, 'restore does not rewrite firewall.json');
    } finally {
      pair?.destroy();
      image.remove();
    }
  });

  test(`${b.backend}: the apply fails half-way at boot: exit 8 naming the backend and the file, no rules of ours left`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.backend);
    let pair: NetnsPair | undefined;
    try {
      pair = await boot();
      assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
      pair = await reboot(pair, image);

      // The dry run passes (real tool); the last transaction of the apply is refused. For
      // iptables that is IPv6, after IPv4 went in: IPv4 must be rolled back.
      const failed = await agentIn(pair, image, ['firewall', 'restore'], { env: failingApplyEnv(b.last, b.isTest) });
      assert.equal(failed.code, 8, failed.out + failed.err);
      assert.equal(failed.out, '');
      assert.match(failed.err, new RegExp(`cartridge-agent: firewall restore \\(${b.backend}, recorded in ${image.at(STATE_FILE).replace(/\./g, '\\.')}\\): .*apply.*refused by the test`));
      assert.equal(await ours(pair, b.backend), null, 'no half-applied ruleset: nothing of ours in the kernel');
      if (b.backend === 'iptables-legacy') {
        const v4 = await pair.exec(pair.instance, 'iptables-legacy', ['-S']);
        assert.doesNotMatch(v4, /CARTRIDGE-INPUT/, 'IPv4 went in and was rolled back');
      }

      const retried = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(retried.code, 0, retried.out + retried.err);
      assert.equal((await agentIn(pair, image, ['firewall', 'check'])).code, 0);
    } finally {
      pair?.destroy();
      image.remove();
    }
  });

  test(`${b.backend}: nothing recorded (first boot of a fresh image): exit 0, the kernel untouched`, async (t) => {
    if (!canRun(t, b)) return;
    const image = imageFor(b.backend);
    const pair = NetnsPair.create();
    try {
      const r = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(r.code, 0, r.out + r.err);
      assert.equal(r.out, 'firewall: nothing recorded, nothing restored (first boot?); firewall.baseline.enabled is false\n');
      assert.equal(await ours(pair, b.backend), null);
      assert.equal(existsSync(image.at(STATE_FILE)), false, 'nothing recorded either');
    } finally {
      pair.destroy();
      image.remove();
    }
  });
}

test('nft: a corrupt or edited firewall.json: exit 8 naming the file, the kernel untouched', async (t) => {
  const nft = BACKENDS[0] as (typeof BACKENDS)[number];
  if (!canRun(t, nft)) return;
  const image = imageFor('nft');
  let pair: NetnsPair | undefined;
  try {
    pair = await boot();
    assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
    const good = readFileSync(image.at(STATE_FILE), 'utf8');
    const file = image.at(STATE_FILE).replace(/\./g, '\\.');
    const cases: Array<[string, string, RegExp]> = [
      ['truncated (torn write)', good.slice(0, good.length >> 1), new RegExp(`^cartridge-agent: ${file}: the firewall record is damaged: not valid JSON`)],
      ['not a record', '{"version": 2}\n', new RegExp(`^cartridge-agent: ${file}: the firewall record is damaged: not a firewall record of this agent`)],
      [
        'a port added by hand',
        JSON.stringify({ ...record(image), rendered: { ...record(image).rendered, nft: (record(image).rendered.nft ?? '').replace('tcp dport 8080', 'tcp dport { 8080, 9000 }') } }),
        new RegExp(`^cartridge-agent: ${file} is damaged, not restoring it: the ruleset text has sha256 [0-9a-f]{64}, not the recorded ${record(image).digest}`),
      ],
    ];
    for (const [label, text, message] of cases) {
      pair = await reboot(pair, image);
      writeFileSync(image.at(STATE_FILE), text);
      const r = await agentIn(pair, image, ['firewall', 'restore']);
      assert.equal(r.code, 8, `${label}: ${r.out}${r.err}`);
      assert.equal(r.out, '', label);
      assert.match(r.err.split('\n').find((l) => l.startsWith('cartridge-agent:')) ?? r.err, message, label);
      assert.equal(await ours(pair, 'nft'), null, `${label}: nothing applied`);
      assert.equal((await pair.exec(pair.instance, 'nft', ['list', 'ruleset'])).trim(), '', `${label}: the kernel's ruleset is still empty`);
    }
  } finally {
    pair?.destroy();
    image.remove();
  }
});

test('restore runs on Debian\'s Node 18 (what the image runs at boot)', async (t) => {
  const nft = BACKENDS[0] as (typeof BACKENDS)[number];
  const node18 = agentRuntimes()[1];
  if (!canRun(t, nft) || !requireFile(t, node18?.node ?? null, node18?.missing ?? 'no Node 18')) return;
  const image = imageFor('nft');
  let pair: NetnsPair | undefined;
  try {
    pair = await boot();
    assert.equal((await agentIn(pair, image, ['firewall', 'apply'])).code, 0);
    const rec = record(image);
    pair = await reboot(pair, image);
    const r = await agentIn(pair, image, ['firewall', 'restore'], { node: node18?.node ?? undefined });
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, new RegExp(`^firewall: restored the recorded ruleset: nft, ${rec.ruleCount} rules, sha256 ${rec.digest} `));
    assert.equal(await ours(pair, 'nft'), rec.readBack);
  } finally {
    pair?.destroy();
    image.remove();
  }
});
