/**
 * The profile.d export sourced by real shells: every value must come back byte for byte, no
 * value may run code, and what cannot be exported must be refused with the key named.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PayloadError } from '../../agent/src/errors';
import { writeExports, type ExportConfig } from '../../agent/src/export';
import { RootedPaths } from '../../agent/src/paths';
import { requireCommands } from '../helpers/env';
import { assertEnvMatches, parseEnv0 } from '../fixtures/export/env-dump';
import { CANARY_FILE, REFUSED_VALUES, hostileCorpus, manyKeys } from '../fixtures/export/hostile-corpus';

const SHELLS: ReadonlyArray<{ name: string; cmd: string; args: string[] }> = [
  { name: 'sh', cmd: 'sh', args: [] },
  { name: 'bash', cmd: 'bash', args: [] },
  { name: 'bash --posix', cmd: 'bash', args: ['--posix'] },
  { name: 'dash', cmd: 'dash', args: [] },
];

const SH_ONLY: ExportConfig = {
  envFile: null, jsonFile: null, launchParamsFile: null, shFile: '/etc/profile.d/cartridge-agent.sh', mode: '0600', group: null,
};

let root: string;
before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'export-shells-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Write the payload's sh export under a fresh root; return the host path. */
async function exportSh(vars: ReadonlyMap<string, string>, name: string): Promise<string> {
  const paths = new RootedPaths(path.join(root, name));
  const [file] = await writeExports(vars, SH_ONLY, paths);
  assert.ok(file);
  return file;
}

/** Source `file` in `shell` (with set -eu: no expansion may even be attempted) and dump its environment. */
function sourceAndDump(shell: (typeof SHELLS)[number], file: string): Map<string, Buffer> {
  // A UTF-8 locale makes bash and dash treat the multibyte text as characters; it must not matter.
  const r = spawnSync(shell.cmd, [...shell.args, '-c', 'set -eu; . "$1"; exec env -0', 'sh', file], {
    maxBuffer: 64 * 1024 * 1024,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C.UTF-8', HOME: '/nonexistent' },
  });
  assert.equal(r.status, 0, `${shell.name} failed sourcing ${file}: ${r.stderr.toString()}`);
  assert.equal(r.stderr.toString(), '', `${shell.name} wrote to stderr while sourcing`);
  return parseEnv0(r.stdout);
}

describe('sh export sourced by real shells', () => {
  it('hostile corpus reads back byte for byte and runs nothing', async (t) => {
    if (!requireCommands(t, 'sh', 'bash', 'dash', 'env')) return;
    rmSync(CANARY_FILE, { force: true });
    const payload = hostileCorpus();
    const file = await exportSh(payload, 'hostile');
    for (const shell of SHELLS) {
      assertEnvMatches(sourceAndDump(shell, file), payload, 'HOSTILE_', shell.name);
    }
    assert.equal(existsSync(CANARY_FILE), false, `a value was executed: ${CANARY_FILE} exists`);
    assert.equal(readdirSync(path.dirname(file)).length, 1, 'only the export file is left in profile.d');
  });

  it('a payload of 5000 keys reads back exactly', async (t) => {
    if (!requireCommands(t, 'sh', 'bash', 'dash', 'env')) return;
    const payload = manyKeys(5000);
    const file = await exportSh(payload, 'many');
    for (const shell of SHELLS) assertEnvMatches(sourceAndDump(shell, file), payload, 'HOSTILE_', shell.name);
  });

  it('the canary check can fail: an unquoted value does create the file', (t) => {
    if (!requireCommands(t, 'sh')) return;
    rmSync(CANARY_FILE, { force: true });
    const r = spawnSync('sh', ['-c', `X=$(touch ${CANARY_FILE})`]);
    assert.equal(r.status, 0);
    assert.equal(existsSync(CANARY_FILE), true);
    rmSync(CANARY_FILE, { force: true });
  });

  for (const [name, value, reason] of REFUSED_VALUES) {
    it(`refuses ${name} with the key named, and writes nothing`, async () => {
      const payload = new Map([['HOSTILE_FINE', 'ok'], [name, value]]);
      await assert.rejects(exportSh(payload, `refused-${name}`), (err: unknown) => {
        assert.ok(err instanceof PayloadError, String(err));
        assert.match(err.message, new RegExp(`payload key "${name}"`));
        assert.match(err.message, reason);
        return true;
      });
      assert.equal(existsSync(path.join(root, `refused-${name}`)), false, 'nothing may be written for a refused payload');
    });
  }
});
