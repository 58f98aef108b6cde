/**
 * agent/bootstrap/bake.sh run by dash against throwaway image roots: what it installs (files,
 * modes, enable links, hooks dirs, default config), that the baked config is one the agent
 * accepts and that reads the seed-mount directories, state cleanup, idempotence (a full tree
 * listing with modes and content hashes), and the documented errors for bad input.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { HOOK_EVENTS } from '../../agent/src/lifecycle/hooks';
import { requireCommands, requireFile } from '../helpers/env';
import { forEachRuntime } from '../helpers/runtimes';
import { BAKE, BUNDLE, DEFAULT_CONFIG, REPO, UNITS, UNIT_SOURCES, bundleBuilt, makeImageRoot, runSh, tempDir, treeListing, writeIn } from '../fixtures/packaging/image';

function ready(t: TestContext): boolean {
  return requireCommands(t, 'dash', 'systemctl') && requireFile(t, bundleBuilt(), 'no dist/cartridge-agent.js: run npm run build');
}

function bakedRoot(t: TestContext, args: string[] = [], opts: Parameters<typeof makeImageRoot>[0] = {}): string {
  const { root, cleanup } = makeImageRoot(opts);
  t.after(cleanup);
  const r = runSh(BAKE, ['--root', root, ...args]);
  assert.equal(r.code, 0, `bake.sh failed:\n${r.out}${r.err}`);
  return root;
}

const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8);

/** A PATH holding links to the host's tools, minus `without`: to run bake.sh on a host lacking them. */
function pathWithout(t: TestContext, without: string[]): string {
  const { dir, cleanup } = tempDir('ca-path-');
  t.after(cleanup);
  const tools = ['sh', 'dash', 'dirname', 'realpath', 'head', 'grep', 'mktemp', 'mkdir', 'cp', 'chmod', 'mv', 'rm', 'cmp', 'stat', 'cat',
    'sed', 'readlink', 'find', 'sort', 'ln', 'awk', 'tail', 'node', 'python3', 'systemctl'];
  for (const tool of tools.filter((x) => !without.includes(x))) {
    const found = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => path.join(d, tool)).find((p) => existsSync(p));
    if (tool === 'node') symlinkSync(process.execPath, path.join(dir, tool));
    else if (found) symlinkSync(found, path.join(dir, tool));
  }
  return dir;
}

