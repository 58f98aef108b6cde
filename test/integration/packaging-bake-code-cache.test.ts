/**
 * bake.sh fills the code cache for the first boot: with the image's own node (here a real
 * node binary and its libraries copied into a throwaway image root, run through chroot) and
 * the unit's own ExecStart= flags, into /var/cache/cartridge-agent, root's and 0700 / 0600 —
 * and the unit's command line then uses it as it is (V8 accepts it: nothing is rewritten).
 * Where the image's node cannot run, bake says so and the first boot fills it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseUnitDeployment } from '../../bench/lib/unit-file';
import { requireCommands, requireFile, requireRoot } from '../helpers/env';
import { agentRuntimes } from '../helpers/runtimes';
import { BAKE, bundleBuilt, makeImageRoot, runSh, UNIT_SOURCES } from '../fixtures/packaging/image';

const CACHE_DIR = 'var/cache/cartridge-agent';
const UNIT = path.join(UNIT_SOURCES, 'cartridge-agent.service');
const AGENT = '/usr/lib/cartridge-agent/cartridge-agent.js';

/** `node` and the shared libraries it loads (ldd, with `libraryPath`), at the same paths inside `root`. */
function installNode(root: string, node: string, libraryPath?: string): void {
  const place = (from: string, to: string) => {
    mkdirSync(path.dirname(to), { recursive: true });
    const real = realpathSync(from); // ld.so and libc are symlinks
    try {
      linkSync(real, to); // 100 MB: a hard link when the file system allows it
    } catch {
      copyFileSync(real, to);
    }
  };
  place(node, path.join(root, 'usr/bin/node'));
  // Debian's node keeps some of its builtins in /usr/share/nodejs (node-acorn,
  // node-cjs-module-lexer, node-undici: scripts/debian-node18.sh installs them on this host).
  if (libraryPath) cpSync('/usr/share/nodejs', path.join(root, 'usr/share/nodejs'), { recursive: true, dereference: true });
  const env = libraryPath ? { ...process.env, LD_LIBRARY_PATH: libraryPath } : process.env;
  const libs = execFileSync('ldd', [node], { encoding: 'utf8', env })
    .split('\n')
    .map((l) => /(\/\S+) \(0x/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
  for (const lib of libs) {
    // Where the image has it: its merged /usr (lib -> usr/lib; no lib64 link here).
    const inImage = libraryPath && lib.startsWith(`${libraryPath}/`) ? `/usr/lib/x86_64-linux-gnu/${path.basename(lib)}` : lib.startsWith('/lib/') ? `/usr${lib}` : lib;
    if (!existsSync(path.join(root, inImage))) place(lib, path.join(root, inImage));
  }
}

/** The image nodes to bake with: this one, and Debian 12's own (its binary and libnode from scripts/debian-node18.sh's wrapper). */
function imageNodes(): Array<{ name: string; node: string | null; libraryPath?: string; missing?: string }> {
  return agentRuntimes().map((r) => {
    if (r.node === process.execPath || r.node === null) return { name: r.name, node: r.node, missing: r.missing };
    const m = /LD_LIBRARY_PATH="([^"]+)" exec "([^"]+)"/.exec(readFileSync(r.node, 'utf8'));
    return m ? { name: r.name, node: m[2] as string, libraryPath: m[1] as string } : { name: r.name, node: null, missing: `${r.node} is not scripts/debian-node18.sh's wrapper` };
  });
}

function ready(t: TestContext): boolean {
  return requireRoot(t) && requireCommands(t, 'dash', 'chroot', 'ldd') && requireFile(t, bundleBuilt(), 'no dist/cartridge-agent.js: run npm run build');
}

const cacheFiles = (root: string) => readdirSync(path.join(root, CACHE_DIR)).filter((f) => f.endsWith('.bin'));
const stamp = (file: string) => `${statSync(file).ino} ${statSync(file).mtimeMs} ${statSync(file).size}`;

describe('bake.sh fills the code cache', () => {
  for (const image of imageNodes()) {
  it(`${image.name}: with the image's node and the unit's flags, root's 0700/0600, used as it is by the unit's command line`, (t) => {
    if (!ready(t) || !requireFile(t, image.node, image.missing ?? '')) return;
    const { root, cleanup } = makeImageRoot({ node: false });
    t.after(cleanup);
    installNode(root, image.node, image.libraryPath);
    const version = execFileSync('chroot', [root, '/usr/bin/node', '-p', 'process.version'], { encoding: 'utf8', env: { PATH: process.env.PATH } }).trim();
    const flags = parseUnitDeployment(readFileSync(UNIT, 'utf8'), UNIT).nodeFlags;
    assert.ok(flags.includes('--jitless'), `the unit's flags: ${flags.join(' ')}`);

    const r = runSh(BAKE, ['--root', root, '--no-enable']);
    assert.equal(r.code, 0, `bake.sh failed:\n${r.out}${r.err}`);
    assert.ok(r.out.includes(`filled the code cache /${CACHE_DIR} (node ${version}, flags ${flags.join(' ')})`), r.out);
    const dir = statSync(path.join(root, CACHE_DIR));
    assert.equal(dir.uid, 0);
    assert.equal((dir.mode & 0o777).toString(8), '700');
    const files = cacheFiles(root);
    assert.equal(files.length, 1, files.join(', '));
    const file = path.join(root, CACHE_DIR, files[0] as string);
    assert.equal(statSync(file).uid, 0);
    assert.equal((statSync(file).mode & 0o777).toString(8), '600');
    assert.deepEqual(readdirSync(path.join(root, 'tmp')), [], 'the warm-up root is removed');
    const before = stamp(file);

    // The unit's command line, in the unit's (clean) environment: V8 takes the cache as it is.
    const chroot = execFileSync('sh', ['-c', 'command -v chroot'], { encoding: 'utf8' }).trim();
    const run = spawnSync(chroot, [root, '/usr/bin/node', ...flags, AGENT, 'version'], {
      env: { PATH: '/usr/bin:/bin', CARTRIDGE_AGENT_CODE_CACHE: `/${CACHE_DIR}` },
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.deepEqual(cacheFiles(root), files);
    assert.equal(stamp(file), before, 'the baked cache was rejected and rewritten');

    const again = runSh(BAKE, ['--root', root, '--no-enable']);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /nothing to change/);
    assert.equal(stamp(file), before);
  });
  }

  it("where the image's node does not run here, it says so and the first boot fills the cache", (t) => {
    if (!ready(t)) return;
    const { root, cleanup } = makeImageRoot(); // /usr/bin/node is a script for the host's node: not runnable in a chroot
    t.after(cleanup);
    const r = runSh(BAKE, ['--root', root, '--no-enable']);
    assert.equal(r.code, 0, `bake.sh failed:\n${r.out}${r.err}`);
    assert.match(r.err, /code cache: not filled \(the image's \/usr\/bin\/node >= 18 does not run here\); the first boot fills it/);
    assert.ok(!existsSync(path.join(root, CACHE_DIR)));
  });
});
