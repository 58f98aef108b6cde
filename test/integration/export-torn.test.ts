/**
 * Killing a writer at random moments never leaves a torn export: after every SIGKILL each file
 * is absent, the complete old version or the complete new one. Leftover temp files have names
 * no reader takes for an export, are never readable by others, and the next run removes them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportSweepPlaces, writeExports } from '../../agent/src/export';
import { sweepStagedTemps } from '../../agent/src/io/staged-write';
import { renderEnvFile, renderJson, renderLaunchParams, renderShFile } from '../../agent/src/export/render';
import { RootedPaths } from '../../agent/src/paths';
import { TORN_CONFIG, TORN_PAYLOADS } from '../fixtures/export/torn-payloads';

const WRITER = path.join(__dirname, '..', 'fixtures', 'export', 'torn-writer.ts');
const MIN_KILLS = 20;
const MAX_KILLS = 60;

let root: string;
before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'export-torn-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Image path → the complete contents each payload version renders to. */
function versions(): Map<string, string[]> {
  const c = TORN_CONFIG;
  const out = new Map<string, string[]>();
  const add = (p: string | null, render: (v: ReadonlyMap<string, string>) => string): void => {
    if (p) out.set(p, TORN_PAYLOADS.map(render));
  };
  add(c.envFile, renderEnvFile);
  add(c.shFile, renderShFile);
  add(c.jsonFile, renderJson);
  add(c.launchParamsFile, renderLaunchParams);
  return out;
}

/** Start the writer, wait until it is writing, SIGKILL it after `delayMs`. */
function runAndKill(delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => {
      setTimeout(() => {
        killed = child.kill('SIGKILL');
      }, delayMs);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (killed && signal === 'SIGKILL') resolve();
      else reject(new Error(`writer exited on its own (code ${code}, signal ${signal}): ${stderr}`));
    });
  });
}

describe('torn writes', () => {
  it('SIGKILL at random moments never leaves a partial export file', { timeout: 180_000 }, async (t) => {
    const paths = new RootedPaths(root);
    const expected = versions();
    const exportNames = new Set([...expected.keys()].map((p) => path.basename(p)));
    const dirs = new Set([...expected.keys()].map((p) => paths.resolve(path.dirname(p))));
    let killsWithTemps = 0;
    const seen = new Set<string>();

    let kills = 0;
    for (; kills < MAX_KILLS && (kills < MIN_KILLS || killsWithTemps < 3); kills++) {
      await runAndKill(Math.floor(Math.random() * 150));
      for (const [imagePath, complete] of expected) {
        const host = paths.resolve(imagePath);
        if (!existsSync(host)) continue;
        const content = readFileSync(host, 'utf8');
        const which = complete.indexOf(content);
        assert.ok(which >= 0, `after kill ${kills}: ${host} is torn (${content.length} chars, neither complete version)`);
        seen.add(`${imagePath}#${which}`);
      }
      let temps = 0;
      for (const dir of dirs) {
        if (!existsSync(dir)) continue;
        for (const name of readdirSync(dir)) {
          if (exportNames.has(name)) continue;
          const m = /^\.(.+)\.tmp-[0-9a-f]{12}$/.exec(name);
          assert.ok(m && exportNames.has(m[1] as string), `after kill ${kills}: unexpected file ${name} in ${dir}`);
          const mode = statSync(path.join(dir, name)).mode & 0o777;
          assert.equal(mode & 0o137, 0, `temp file ${name} has mode ${mode.toString(8)}, more open than 0640`);
          temps += 1;
        }
      }
      if (temps > 0) killsWithTemps += 1;
    }
    t.diagnostic(`${kills} kills, ${killsWithTemps} left temp files behind; versions seen: ${[...seen].sort().join(' ')}`);
    assert.ok(killsWithTemps > 0, 'no kill landed while a file was being written: the test proved nothing');

    // The next run (under the run lock) removes the stale temp files and leaves complete files.
    await sweepStagedTemps(exportSweepPlaces(TORN_CONFIG, paths));
    await writeExports(TORN_PAYLOADS[0] as Map<string, string>, TORN_CONFIG, paths);
    for (const dir of dirs) {
      assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], `stale temp files left in ${dir}`);
    }
    for (const [imagePath, complete] of expected) assert.equal(readFileSync(paths.resolve(imagePath), 'utf8'), complete[0]);
  });
});
