/**
 * What the early unit's sh script restores from (restore-files.ts, restore-record.ts), without
 * a kernel: the manifests name content-addressed texts that are exactly the applied / baseline
 * texts; staging writes only what differs from the disk (an unchanged boot writes nothing); a
 * config change re-records the decision; firewall remove takes firewall.restore with it;
 * pruning keeps what a manifest names; and `firewall baseline [--write]` parses and writes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseCli } from '../../agent/src/cli';
import { parseConfig } from '../../agent/src/config';
import { buildPolicy } from '../../agent/src/firewall/allowlist';
import { renderBaseline } from '../../agent/src/firewall/baseline';
import { renderRuleset } from '../../agent/src/firewall/render';
import { baselineRestoreFiles, recordedRestoreFiles, referencedTexts, RULES_DIR } from '../../agent/src/firewall/restore-files';
import { forgetApplied, pruneRestoreTexts, stageApplied, type AppliedFirewall } from '../../agent/src/firewall/state';
import type { Backend } from '../../agent/src/firewall/types';
import { FileTransaction } from '../../agent/src/io/staged-write';
import { main } from '../../agent/src/main';
import { RootedPaths } from '../../agent/src/paths';

const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const keys = (manifest: string) => Object.fromEntries(manifest.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

function applied(backend: Backend, ports = '80|443'): AppliedFirewall {
  const rendered = renderRuleset(buildPolicy(new Map([['PORTS', ports]]), { alwaysAllow: ['tcp/22'], extraRules: [], allowIcmpEcho: true }), backend);
  return { version: 1, backend, digest: rendered.digest, ruleCount: rendered.ruleCount, rendered, readBack: 'x', fingerprint: 'f', appliedAt: '2024-05-01T10:00:00.000Z' };
}

function tempRoot(config: unknown): { root: string; state: string; paths: RootedPaths; done: () => void } {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-restore-files-'));
  mkdirSync(path.join(root, 'etc/cartridge-agent'), { recursive: true });
  writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), JSON.stringify(config));
  return { root, state: path.join(root, 'var/lib/cartridge-agent'), paths: new RootedPaths(root), done: () => rmSync(root, { recursive: true, force: true }) };
}

test('firewall.restore names the applied texts by sha256; nft: one file, iptables: two plus the jump', () => {
  const nft = recordedRestoreFiles(applied('nft'));
  const m = keys(nft.manifest);
  assert.deepEqual([m.format, m.backend, m.digest, m.rules], ['1', 'nft', applied('nft').digest, String(applied('nft').ruleCount)]);
  assert.deepEqual([...nft.texts], [[`${sha(applied('nft').rendered.nft ?? '')}.nft`, applied('nft').rendered.nft]]);
  assert.equal(m.nft_sha256, sha(applied('nft').rendered.nft ?? ''));

  const ipt = recordedRestoreFiles(applied('iptables-legacy'));
  const i = keys(ipt.manifest);
  assert.equal(i.jump_rule, '-A INPUT -j CARTRIDGE-INPUT');
  assert.equal(ipt.texts.get(`${i.ipv4_sha256}.ipv4`), applied('iptables-legacy').rendered.ipv4);
  assert.equal(ipt.texts.get(`${i.ipv6_sha256}.ipv6`), applied('iptables-legacy').rendered.ipv6);
  assert.deepEqual(referencedTexts(ipt.manifest).sort(), [...ipt.texts.keys()].sort());
});

test('firewall-baseline.restore: the decision, the config digest and the baseline for every backend', () => {
  const cfg = parseConfig({ firewall: { mode: 'plan', backend: 'iptables-nft', baseline: { enabled: false, allow: ['tcp/7000'] } } }).firewall;
  const files = baselineRestoreFiles(cfg, { path: '/etc/cartridge-agent/agent.json', sha256: 'a'.repeat(64) });
  const m = keys(files.manifest);
  assert.deepEqual([m.mode, m.baseline, m.backend, m.config, m.config_sha256, m.allows], ['plan', 'disabled', 'iptables-nft', '/etc/cartridge-agent/agent.json', 'a'.repeat(64), 'tcp/22, tcp/7000']);
  // The same texts renderBaseline gives each backend (iptables-nft and -legacy share theirs).
  assert.equal(files.texts.get(`${m.nft_sha256}.nft`), renderBaseline(cfg, 'nft').nft);
  for (const b of ['iptables-nft', 'iptables-legacy'] as const) {
    assert.equal(files.texts.get(`${m.ipv4_sha256}.ipv4`), renderBaseline(cfg, b).ipv4);
    assert.equal(files.texts.get(`${m.ipv6_sha256}.ipv6`), renderBaseline(cfg, b).ipv6);
    assert.equal(m.iptables_digest, renderBaseline(cfg, b).digest);
  }
  assert.equal(keys(baselineRestoreFiles(cfg, { path: '/x', sha256: null }).manifest).config_sha256, 'absent');
});

test('staged with the record: everything the first time, nothing when unchanged, only what changed after that', async () => {
  const r = tempRoot({ firewall: { mode: 'enforce' } });
  try {
    const stage = async (record: AppliedFirewall | null) => {
      const txn = new FileTransaction();
      await stageApplied(txn, r.state, { record, paths: r.paths });
      const targets = txn.targets.map((t) => path.relative(r.state, t));
      await txn.commit();
      await pruneRestoreTexts(r.state);
      return targets;
    };
    const first = await stage(applied('nft'));
    assert.deepEqual(first.filter((t) => !t.startsWith(RULES_DIR)), ['firewall.json', 'firewall.restore', 'firewall-baseline.restore']);
    assert.equal(first.filter((t) => t.startsWith(RULES_DIR)).length, 4, 'the recorded nft text and the three baseline texts');
    // Texts before their manifest: the renames commit in this order.
    assert.ok(first.indexOf('firewall.restore') > first.findIndex((t) => t.endsWith('.nft')));

    assert.deepEqual(await stage(null), [], 'an unchanged boot writes nothing (no fsync)');

    const other = applied('nft', '8080');
    const second = await stage(other);
    assert.equal(second.length, 3, `firewall.json, firewall.restore and the new text: ${second}`);
    assert.ok(existsSync(path.join(r.state, RULES_DIR, `${sha(other.rendered.nft ?? '')}.nft`)));
    assert.ok(!existsSync(path.join(r.state, RULES_DIR, `${sha(applied('nft').rendered.nft ?? '')}.nft`)), 'the old text is pruned');

    // The config changes (mode off): only the decision is re-recorded.
    writeFileSync(path.join(r.root, 'etc/cartridge-agent/agent.json'), JSON.stringify({ firewall: { mode: 'off' } }));
    assert.deepEqual(await stage(null), ['firewall-baseline.restore']);
    assert.equal(keys(readFileSync(path.join(r.state, 'firewall-baseline.restore'), 'utf8')).mode, 'off');

    // An edited text is rewritten, not trusted because its name exists.
    const text = path.join(r.state, RULES_DIR, `${sha(other.rendered.nft ?? '')}.nft`);
    writeFileSync(text, 'edited');
    assert.deepEqual(await stage(other), ['firewall.json', path.relative(r.state, text)]);
    assert.equal(readFileSync(text, 'utf8'), other.rendered.nft);

    await forgetApplied(r.state);
    assert.ok(!existsSync(path.join(r.state, 'firewall.restore')) && !existsSync(path.join(r.state, 'firewall.json')), 'remove forgets both');
    await pruneRestoreTexts(r.state);
    assert.equal(readdirSync(path.join(r.state, RULES_DIR)).length, 3, 'only the baseline texts stay');
  } finally {
    r.done();
  }
});

test('a record kept unchanged from an agent that wrote no firewall.restore gets one (else every boot would hand over)', async () => {
  const r = tempRoot({ firewall: { mode: 'enforce' } });
  try {
    mkdirSync(r.state, { recursive: true });
    writeFileSync(path.join(r.state, 'firewall.json'), JSON.stringify(applied('iptables-nft')));
    const txn = new FileTransaction();
    await stageApplied(txn, r.state, { record: null, paths: r.paths });
    assert.ok(!txn.targets.some((t) => t.endsWith('firewall.json')), 'the record itself is left as it is');
    await txn.commit();
    assert.equal(readFileSync(path.join(r.state, 'firewall.restore'), 'utf8'), recordedRestoreFiles(applied('iptables-nft')).manifest);
    // A damaged one gets none: the script hands over and the agent says what is wrong.
    rmSync(path.join(r.state, 'firewall.restore'));
    writeFileSync(path.join(r.state, 'firewall.json'), '{"version": 1');
    const again = new FileTransaction();
    await stageApplied(again, r.state, { record: null, paths: r.paths });
    assert.deepEqual(again.targets, []);
  } finally {
    r.done();
  }
});

test('the decision is the booted image\'s: a config without firewall.mode records enforce even under --root; a bad config records none', async () => {
  const r = tempRoot({ sources: { waitSeconds: 1 } });
  try {
    const txn = new FileTransaction();
    await stageApplied(txn, r.state, { record: null, paths: r.paths });
    await txn.commit();
    const m = keys(readFileSync(path.join(r.state, 'firewall-baseline.restore'), 'utf8'));
    assert.equal(m.mode, 'enforce', 'not the plan default --root gives the agent itself');
    assert.equal(m.config_sha256, sha(readFileSync(path.join(r.root, 'etc/cartridge-agent/agent.json'), 'utf8')));

    writeFileSync(path.join(r.root, 'etc/cartridge-agent/agent.json'), '{"firewall": {"mode": "sometimes"}}');
    const again = new FileTransaction();
    await stageApplied(again, r.state, { record: null, paths: r.paths });
    await again.commit();
    assert.ok(!existsSync(path.join(r.state, 'firewall-baseline.restore')), 'a stale decision is removed: the script hands over to the agent');
  } finally {
    r.done();
  }
});

test('firewall baseline parses (--write only there) and writes the record once', async () => {
  assert.equal(parseCli(['firewall', 'baseline']).write, false);
  assert.equal(parseCli(['firewall', 'baseline', '--write']).write, true);
  assert.throws(() => parseCli(['firewall', 'restore', '--write']), /--write applies to 'firewall baseline' only/);
  assert.throws(() => parseCli(['once', '--write']), /--write applies to 'firewall baseline' only/);

  const r = tempRoot({ firewall: { mode: 'enforce', baseline: { allow: ['tcp/7000'] } } });
  try {
    let out = '';
    const io = { out: (s: string) => void (out += s), err: () => undefined, env: {} };
    assert.equal(await main(['firewall', 'baseline', '--root', r.root, '--log-level', 'silent'], io), 0);
    assert.match(out, /^# baseline \(firewall\.baseline enabled\); allows tcp\/22, tcp\/7000\n# nft -f \(backend nft\)/);
    assert.ok(!existsSync(r.state), 'printing writes nothing');
    out = '';
    assert.equal(await main(['firewall', 'baseline', '--write', '--root', r.root, '--log-level', 'silent'], io), 0);
    assert.equal(out.split('\n').filter((l) => l.startsWith('wrote: ')).length, 4, out);
    out = '';
    assert.equal(await main(['firewall', 'baseline', '--write', '--root', r.root, '--log-level', 'silent'], io), 0);
    assert.equal(out, 'firewall: the recorded baseline is current, nothing written\n');
  } finally {
    r.done();
  }
});