describe('bake.sh into an image root', () => {
  it('installs the bundle, wrapper, units, default config and hooks dirs with their modes, and enables the units', (t) => {
    if (!ready(t)) return;
    const root = bakedRoot(t);
    const at = (p: string) => path.join(root, p);

    assert.deepEqual(readFileSync(at('usr/lib/cartridge-agent/cartridge-agent.js')), readFileSync(BUNDLE));
    assert.equal(mode(at('usr/lib/cartridge-agent/cartridge-agent.js')), '755');
    assert.equal(mode(at('usr/lib/cartridge-agent/mount-seeds.sh')), '755');
    assert.deepEqual(readFileSync(at('usr/lib/cartridge-agent/firewall-restore.sh')), readFileSync('agent/bootstrap/firewall-restore.sh'));
    assert.equal(mode(at('usr/lib/cartridge-agent/firewall-restore.sh')), '755');
    // The early restore's record for the first boot: the decision as the booted image reads its
    // config (mode enforce by default: not --root's plan default), the baseline for every backend.
    const record = readFileSync(at('var/lib/cartridge-agent/firewall-baseline.restore'), 'utf8');
    assert.match(record, /^mode=enforce$/m);
    assert.match(record, /^baseline=enabled$/m);
    assert.match(record, /^config=\/etc\/cartridge-agent\/agent\.json$/m);
    for (const [key, ext] of [['nft_sha256', 'nft'], ['ipv4_sha256', 'ipv4'], ['ipv6_sha256', 'ipv6']]) {
      const sha = new RegExp(`^${key}=([0-9a-f]{64})$`, 'm').exec(record)?.[1];
      assert.ok(sha && existsSync(at(`var/lib/cartridge-agent/firewall-rules/${sha}.${ext}`)), `${key}: its text file`);
    }
    assert.equal(mode(at('var/lib/cartridge-agent')), '700');
    assert.equal(mode(at('var/lib/cartridge-agent/firewall-baseline.restore')), '600');
    assert.match(readFileSync(at('lib/systemd/system/cartridge-agent-firewall.service'), 'utf8'), /^ExecStart=\/usr\/lib\/cartridge-agent\/firewall-restore\.sh$/m);
    assert.equal(mode(at('usr/bin/cartridge-agent')), '755');
    assert.match(readFileSync(at('usr/bin/cartridge-agent'), 'utf8'), /^#!\/bin\/sh\n(#.*\n)*exec \/usr\/bin\/node \/usr\/lib\/cartridge-agent\/cartridge-agent\.js "\$@"\n$/);
    for (const unit of UNITS) {
      // lib is the image's usr/lib link (merged /usr): the units land in usr/lib/systemd/system.
      assert.deepEqual(readFileSync(at(`lib/systemd/system/${unit}`)), readFileSync(path.join(UNIT_SOURCES, unit)));
      assert.equal(mode(at(`usr/lib/systemd/system/${unit}`)), '644');
    }
    assert.deepEqual(JSON.parse(readFileSync(at('etc/cartridge-agent/agent.json'), 'utf8')), JSON.parse(readFileSync(DEFAULT_CONFIG, 'utf8')));
    assert.equal(mode(at('etc/cartridge-agent/agent.json')), '644');
    // The JSON Schema the default config names in "$schema", for editors.
    assert.deepEqual(readFileSync(at('usr/share/cartridge-agent/agent.schema.json')), readFileSync(path.join(REPO, 'packaging/generated/agent.schema.json')));
    assert.equal(mode(at('usr/share/cartridge-agent/agent.schema.json')), '644');
    for (const event of HOOK_EVENTS) {
      assert.ok(statSync(at(`etc/cartridge-agent/hooks/${event}.d`)).isDirectory(), `hooks/${event}.d`);
      assert.equal(mode(at(`etc/cartridge-agent/hooks/${event}.d`)), '755');
    }
    assert.ok(statSync(at('etc/profile.d')).isDirectory(), 'the sh export directory exists (the sandbox cannot create it)');

    // What `systemctl enable` makes: the agent in multi-user, the firewall restore in sysinit;
    // the seed unit is static (pulled in by the agent's Wants=).
    assert.equal(readlinkSync(at('etc/systemd/system/multi-user.target.wants/cartridge-agent.service')), '/lib/systemd/system/cartridge-agent.service');
    assert.equal(readlinkSync(at('etc/systemd/system/sysinit.target.wants/cartridge-agent-firewall.service')), '/lib/systemd/system/cartridge-agent-firewall.service');
    const links = treeListing(at('etc/systemd/system')).filter((l) => l.includes(' link '));
    assert.equal(links.length, 2, links.join('\n'));
  });

  it('is idempotent: the second run changes nothing (modes, contents, links) and says so', (t) => {
    if (!ready(t)) return;
    const root = bakedRoot(t);
    const before = treeListing(root);
    const second = runSh(BAKE, ['--root', root]);
    assert.equal(second.code, 0, second.err);
    assert.deepEqual(treeListing(root), before);
    assert.equal(second.out, `bake.sh: nothing to change: ${root} already has this agent\n`);
  });

  it('repairs a drifted file and mode, and nothing else', (t) => {
    if (!ready(t)) return;
    const root = bakedRoot(t);
    const before = treeListing(root);
    writeIn(root, '/usr/lib/cartridge-agent/mount-seeds.sh', '#!/bin/sh\nexit 1\n', 0o755);
    writeIn(root, '/lib/systemd/system/cartridge-agent.service', readFileSync(path.join(UNIT_SOURCES, 'cartridge-agent.service'), 'utf8'), 0o600);
    const r = runSh(BAKE, ['--root', root]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'bake.sh: installed /usr/lib/cartridge-agent/mount-seeds.sh\nbake.sh: mode 0644 /lib/systemd/system/cartridge-agent.service\n');
    assert.deepEqual(treeListing(root), before);
  });

  it('removes per-instance state so an image baked from a used instance carries none; --keep-state keeps it', (t) => {
    if (!ready(t)) return;
    const root = bakedRoot(t);
    const baselineRecord = treeListing(path.join(root, 'var/lib/cartridge-agent'));
    const instanceRules = `/var/lib/cartridge-agent/firewall-rules/${'a'.repeat(64)}.nft`;
    const state = ['/var/lib/cartridge-agent/firewall.json', '/var/lib/cartridge-agent/firewall.restore', instanceRules,
      '/var/lib/cartridge-agent/cache/i-1.json', '/var/lib/cartridge-agent/.session',
      '/run/cartridge-agent/payload.env', '/etc/profile.d/cartridge-agent.sh', '/etc/cartridge-agent/payload-url'];
    for (const f of state) writeIn(root, f, 'x\n', 0o600);
    writeIn(root, '/var/lib/cartridge-agent/firewall.restore', `format=1\nbackend=nft\nnft_sha256=${'a'.repeat(64)}\n`, 0o600);
    writeIn(root, '/etc/profile.d/other.sh', 'keep\n');
    const kept = runSh(BAKE, ['--root', root, '--keep-state']);
    assert.equal(kept.code, 0, kept.err);
    for (const f of state) assert.ok(existsSync(path.join(root, f)), `--keep-state kept ${f}`);

    const r = runSh(BAKE, ['--root', root]);
    assert.equal(r.code, 0, r.err);
    for (const f of state) assert.ok(!existsSync(path.join(root, f)), `${f} removed`);
    assert.ok(!existsSync(path.join(root, 'run/cartridge-agent')));
    assert.ok(existsSync(path.join(root, 'var/lib/cartridge-agent')), 'the state dir itself stays');
    assert.ok(existsSync(path.join(root, 'etc/profile.d/other.sh')), "other packages' files stay");
    assert.ok(existsSync(path.join(root, 'etc/cartridge-agent/agent.json')), 'the config stays');
    assert.match(r.out, /^bake\.sh: removed \/etc\/cartridge-agent\/payload-url$/m);
    assert.deepEqual(treeListing(path.join(root, 'var/lib/cartridge-agent')), baselineRecord, 'the baseline record stays as baked; the instance\'s rule texts are pruned');
  });

  it('--no-enable installs without enable links', (t) => {
    if (!ready(t)) return;
    const root = bakedRoot(t, ['--no-enable']);
    assert.ok(existsSync(path.join(root, 'lib/systemd/system/cartridge-agent.service')));
    assert.ok(!existsSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/cartridge-agent.service')));
  });

  it('without systemctl on the host, the [Install] sections give exactly the links systemctl makes', (t) => {
    if (!ready(t)) return;
    const withSystemctl = bakedRoot(t);
    const { root, cleanup } = makeImageRoot();
    t.after(cleanup);
    const r = runSh(BAKE, ['--root', root], { ...process.env, PATH: pathWithout(t, ['systemctl']) });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(treeListing(path.join(root, 'etc/systemd')), treeListing(path.join(withSystemctl, 'etc/systemd')));
    const again = runSh(BAKE, ['--root', root], { ...process.env, PATH: pathWithout(t, ['systemctl']) });
    assert.match(again.out, /nothing to change/);
  });
});

describe('the baked default config', () => {
  forEachRuntime((test) => {
    test('is valid for the agent and reads the directories mount-seeds.sh mounts', async (agent, t) => {
      if (!ready(t)) return;
      const root = bakedRoot(t);
      // What cartridge-agent-seed.service leaves for the agent: a NoCloud seed and a config drive.
      writeIn(root, '/run/cartridge-agent-seed/cidata/meta-data', 'instance-id: iid-seed\n');
      writeIn(root, '/run/cartridge-agent-seed/cidata/user-data', 'FOO=bar\n');
      writeIn(root, '/run/cartridge-agent-seed/config-2/openstack/latest/meta_data.json', JSON.stringify({ uuid: 'cd-uuid-1' }));
      writeIn(root, '/run/cartridge-agent-seed/config-2/openstack/latest/user_data', 'FOO=baz\n');
      const r = await agent(['discover', '--json', '--root', root]);
      assert.equal(r.code, 0, `discover: ${r.err}`);
      const rows = JSON.parse(r.out) as Array<{ source: string; status: string; detail: string }>;
      const by = (s: string) => rows.find((x) => x.source === s);
      assert.equal(by('nocloud')?.status, 'found', JSON.stringify(rows));
      assert.match(by('nocloud')?.detail ?? '', /from \/run\/cartridge-agent-seed\/cidata\/user-data, instance iid-seed/);
      assert.equal(by('configdrive')?.status, 'found', JSON.stringify(rows));
      assert.match(by('configdrive')?.detail ?? '', /instance cd-uuid-1/);

      // And the firewall restore (the early unit's command) accepts it on a fresh image.
      const fw = await agent(['firewall', 'restore', '--root', root]);
      assert.equal(fw.code, 0, fw.err);
      assert.match(fw.out, /nothing recorded/);
    });
  });
});

describe('bake.sh --config', () => {
  it("keeps the baker's existing agent.json; --config replaces it once the agent's own check passes", (t) => {
    if (!ready(t)) return;
    const { root, cleanup } = makeImageRoot();
    t.after(cleanup);
    writeIn(root, '/etc/cartridge-agent/agent.json', '{"log":{"level":"warn"}}\n');
    assert.equal(runSh(BAKE, ['--root', root]).code, 0);
    assert.equal(readFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), 'utf8'), '{"log":{"level":"warn"}}\n');

    const { dir, cleanup: c2 } = tempDir('ca-config-');
    t.after(c2);
    const mine = path.join(dir, 'mine.json');
    writeIn(dir, '/mine.json', '{"sources":{"waitSeconds":5}}\n');
    const r = runSh(BAKE, ['--root', root, '--config', mine]);
    assert.equal(r.code, 0, r.err);
    assert.equal(readFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), 'utf8'), '{"sources":{"waitSeconds":5}}\n');
  });

  it('an invalid --config is refused (exit 5) naming the file and the key, and nothing is installed', (t) => {
    if (!ready(t)) return;
    const { root, cleanup } = makeImageRoot();
    t.after(cleanup);
    const { dir, cleanup: c2 } = tempDir('ca-config-');
    t.after(c2);
    const before = treeListing(root);
    writeIn(dir, '/typo.json', '{"sources":{"waitSecond":5}}\n');
    const typo = runSh(BAKE, ['--root', root, '--config', path.join(dir, 'typo.json')]);
    assert.equal(typo.code, 5);
    assert.match(typo.err, new RegExp(`^bake\\.sh: error: --config ${dir}/typo\\.json is not a valid agent config: ${dir}/typo\\.json: config key "sources\\.waitSecond"`));
    writeIn(dir, '/broken.json', '{"sources":');
    const broken = runSh(BAKE, ['--root', root, '--config', path.join(dir, 'broken.json')]);
    assert.equal(broken.code, 5);
    assert.match(broken.err, /broken\.json: config key "\(file\)": not valid JSON/);
    assert.deepEqual(treeListing(root), before, 'nothing written');
  });

  it('without node on the host, --config is only parsed as JSON, with a warning', (t) => {
    if (!ready(t) || !requireCommands(t, 'python3')) return;
    const { root, cleanup } = makeImageRoot();
    t.after(cleanup);
    const { dir, cleanup: c2 } = tempDir('ca-config-');
    t.after(c2);
    const env = { ...process.env, PATH: pathWithout(t, ['node']) };
    writeIn(dir, '/broken.json', '{"sources":');
    const broken = runSh(BAKE, ['--root', root, '--config', path.join(dir, 'broken.json')], env);
    assert.equal(broken.code, 5);
    assert.match(broken.err, /is not valid JSON/);
    writeIn(dir, '/typo.json', '{"sources":{"waitSecond":5}}\n');
    const typo = runSh(BAKE, ['--root', root, '--config', path.join(dir, 'typo.json')], env);
    assert.equal(typo.code, 0, typo.err);
    assert.match(typo.err, /warning: no node >= 18 here to run the agent's config check: .*typo\.json was only parsed as JSON/);
  });
});

