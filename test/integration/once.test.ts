/**
 * `cartridge-agent once` end to end from the bundle, as an image runs it: a temp image root
 * (--root) with a personality file, a real local HTTP server as the controller, real files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { after, before } from 'node:test';
import { forEachRuntime } from '../helpers/runtimes';
import { BUNDLE, makeImageRoot, SAMPLE_PAYLOAD, startPayloadServer, type ImageRoot, type PayloadServer } from '../../scripts/lib/fake-instance';

let server: PayloadServer;
before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  server = await startPayloadServer(SAMPLE_PAYLOAD);
});
after(() => server.close());

function readJson(image: ImageRoot): Record<string, string> {
  return JSON.parse(readFileSync(image.at('/run/cartridge-agent/payload.json'), 'utf8'));
}

forEachRuntime((test) => {
  test('once: personality file → fetch → every export written, values exact, secrets not logged', async (agent) => {
    const image = makeImageRoot(server.url);
    try {
      const r = await agent(['once', '--root', image.root, '--json']);
      assert.equal(r.code, 0, r.err);
      const summary = JSON.parse(r.out);
      assert.equal(summary.source, 'personality');
      assert.equal(summary.via, 'fetched');
      assert.equal(summary.format, 'launch-params');
      const vars = readJson(image);
      assert.equal(vars.DB_URL, 'mysql://db:3306/shop?ssl=true');
      assert.equal(vars.PORTS, '80|443');
      assert.equal(vars.MB_PASSWORD, 's3cr3t');
      for (const f of ['/run/cartridge-agent/payload.env', '/run/cartridge-agent/payload.json', '/etc/profile.d/cartridge-agent.sh', '/var/lib/cartridge-agent/launch-params']) {
        assert.equal(statSync(image.at(f)).mode & 0o777, 0o640, f);
      }
      assert.equal(readFileSync(image.at('/var/lib/cartridge-agent/launch-params'), 'utf8').trim(), SAMPLE_PAYLOAD);
      assert.doesNotMatch(r.err + r.out, /s3cr3t|demo-token/, 'a secret reached the output');

      const env = await agent(['env', '--root', image.root, '--format', 'json']);
      assert.equal(env.code, 0, env.err);
      assert.deepEqual(JSON.parse(env.out), vars);
      const sh = spawnSync('sh', ['-c', `eval "$(node ${BUNDLE} env --root '${image.root}' --format sh)"; printf '%s' "$DB_URL"`], { encoding: 'utf8' });
      assert.equal(sh.stdout, 'mysql://db:3306/shop?ssl=true');
    } finally {
      image.remove();
    }
  });

  test('once: controller unreachable → cached payload of the same instance, said loudly', async (agent) => {
    const down = await startPayloadServer(SAMPLE_PAYLOAD);
    const image = makeImageRoot(down.url, { payload: { fetch: { deadlineSeconds: 1 } } });
    try {
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
      await down.close();
      writeFileSync(image.at('/run/cartridge-agent/payload.json'), '{}'); // as after a reboot: /run is empty
      const r = await agent(['once', '--root', image.root, '--json']);
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).via, 'cache');
      assert.match(r.err, /CONTROLLER UNREACHABLE: using the cached payload/);
      assert.equal(readJson(image).SERVICE_NAME, 'php');
    } finally {
      image.remove();
    }
  });

  test('once: a new instance id never uses an old cache', async (agent) => {
    const first = await startPayloadServer(SAMPLE_PAYLOAD);
    const image = makeImageRoot(first.url, { payload: { fetch: { deadlineSeconds: 1 } } });
    try {
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
      await first.close();
      // A different personality URL is a different instance (cloned image, new member).
      writeFileSync(image.at('/etc/cartridge-agent/payload-url'), first.url.replace('php.member-1', 'php.member-2') + '\n');
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 5, r.err);
      assert.match(r.err, /no cached payload for instance/);
    } finally {
      image.remove();
    }
  });

  test('once: a terminal answer (403) is not papered over with the cache', async (agent) => {
    const image = makeImageRoot(server.url);
    try {
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
      writeFileSync(image.at('/etc/cartridge-agent/payload-url'), server.url.replace('demo-token', 'revoked') + '\n');
      const before = server.requests;
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 5, r.err);
      assert.match(r.err, /403/);
      assert.equal(server.requests - before, 1, '403 must not be retried');
    } finally {
      image.remove();
    }
  });

  test('once: a refused payload exits 6 naming the key and leaves the previous exports intact', async (agent) => {
    const bad = await startPayloadServer('SERVICE_NAME=php,LD_PRELOAD=/tmp/evil.so');
    const image = makeImageRoot(server.url);
    try {
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
      const envBefore = readFileSync(image.at('/run/cartridge-agent/payload.env'));
      writeFileSync(image.at('/etc/cartridge-agent/payload-url'), bad.url + '\n');
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 6, r.err);
      assert.match(r.err, /LD_PRELOAD/);
      assert.deepEqual(readFileSync(image.at('/run/cartridge-agent/payload.env')), envBefore);
    } finally {
      await bad.close();
      image.remove();
    }
  });

  test('once: no pointer exits 4 and says why each source yielded nothing', async (agent) => {
    const image = makeImageRoot(null, { sources: { order: ['personality', 'nocloud'] } });
    try {
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 4, r.err);
      assert.match(r.err, /personality: .*payload-url/);
      assert.match(r.err, /nocloud: /);
    } finally {
      image.remove();
    }
  });

  test('an invalid config exits 3 naming the key; discover reports per source', async (agent) => {
    const image = makeImageRoot(server.url, { sources: { waitSeconds: 'forever' } });
    try {
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 3);
      assert.match(r.err, /config key "sources\.waitSeconds"/);
    } finally {
      image.remove();
    }
    const ok = makeImageRoot(server.url, { sources: { order: ['nocloud', 'personality'] } });
    try {
      const r = await agent(['discover', '--root', ok.root]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /nocloud\s+absent/);
      assert.match(r.out, /personality\s+found\s+url http:\/\/127\.0\.0\.1:\d+\/payload\/php\.member-1\?token=\[REDACTED\]/);
      assert.doesNotMatch(r.out, /demo-token/);
      assert.ok(!existsSync(ok.at('/run/cartridge-agent/payload.env')), 'discover must not write exports');
    } finally {
      ok.remove();
    }
  });
});
