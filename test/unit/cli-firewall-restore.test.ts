/**
 * `cartridge-agent firewall restore` without a kernel: parsing and help, the record check
 * (verifyRecorded: a record whose texts are not what was applied is refused, naming the file),
 * and main() under a temp --root for the paths that never run a firewall tool: mode off,
 * mode plan (says what it would restore, or that it would put the baseline in force), and in
 * enforce mode with the baseline disabled only (it would otherwise touch this host's rules):
 * nothing recorded, a damaged record (exit 8). Real restores are in test/integration/firewall-restore.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FIREWALL_ACTIONS, HELP, parseCli } from '../../agent/src/cli';
import { ExitCode, FirewallError } from '../../agent/src/errors';
import { buildPolicy } from '../../agent/src/firewall/allowlist';
import { verifyRecorded } from '../../agent/src/firewall/recorded';
import { renderRuleset } from '../../agent/src/firewall/render';
import type { AppliedFirewall } from '../../agent/src/firewall/state';
import type { Backend } from '../../agent/src/firewall/types';
import { main } from '../../agent/src/main';

const POLICY = buildPolicy(new Map([['PORTS', '80|443']]), { alwaysAllow: ['tcp/22'], extraRules: [], allowIcmpEcho: true });

function record(backend: Backend): AppliedFirewall {
  const rendered = renderRuleset(POLICY, backend);
  return {
    version: 1,
    backend,
    digest: rendered.digest,
    ruleCount: rendered.ruleCount,
    rendered,
    readBack: 'whatever the kernel said',
    fingerprint: 'f'.repeat(64),
    appliedAt: '2024-05-01T10:00:00.000Z',
  };
}

test('firewall restore parses; it takes no argument, --json or --format', () => {
  assert.ok((FIREWALL_ACTIONS as readonly string[]).includes('restore'));
  const parsed = parseCli(['firewall', 'restore', '--root', '/r', '--config', '/etc/a.json']);
  assert.deepEqual([parsed.command, parsed.action, parsed.root, parsed.config], ['firewall', 'restore', '/r', '/etc/a.json']);
  assert.equal(parseCli(['firewall', 'restore', '--help']).help, true);
  assert.throws(() => parseCli(['firewall']), /'firewall' needs an action: plan, apply, check, remove, restore/);
  assert.throws(() => parseCli(['firewall', 'restore', 'now']), /unexpected argument "now" for 'firewall restore'/);
  assert.throws(() => parseCli(['firewall', 'restore', '--json']), /'firewall' takes neither --format nor --json/);
  assert.throws(() => parseCli(['firewall', 'restored']), /got "restored"/);
});

test('help names restore in the command list and explains it', () => {
  assert.match(HELP.main, /firewall +the port allowlist: plan \| apply \| check \| remove \| restore/);
  assert.match(HELP.firewall, /^Usage: cartridge-agent firewall <plan\|apply\|check\|remove\|restore\|baseline>/);
  assert.match(HELP.firewall, /\n {2}baseline print the baseline ruleset for every backend; changes nothing\. --write: record/);
  assert.match(HELP.firewall, /\n {2}restore {2}early boot, before the network: .*\n.*firewall\.json/);
});

test('verifyRecorded accepts the record as applied, on every backend', () => {
  for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const) verifyRecorded(record(backend), '/s/firewall.json');
});

test('verifyRecorded refuses a record whose ruleset is not what was applied, naming the file', () => {
  const damaged: Array<[string, (r: AppliedFirewall) => void, RegExp]> = [
    ['edited rule', (r) => (r.rendered.nft = (r.rendered.nft ?? '').replace('dport 443', 'dport 444')), /ruleset text has sha256 [0-9a-f]{64}, not the recorded/],
    ['text gone', (r) => delete r.rendered.nft, /rendered\.nft \(the nft ruleset text\) is missing or not text/],
    ['text not text', (r) => ((r.rendered as unknown as Record<string, unknown>).nft = 42), /rendered\.nft .* missing or not text/],
    ['backend swapped', (r) => (r.backend = 'iptables-legacy'), /rendered for nft but recorded as applied with iptables-legacy/],
    ['digest edited', (r) => (r.digest = '0'.repeat(64)), /rendered\.digest [0-9a-f]{64} differs from digest 0{64}/],
    ['ruleCount not a count', (r) => ((r as unknown as Record<string, unknown>).ruleCount = '7'), /ruleCount is not a count: "7"/],
  ];
  for (const [label, damage, why] of damaged) {
    const r = record('nft');
    damage(r);
    assert.throws(
      () => verifyRecorded(r, '/s/firewall.json'),
      (err: unknown) => err instanceof FirewallError && err.exitCode === ExitCode.FIREWALL && /^\/s\/firewall\.json is damaged, not restoring it: /.test(err.message) && why.test(err.message),
      label,
    );
  }
  const v6 = record('iptables-legacy');
  v6.rendered.ipv6 = `${v6.rendered.ipv6 ?? ''}-A CARTRIDGE-INPUT -p tcp --dport 9000 -j RETURN\n`;
  assert.throws(() => verifyRecorded(v6, '/s/firewall.json'), /ruleset text has sha256/, 'iptables: the IPv6 text counts too');
});

/** main() with a temp image root; the state dir holds `firewallJson` when given (a string is written as is). */
async function restoreIn(mode: 'enforce' | 'plan' | 'off', firewallJson?: AppliedFirewall | string, baseline: { enabled?: boolean; allow?: string[] } = {}) {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-fw-restore-unit-'));
  try {
    mkdirSync(path.join(root, 'etc/cartridge-agent'), { recursive: true });
    writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), JSON.stringify({ firewall: { mode, baseline } }));
    const file = path.join(root, 'var/lib/cartridge-agent/firewall.json');
    if (firewallJson !== undefined) {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, typeof firewallJson === 'string' ? firewallJson : JSON.stringify(firewallJson));
    }
    let out = '';
    let err = '';
    const code = await main(['firewall', 'restore', '--root', root, '--log-level', 'silent'], { out: (t) => (out += t), err: (t) => (err += t), env: {} });
    return { code, out, err, file };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('mode off: does nothing and says so, even with a damaged record', async () => {
  const r = await restoreIn('off', '{ broken');
  assert.deepEqual([r.code, r.out, r.err], [0, 'firewall: mode off (firewall.mode), nothing restored\n', '']);
});

