/**
 * writeExports / writeFileAtomic on a real filesystem: modes, group ownership, refusals that
 * write nothing, failures that leave previous files intact, and cleanup of stale temp files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, PayloadError, WriteError } from '../../agent/src/errors';
import { writeExports, type ExportConfig } from '../../agent/src/export';
import { sweepStagedTemps, writeFileAtomic } from '../../agent/src/io/staged-write';
import { renderEnvFile, renderJson, renderLaunchParams, renderShFile } from '../../agent/src/export/render';
import { RootedPaths } from '../../agent/src/paths';
import { requireRoot } from '../helpers/env';

const ALL: ExportConfig = {
  envFile: '/run/cartridge-agent/payload.env',
  jsonFile: '/run/cartridge-agent/payload.json',
  shFile: '/etc/profile.d/cartridge-agent.sh',
  launchParamsFile: '/opt/app/payload/launch-params',
  mode: '0640',
  group: null,
};
const V1 = new Map([['APP', 'one'], ['PORTS', '80']]);
const V2 = new Map([['APP', 'two'], ['PORTS', '443'], ['EXTRA', 'x']]);

let base: string;
let counter = 0;
before(() => {
  base = mkdtempSync(path.join(tmpdir(), 'export-write-'));
});
after(() => rmSync(base, { recursive: true, force: true }));

function freshRoot(): RootedPaths {
  counter += 1;
  return new RootedPaths(path.join(base, `root${counter}`));
}

/** Host path → content of every export file of `cfg` under `paths` (null when absent). */
function snapshot(cfg: ExportConfig, paths: RootedPaths): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const p of [cfg.envFile, cfg.shFile, cfg.jsonFile, cfg.launchParamsFile]) {
    if (p === null) continue;
    const host = paths.resolve(p);
    out[host] = existsSync(host) ? readFileSync(host, 'utf8') : null;
  }
  return out;
}

function expectedFiles(vars: ReadonlyMap<string, string>, cfg: ExportConfig, paths: RootedPaths): Record<string, string> {
  const out: Record<string, string> = {};
  if (cfg.envFile) out[paths.resolve(cfg.envFile)] = renderEnvFile(vars);
  if (cfg.shFile) out[paths.resolve(cfg.shFile)] = renderShFile(vars);
  if (cfg.jsonFile) out[paths.resolve(cfg.jsonFile)] = renderJson(vars);
  if (cfg.launchParamsFile) out[paths.resolve(cfg.launchParamsFile)] = renderLaunchParams(vars);
  return out;
}

function tempFilesUnder(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tmp-/.test(e.name)) found.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

