/**
 * The bundle's code-cache loader (packaging/code-cache-loader.cjs), run for real on each
 * runtime: opt-in via CARTRIDGE_AGENT_CODE_CACHE, written once with safe modes, reused,
 * rewritten when V8 rejects it, and refused (with a warning, never used) when someone else
 * could have written the compiled code that would run as root.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { requireRoot } from '../helpers/env';
import { forEachRuntime } from '../helpers/runtimes';

const scratch = mkdtempSync(path.join(tmpdir(), 'ca-code-cache-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  return path.join(scratch, `cc-${++n}`);
}
const env = (dir: string) => ({ ...process.env, CARTRIDGE_AGENT_CODE_CACHE: dir });
function cacheFile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.bin'));
  assert.equal(files.length, 1, `expected one cache file in ${dir}, found ${files.join(', ')}`);
  return path.join(dir, files[0] as string);
}

forEachRuntime((test) => {
  test('written on first run (dir 0700, file 0600), reused unchanged afterwards', async (agent) => {
    const dir = freshDir();
    const first = await agent(['version'], env(dir));
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /^cartridge-agent /);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const file = cacheFile(dir);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const before = statSync(file);
    const second = await agent(['version'], env(dir));
    assert.equal(second.code, 0, second.err);
    assert.equal(second.out, first.out);
    assert.equal(second.err, '');
    const afterStat = statSync(file);
    assert.equal(afterStat.ino, before.ino, 'a valid cache must not be rewritten');
    assert.equal(afterStat.mtimeMs, before.mtimeMs);
  });

  test('a cache V8 rejects (corrupt) is rewritten and the agent still runs', async (agent) => {
    const dir = freshDir();
    assert.equal((await agent(['version'], env(dir))).code, 0);
    const file = cacheFile(dir);
    writeFileSync(file, Buffer.alloc(4096, 0x5a));
    const r = await agent(['version'], env(dir));
    assert.equal(r.code, 0, r.err);
    assert.notDeepEqual(readFileSync(file).subarray(0, 64), Buffer.alloc(64, 0x5a), 'the rejected cache should be replaced');
  });

  test('each set of V8 flags keeps its own cache: alternating --jitless rewrites nothing', async (agent) => {
    const dir = freshDir();
    // NODE_OPTIONS rather than argv flags: the runner puts arguments after the bundle.
    const jitless = { ...env(dir), NODE_OPTIONS: '--jitless' };
    const plain = { ...env(dir), NODE_OPTIONS: '' };
    for (const e of [jitless, plain]) assert.equal((await agent(['version'], e)).code, 0);
    const files = () => readdirSync(dir).filter((f) => f.endsWith('.bin')).sort();
    assert.equal(files().length, 2, `one cache per flag set, found ${files().join(', ')}`);
    const stamp = () => files().map((f) => `${f} ${statSync(path.join(dir, f)).ino} ${statSync(path.join(dir, f)).mtimeMs}`);
    const before = stamp();
    for (const e of [jitless, plain, jitless]) {
      const r = await agent(['version'], e);
      assert.equal(r.code, 0, r.err);
    }
    assert.deepEqual(stamp(), before, 'a cache V8 accepts is never rewritten');
  });

  test("writing a new cache removes the caches of other agent builds, not other flags'", async (agent) => {
    const dir = freshDir();
    assert.equal((await agent(['version'], { ...env(dir), NODE_OPTIONS: '--jitless' })).code, 0);
    const jitlessFile = cacheFile(dir);
    const stale = path.join(dir, 'code-0.0.1-000000000000-nodev0.0.0-x64-flags00000000.bin');
    writeFileSync(stale, 'old build', { mode: 0o600 });
    assert.equal((await agent(['version'], { ...env(dir), NODE_OPTIONS: '' })).code, 0);
    const left = readdirSync(dir).sort();
    assert.equal(left.length, 2, left.join(', '));
    assert.ok(left.includes(path.basename(jitlessFile)), 'the --jitless cache of this build stays');
    assert.ok(!left.includes(path.basename(stale)), 'the other build\'s cache is gone');
  });

  test('a cache others could write is never used: the agent says why and runs without it', async (agent) => {
    const dir = freshDir();
    assert.equal((await agent(['version'], env(dir))).code, 0);
    const file = cacheFile(dir);
    chmodSync(file, 0o666);
    writeFileSync(file, Buffer.alloc(64, 0x5a)); // what an attacker might plant
    const r = await agent(['version'], env(dir));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /code cache: .* is writable by group or others \(mode 666\); running without it/);
    assert.deepEqual(readFileSync(file), Buffer.alloc(64, 0x5a), 'an unsafe cache must not be rewritten either');

    const openDir = freshDir();
    mkdirSync(openDir, { mode: 0o777 });
    chmodSync(openDir, 0o777);
    const r2 = await agent(['version'], env(openDir));
    assert.equal(r2.code, 0, r2.err);
    assert.match(r2.err, /is writable by group or others \(mode 777\)/);
    assert.deepEqual(readdirSync(openDir), []);
  });

  test('a cache owned by another user is never used', async (agent, t) => {
    if (!requireRoot(t)) return; // chown needs root
    const dir = freshDir();
    assert.equal((await agent(['version'], env(dir))).code, 0);
    chownSync(cacheFile(dir), 65534, 65534);
    const r = await agent(['version'], env(dir));
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /is owned by uid 65534, not 0; running without it/);
  });

  test('without CARTRIDGE_AGENT_CODE_CACHE the agent runs without a cache and without warnings', async (agent) => {
    const { CARTRIDGE_AGENT_CODE_CACHE: _unused, ...rest } = process.env;
    const r = await agent(['version'], rest);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
  });
});