test('mode plan: says what it would restore, or that nothing is recorded', async () => {
  const rec = record('iptables-legacy');
  const planned = await restoreIn('plan', rec);
  assert.equal(planned.code, 0, planned.err);
  assert.equal(
    planned.out,
    `firewall: mode plan (firewall.mode), the kernel is not touched; would restore the recorded ruleset: iptables-legacy, ${rec.ruleCount} rules, sha256 ${rec.digest} (applied 2024-05-01T10:00:00.000Z)\n`,
  );
  const none = await restoreIn('plan', undefined, { allow: ['udp/5353'] });
  assert.deepEqual(
    [none.code, none.out],
    [0, 'firewall: mode plan (firewall.mode), the kernel is not touched; nothing recorded (first boot?), would put the baseline ruleset in force; allows tcp/22, udp/5353\n'],
  );
  const noBaseline = await restoreIn('plan', undefined, { enabled: false });
  assert.deepEqual([noBaseline.code, noBaseline.out], [0, 'firewall: mode plan (firewall.mode), the kernel is not touched; nothing recorded, nothing would be restored (first boot?)\n']);
});

test('mode plan: a damaged record is exit 8 naming the file', async () => {
  const rec = record('nft');
  rec.rendered.nft = `${rec.rendered.nft ?? ''}\n# appended\n`;
  const r = await restoreIn('plan', rec);
  assert.equal(r.code, ExitCode.FIREWALL, r.out);
  assert.equal(r.out, '');
  assert.match(r.err, new RegExp(`^cartridge-agent: ${r.file.replace(/[.]/g, '\\.')} is damaged, not restoring it: the ruleset text has sha256`));
});

// With the baseline enabled, enforce puts it in force on THIS host's firewall: that case runs
// only inside a network namespace (test/integration/firewall-baseline.test.ts).
test('enforce with nothing recorded and firewall.baseline.enabled false: exit 0, nothing touched', async () => {
  const r = await restoreIn('enforce', undefined, { enabled: false });
  assert.deepEqual([r.code, r.out, r.err], [0, 'firewall: nothing recorded, nothing restored (first boot?); firewall.baseline.enabled is false\n', '']);
});

test('enforce with a damaged record and the baseline disabled: exit 8 naming the file, nothing touched', async () => {
  const r = await restoreIn('enforce', '{ broken', { enabled: false });
  assert.equal(r.code, ExitCode.FIREWALL, r.out);
  assert.match(r.err, new RegExp(`^cartridge-agent: ${r.file.replace(/[.]/g, '\\.')}: the firewall record is damaged: not valid JSON`));
  assert.doesNotMatch(r.err, /baseline/);
});
