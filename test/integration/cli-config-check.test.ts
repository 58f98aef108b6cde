/**
 * `config check` through the bundle, and the exit codes of commands that find nothing to work
 * on: `env` with nothing exported (12), `status` with no daemon (13) — not the codes of a
 * failed export write (7) or an internal error (1).
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { BUNDLE, makeImageRoot, runAgent } from '../../scripts/lib/fake-instance';

test('config check: the effective config as JSON, exit 0; an invalid one: exit 3 naming the file and the key', async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build'`);
  const image = makeImageRoot(null, { health: { intervalSeconds: 7, brokerUrls: ['mqtt://agent:s3cret@broker:1883'] } });
  try {
    const ok = await runAgent(['config', 'check', '--root', image.root]);
    assert.equal(ok.code, 0, ok.err);
    const effective = JSON.parse(ok.out) as { health: { intervalSeconds: number; keepaliveSeconds: number; brokerUrls: string[] }; payload: { maxKeys: number } };
    assert.equal(effective.health.intervalSeconds, 7, 'the file');
    assert.equal(effective.payload.maxKeys, 10_000, 'numbers are shown, not redacted for their names');
    assert.deepEqual(effective.health.brokerUrls, ['mqtt://broker:1883'], 'credentials in URLs are removed');
    assert.equal(effective.health.keepaliveSeconds, 30, 'a default filled in');
    assert.match(ok.err, new RegExp(`config ok: ${image.at('/etc/cartridge-agent/agent.json').replace(/[.]/g, '\\.')}`));

    writeFileSync(image.at('/etc/cartridge-agent/agent.json'), JSON.stringify({ health: { intervalSeconds: 0 }, firewal: {} }));
    const bad = await runAgent(['config', 'check', '--root', image.root]);
    assert.equal(bad.code, 3);
    assert.equal(bad.out, '');
    assert.match(bad.err, /agent\.json: config key "(firewal|health\.intervalSeconds)": /);

    const usage = await runAgent(['config', 'show', '--root', image.root]);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /'config' needs an action: check; got "show"/);
  } finally {
    image.remove();
  }
});

test('env with nothing exported is exit 12, status with no daemon exit 13', async () => {
  const image = makeImageRoot(null);
  try {
    const env = await runAgent(['env', '--root', image.root]);
    assert.equal(env.code, 12, env.err);
    assert.match(env.err, /nothing is exported \(has 'cartridge-agent once' run on this boot\?\)/);
    const status = await runAgent(['status', '--root', image.root]);
    assert.equal(status.code, 13, status.err);
    assert.match(status.err, /the daemon \('cartridge-agent run'\) is not running/);
  } finally {
    image.remove();
  }
});
