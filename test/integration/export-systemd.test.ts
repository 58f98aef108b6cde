/**
 * payload.env read by REAL systemd 252 (EnvironmentFile= of a transient service under a
 * `systemd --user` manager, see fixtures/export/systemd-user-manager.ts): every value must
 * come back byte for byte, and what we refuse must be what systemd itself cannot load.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeExports, type ExportConfig } from '../../agent/src/export';
import { systemdQuote } from '../../agent/src/export/quote';
import { RootedPaths } from '../../agent/src/paths';
import { requireCommands, requireRoot } from '../helpers/env';
import { assertEnvMatches, parseEnv0 } from '../fixtures/export/env-dump';
import { hostileCorpus, manyKeys } from '../fixtures/export/hostile-corpus';
import { SYSTEMD_BINARY, runUnitsWithEnvFiles, type UnitRun } from '../fixtures/export/systemd-user-manager';

const ENV_ONLY: ExportConfig = {
  envFile: '/run/cartridge-agent/payload.env', jsonFile: null, shFile: null, launchParamsFile: null, mode: '0640', group: null,
};

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'export-systemd-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function exportEnv(vars: ReadonlyMap<string, string>, name: string): Promise<string> {
  const [file] = await writeExports(vars, ENV_ONLY, new RootedPaths(path.join(dir, name)));
  assert.ok(file);
  return file;
}

function rawEnvFile(name: string, content: Buffer | string): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

describe('payload.env read by real systemd', () => {
  it('hostile corpus and 3000 keys round-trip; unquoted and invalid files behave as systemd documents', async (t) => {
    if (!requireRoot(t) || !requireCommands(t, 'unshare', 'systemd-run', 'timeout', SYSTEMD_BINARY)) return;
    const hostile = hostileCorpus();
    const many = manyKeys(3000);
    const files = {
      hostile: await exportEnv(hostile, 'hostile'),
      many: await exportEnv(many, 'many'),
      // Controls: prove the harness sees systemd's real parsing (an unquoted value loses its
      // surrounding whitespace, a backslash-newline joins lines) …
      unquoted: rawEnvFile('unquoted.env', 'HOSTILE_PADDED=   padded   \nHOSTILE_JOINED=a\\\nb\n'),
      // … and that the values assertExportable refuses make systemd refuse the whole file.
      nonchar: rawEnvFile('nonchar.env', `HOSTILE_OK="x"\nHOSTILE_NC=${systemdQuote('a\uFDD0')}\n`),
      nonchar2: rawEnvFile('nonchar2.env', `HOSTILE_NC=${systemdQuote('\u{10FFFF}')}\n`),
      surrogate: rawEnvFile('surrogate.env', Buffer.concat([Buffer.from('HOSTILE_S="a'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"\n')])),
    };
    const runs = runUnitsWithEnvFiles(Object.values(files), path.join(dir, 'manager.log'));
    const by = (file: string): UnitRun => runs.find((r) => r.envFile === file) as UnitRun;

    assert.ok(by(files.hostile).ok, `systemd refused the hostile payload.env: ${by(files.hostile).log}`);
    assertEnvMatches(parseEnv0(by(files.hostile).dump), hostile, 'HOSTILE_', 'systemd (hostile corpus)');
    assert.ok(by(files.many).ok, `systemd refused the 3000-key payload.env: ${by(files.many).log}`);
    assertEnvMatches(parseEnv0(by(files.many).dump), many, 'HOSTILE_', 'systemd (3000 keys)');

    assert.ok(by(files.unquoted).ok, by(files.unquoted).log);
    assertEnvMatches(parseEnv0(by(files.unquoted).dump), new Map([['HOSTILE_PADDED', 'padded'], ['HOSTILE_JOINED', 'ab']]), 'HOSTILE_', 'systemd (unquoted control)');

    for (const f of [files.nonchar, files.nonchar2, files.surrogate]) {
      assert.equal(by(f).ok, false, `systemd accepted ${path.basename(f)}; the refusal in assertExportable would be unjustified`);
    }
  });
});