describe('bake.sh refuses bad input with the documented exit codes', () => {
  it('--help, usage errors (2), an unusable root (3), missing inputs (4)', (t) => {
    if (!ready(t)) return;
    const help = runSh(BAKE, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: bake\.sh \[--root DIR\] \[--bundle FILE\] \[--config FILE\] \[--keep-state\] \[--no-enable\]/);
    assert.match(help.out, /Exit codes: 0 done/);

    const { root, cleanup } = makeImageRoot();
    t.after(cleanup);
    const { dir: empty, cleanup: c2 } = tempDir('ca-empty-');
    t.after(c2);
    const cases: Array<[string[], number, RegExp]> = [
      [['--frobnicate'], 2, /unknown argument "--frobnicate"/],
      [['--root'], 2, /--root needs a value/],
      [['--root=/'], 2, /write '--root VALUE' \(with a space\)/],
      [['--root', path.join(empty, 'nope')], 3, /--root .*\/nope: no such directory/],
      [['--root', empty], 3, new RegExp(`--root ${empty} does not look like a root file system \\(it has no etc/ and usr/ directories\\)`)],
      [['--root', root, '--bundle', path.join(empty, 'missing.js')], 4, /the agent bundle .*missing\.js does not exist/],
      [['--root', root, '--config', path.join(empty, 'missing.json')], 4, /--config .*missing\.json: no such file/],
    ];
    const before = treeListing(root);
    for (const [args, code, message] of cases) {
      const r = runSh(BAKE, args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, message);
      assert.match(r.err, /^bake\.sh: error: /);
    }
    assert.deepEqual(treeListing(root), before);
  });

  it('refuses to write through a symlink that leads out of the image (3), writing nothing outside', (t) => {
    if (!ready(t)) return;
    const { root, cleanup } = makeImageRoot();
    t.after(cleanup);
    const { dir: outside, cleanup: c2 } = tempDir('ca-outside-');
    t.after(c2);
    // An image whose /lib is an absolute link: followed from the host it would be the host's.
    rmSync(path.join(root, 'lib'));
    symlinkSync(outside, path.join(root, 'lib'));
    const r = runSh(BAKE, ['--root', root]);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, new RegExp(`${root}/lib/systemd/system/cartridge-agent\\.service resolves to ${outside}/systemd/system/cartridge-agent\\.service, outside --root`));
    assert.deepEqual(treeListing(outside), []);
  });

  it('warns (does not fail) when the image has no /usr/bin/node, naming the package', (t) => {
    if (!ready(t)) return;
    const { root, cleanup } = makeImageRoot({ node: false });
    t.after(cleanup);
    const r = runSh(BAKE, ['--root', root]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /warning: .*\/usr\/bin\/node is missing: .*apt-get install nodejs/);
    assert.ok(lstatSync(path.join(root, 'usr/lib/cartridge-agent/cartridge-agent.js')).isFile());
  });

  it('--stage fills a bare staging tree (for the .deb) without enabling or checking a root fs', (t) => {
    if (!ready(t)) return;
    const { dir, cleanup } = tempDir('ca-stage-');
    t.after(cleanup);
    const r = runSh(BAKE, ['--stage', '--root', dir]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.ok(existsSync(path.join(dir, 'lib/systemd/system/cartridge-agent.service')));
    assert.ok(!existsSync(path.join(dir, 'etc/systemd')), 'nothing enabled');
    assert.ok(!existsSync(path.join(dir, 'etc/profile.d')), 'no image directories');
  });
});
