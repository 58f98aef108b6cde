/**
 * The profile.d export sourced by real shells (all of test/fixtures/export/shells.ts, also
 * interactive): every value must come back byte for byte, no value may run code, the file must
 * be sourced to its end, names special to a shell must be left out of it (and kept in
 * payload.env and payload.json), and what cannot be exported must be refused with the key named.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PayloadError } from '../../agent/src/errors';
import { writeExports, type ExportConfig } from '../../agent/src/export';
import { RootedPaths } from '../../agent/src/paths';
import { requireCommands } from '../helpers/env';
import { assertEnvMatches } from '../fixtures/export/env-dump';
import { CANARY_FILE, REFUSED_VALUES, hostileCorpus, manyKeys, SPECIAL_NAME_VALUES } from '../fixtures/export/hostile-corpus';
import { SHELL_COMMANDS, SHELL_VARIANTS, sourceAndDump, type ShellVariant } from '../fixtures/export/shells';

const SH_ONLY: ExportConfig = {
  envFile: null, jsonFile: null, launchParamsFile: null, shFile: '/etc/profile.d/cartridge-agent.sh', mode: '0600', group: null,
};
const ALL: ExportConfig = {
  ...SH_ONLY, envFile: '/run/cartridge-agent/payload.env', jsonFile: '/run/cartridge-agent/payload.json',
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

/** Source `file` in `shell` and return its environment; the file must have been sourced without complaint. */
function dumpAfterSourcing(shell: ShellVariant, file: string): Map<string, Buffer> {
  const r = sourceAndDump(shell, file, root);
  assert.ok(r.env, `${shell.name} did not get past sourcing ${file} (status ${r.status}): ${r.stderr.slice(0, 500)}`);
  if (!shell.interactive) {
    assert.equal(r.status, 0, `${shell.name} failed sourcing ${file}: ${r.stderr}`);
    assert.equal(r.stderr, '', `${shell.name} wrote to stderr while sourcing`);
  }
  return r.env;
}

describe('sh export sourced by real shells', () => {
  it('hostile corpus reads back byte for byte and runs nothing', async (t) => {
    if (!requireCommands(t, ...SHELL_COMMANDS)) return;
    rmSync(CANARY_FILE, { force: true });
    const payload = hostileCorpus();
    const file = await exportSh(payload, 'hostile');
    for (const shell of SHELL_VARIANTS) {
      assertEnvMatches(dumpAfterSourcing(shell, file), payload, 'HOSTILE_', shell.name);
    }
    assert.equal(existsSync(CANARY_FILE), false, `a value was executed: ${CANARY_FILE} exists`);
    assert.equal(readdirSync(path.dirname(file)).length, 1, 'only the export file is left in profile.d');
  });

  it('a payload of 5000 keys reads back exactly', async (t) => {
    if (!requireCommands(t, ...SHELL_COMMANDS)) return;
    const payload = manyKeys(5000);
    const file = await exportSh(payload, 'many');
    for (const shell of SHELL_VARIANTS.filter((v) => !v.interactive)) {
      assertEnvMatches(dumpAfterSourcing(shell, file), payload, 'HOSTILE_', shell.name);
    }
  });

  // Every name of the table, in rounds so each gets every hostile value once, between hostile
  // ordinary variables; the last variable is a sentinel, so a file that stopped half-way shows.
  for (const [round, special] of SPECIAL_NAME_VALUES.entries()) {
    it(`names special to a shell are left out of the sh file and kept in payload.env and payload.json (round ${round + 1})`, async (t) => {
      if (!requireCommands(t, ...SHELL_COMMANDS)) return;
      rmSync(CANARY_FILE, { force: true });
      const ordinary = hostileCorpus();
      const payload = new Map<string, string>();
      const plain = [...ordinary];
      for (const [i, entry] of [...special].entries()) {
        payload.set(entry[0], entry[1]);
        const next = plain[i % plain.length];
        if (next) payload.set(...next);
      }
      for (const [k, v] of ordinary) payload.set(k, v);
      payload.set('HOSTILE_ZZ_SENTINEL', 'sourced to the end');
      const paths = new RootedPaths(path.join(root, `special-${round}`));
      await writeExports(payload, ALL, paths);

      const shText = readFileSync(paths.resolve(ALL.shFile as string), 'utf8');
      const envText = readFileSync(paths.resolve(ALL.envFile as string), 'utf8');
      for (const name of special.keys()) {
        assert.doesNotMatch(shText, new RegExp(`^export ${name}=`, 'm'), `${name} must not be in the sh file`);
        assert.match(envText, new RegExp(`^${name}="`, 'm'), `${name} must be in payload.env`);
      }
      assert.deepEqual(JSON.parse(readFileSync(paths.resolve(ALL.jsonFile as string), 'utf8')), Object.fromEntries(payload));

      const expected = new Map([...payload].filter(([k]) => k.startsWith('HOSTILE_')));
      for (const shell of SHELL_VARIANTS) {
        const env = dumpAfterSourcing(shell, paths.resolve(ALL.shFile as string));
        assertEnvMatches(env, expected, 'HOSTILE_', shell.name);
        for (const [name, value] of special) {
          assert.notDeepEqual(env.get(name), Buffer.from(value), `${shell.name}: ${name} came from the sh file`);
        }
      }
      assert.equal(existsSync(CANARY_FILE), false, `a value was executed: ${CANARY_FILE} exists`);
    });
  }

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