describe('writeExports', () => {
  it('writes every configured file under --root, with mode 0640, and returns their host paths', async () => {
    const paths = freshRoot();
    const written = await writeExports(V1, ALL, paths);
    const expected = expectedFiles(V1, ALL, paths);
    assert.deepEqual(written, Object.keys(expected));
    assert.deepEqual(snapshot(ALL, paths), expected);
    for (const file of written) {
      assert.ok(file.startsWith(paths.root + path.sep), `${file} is outside the root`);
      assert.equal(statSync(file).mode & 0o777, 0o640, file);
    }
    assert.equal(statSync(path.dirname(written[0] as string)).mode & 0o777, 0o755, 'created parent is 0755');
    assert.deepEqual(tempFilesUnder(paths.root), []);
  });

  it('writes mode 0600 exactly, whatever the umask, and replaces the old contents', async () => {
    const paths = freshRoot();
    const cfg: ExportConfig = { ...ALL, mode: '0600' };
    const other = freshRoot();
    await writeExports(V1, cfg, paths);
    const old = process.umask(0o077);
    try {
      await writeExports(V2, cfg, paths);
      await writeExports(V2, ALL, other); // 0640 must survive umask 077 too
    } finally {
      process.umask(old);
    }
    assert.deepEqual(snapshot(cfg, paths), expectedFiles(V2, cfg, paths));
    for (const f of Object.keys(expectedFiles(V2, cfg, paths))) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    for (const f of Object.keys(expectedFiles(V2, ALL, other))) assert.equal(statSync(f).mode & 0o777, 0o640, f);
  });

  it('skips files configured as null', async () => {
    const paths = freshRoot();
    const cfg: ExportConfig = { ...ALL, shFile: null, launchParamsFile: null };
    const written = await writeExports(V1, cfg, paths);
    assert.deepEqual(written, [paths.resolve('/run/cartridge-agent/payload.env'), paths.resolve('/run/cartridge-agent/payload.json')]);
    assert.equal(existsSync(paths.resolve('/etc/profile.d')), false);
  });

  it('chowns to export.group, looked up in the image root\'s /etc/group', async (t) => {
    if (!requireRoot(t)) return;
    const paths = freshRoot();
    mkdirSync(paths.resolve('/etc'), { recursive: true });
    writeFileSync(paths.resolve('/etc/group'), 'root:x:0:\n# comment\nbroken line\ncartridge:x:4242:www-data\nother:x:4343:\n');
    const written = await writeExports(V1, { ...ALL, group: 'cartridge' }, paths);
    for (const f of written) {
      const st = statSync(f);
      assert.equal(st.gid, 4242, `${f} group`);
      assert.equal(st.uid, 0, `${f} owner`);
      assert.equal(st.mode & 0o777, 0o640);
    }
  });

  it('opts.gid overrides the group lookup', async (t) => {
    if (!requireRoot(t)) return;
    const paths = freshRoot();
    const written = await writeExports(V1, { ...ALL, group: 'nonexistent-but-overridden' }, paths, { gid: 4545 });
    for (const f of written) assert.equal(statSync(f).gid, 4545);
  });

  it('an unknown group is a ConfigError naming export.group, and nothing is written', async () => {
    const paths = freshRoot();
    mkdirSync(paths.resolve('/etc'), { recursive: true });
    writeFileSync(paths.resolve('/etc/group'), 'root:x:0:\n');
    await assert.rejects(writeExports(V1, { ...ALL, group: 'nosuch' }, paths), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, 'export.group');
      assert.match(err.message, /group "nosuch" does not exist in .*\/etc\/group/);
      return true;
    });
    assert.equal(existsSync(paths.resolve('/run')), false);
  });

  it('a missing group file is a ConfigError naming export.group', async () => {
    await assert.rejects(writeExports(V1, { ...ALL, group: 'cartridge' }, freshRoot()), (err: unknown) =>
      err instanceof ConfigError && err.key === 'export.group' && /cannot read/.test(err.message));
  });

  it('two exports configured to the same path is a ConfigError', async () => {
    await assert.rejects(
      writeExports(V1, { ...ALL, jsonFile: ALL.envFile }, freshRoot()),
      (err: unknown) => err instanceof ConfigError && err.key === 'export.jsonFile' && /same file as export.envFile/.test(err.message),
    );
  });

  it('a refused payload leaves every previous file as it was', async () => {
    const paths = freshRoot();
    await writeExports(V1, ALL, paths);
    const before = snapshot(ALL, paths);
    // Exportable everywhere except launch-params (comma): still nothing may change.
    await assert.rejects(writeExports(new Map([['APP', 'a,b']]), ALL, paths), (err: unknown) =>
      err instanceof PayloadError && /"APP".*launch-params/.test(err.message));
    await assert.rejects(writeExports(new Map([['APP', 'nul\0']]), ALL, paths), PayloadError);
    assert.deepEqual(snapshot(ALL, paths), before);
    assert.deepEqual(tempFilesUnder(paths.root), []);
  });

  it('a failure while staging leaves every previous file intact and no temp files', async () => {
    const paths = freshRoot();
    await writeExports(V1, ALL, paths);
    const before = snapshot(ALL, paths);
    // The launch-params file is staged last; make its directory impossible to create.
    rmSync(paths.resolve('/opt/app'), { recursive: true });
    writeFileSync(paths.resolve('/opt/app'), 'a file where a directory should be');
    await assert.rejects(writeExports(V2, ALL, paths), (err: unknown) =>
      err instanceof WriteError && err.stage === 'exports' && err.path === paths.resolve(ALL.launchParamsFile as string));
    const after = snapshot({ ...ALL, launchParamsFile: null }, paths);
    const { [paths.resolve(ALL.launchParamsFile as string)]: _gone, ...rest } = before;
    assert.deepEqual(after, rest, 'env, sh and json files must still be the old version');
    assert.deepEqual(tempFilesUnder(paths.root), []);
  });

  it('a failure while renaming leaves each file complete (old or new) and no temp files', async () => {
    const paths = freshRoot();
    await writeExports(V1, { ...ALL, jsonFile: null }, paths);
    // payload.json is a non-empty directory: staging works, the rename over it fails.
    mkdirSync(path.join(paths.resolve(ALL.jsonFile as string), 'x'), { recursive: true });
    await assert.rejects(writeExports(V2, ALL, paths), (err: unknown) =>
      err instanceof WriteError && err.stage === 'exports' && err.path === paths.resolve(ALL.jsonFile as string));
    const v1 = expectedFiles(V1, ALL, paths);
    const v2 = expectedFiles(V2, ALL, paths);
    for (const [file, content] of Object.entries(snapshot({ ...ALL, jsonFile: null }, paths))) {
      assert.ok(content === v1[file] || content === v2[file], `${file} is neither the old nor the new version`);
    }
    assert.deepEqual(tempFilesUnder(paths.root), []);
  });

  it('the sweep removes staged temp files of our files in a shared directory, and nothing else', async () => {
    const dir = path.join(base, 'sweep-shared');
    mkdirSync(dir, { recursive: true });
    const stale = ['.payload.env.tmp-0123456789ab', '.payload.json.tmp-ffffffffffff'];
    const keep = ['.payload.env.tmp-notours', '.payload.env.tmp-0123456789abc', 'payload.env.bak', '.other.tmp-0123456789ab', 'payload.env'];
    for (const n of [...stale, ...keep]) writeFileSync(path.join(dir, n), 'leftover');
    const removed = await sweepStagedTemps([{ dir, files: ['payload.env', 'payload.json'] }]);
    assert.deepEqual(removed.sort(), stale.map((n) => path.join(dir, n)).sort());
    assert.deepEqual(readdirSync(dir).sort(), keep.sort());
  });

  it('the sweep removes every staged temp file in a directory of our own, and nothing else', async () => {
    const dir = path.join(base, 'sweep-own');
    mkdirSync(dir, { recursive: true });
    const stale = ['.0123abcd.payload.json.tmp-0123456789ab', '.firewall.json.tmp-ffffffffffff', '.mqtt-session.tmp-00000000000a'];
    const keep = ['.x.tmp-notours', 'firewall.json', 'run.lock', '.firewall.json.tmp-0123456789abc'];
    for (const n of [...stale, ...keep]) writeFileSync(path.join(dir, n), 'leftover');
    await sweepStagedTemps([{ dir }, { dir: path.join(base, 'sweep-missing') }]);
    assert.deepEqual(readdirSync(dir).sort(), keep.sort());
  });
});

describe('writeFileAtomic', () => {
  it('creates the parent, writes with the mode and replaces atomically', async () => {
    const target = path.join(base, 'atomic', 'deep', 'file.txt');
    await writeFileAtomic(target, 'first', { mode: 0o600, stage: 'test' });
    assert.equal(readFileSync(target, 'utf8'), 'first');
    assert.equal(statSync(target).mode & 0o777, 0o600);
    await writeFileAtomic(target, Buffer.from('second'), { mode: 0o640, stage: 'test' });
    assert.equal(readFileSync(target, 'utf8'), 'second');
    assert.equal(statSync(target).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(path.dirname(target)), ['file.txt']);
  });

  it('throws a WriteError naming the stage and leaves the old file when the target cannot be replaced', async () => {
    const dir = path.join(base, 'atomic-fail');
    mkdirSync(path.join(dir, 'target', 'child'), { recursive: true });
    await assert.rejects(writeFileAtomic(path.join(dir, 'target'), 'x', { mode: 0o600, stage: 'cache' }), (err: unknown) =>
      err instanceof WriteError && /^cache: cannot write .*target: cannot rename/.test(err.message));
    assert.deepEqual(readdirSync(dir), ['target']);
  });
});
