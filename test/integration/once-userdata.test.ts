/**
 * `once` from the bundle with cloud-init style user data (NoCloud seed dirs in a temp image
 * root) and with signed payloads: the decoding, signature and inline rules end to end.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { forEachRuntime } from '../helpers/runtimes';
import { makeImageRoot, SAMPLE_PAYLOAD, startPayloadServer, type ImageRoot } from '../../scripts/lib/fake-instance';
import { PAYLOAD_PART_CONTENT_TYPE } from '../../agent/src/protocol/payload-http';

const NOCLOUD = { sources: { order: ['nocloud'] } };

function seedNoCloud(image: ImageRoot, userData: Buffer | string, instanceId = 'iid-test-1'): void {
  const dir = image.at('/var/lib/cloud/seed/nocloud');
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/meta-data`, `instance-id: ${instanceId}\nlocal-hostname: test\n`);
  writeFileSync(`${dir}/user-data`, userData);
}

function exported(image: ImageRoot): Record<string, string> {
  return JSON.parse(readFileSync(image.at('/run/cartridge-agent/payload.json'), 'utf8'));
}

/** Ed25519 key pair; the agent gets the public key as base64 of its 32 raw bytes. */
function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  return { privateKey, publicKeyB64: raw };
}

forEachRuntime((test) => {
  test('NoCloud inline dotenv payload, gzipped and base64-wrapped, is exported exactly', async (agent) => {
    const image = makeImageRoot(null, NOCLOUD);
    try {
      const payload = 'export APP="it\'s \\"quoted\\""\nGREETING=\'héllo $(world)\'\n# comment\nEMPTY=\n';
      seedNoCloud(image, gzipSync(payload).toString('base64'));
      const r = await agent(['once', '--root', image.root, '--json']);
      assert.equal(r.code, 0, r.err);
      const summary = JSON.parse(r.out);
      assert.equal(summary.via, 'inline');
      assert.equal(summary.instanceId, 'iid-test-1');
      assert.equal(summary.format, 'dotenv');
      assert.deepEqual(exported(image), { APP: 'it\'s "quoted"', GREETING: 'héllo $(world)', EMPTY: '' });
    } finally {
      image.remove();
    }
  });

  test('NoCloud MIME user data: our part is a #include list; a dead mirror is skipped', async (agent) => {
    const server = await startPayloadServer(SAMPLE_PAYLOAD);
    const image = makeImageRoot(null, NOCLOUD);
    try {
      const include = `#include\nhttp://127.0.0.1:9/dead-mirror\n${server.url}\n`;
      const mime = [
        'Content-Type: multipart/mixed; boundary="XYZ"',
        'MIME-Version: 1.0',
        '',
        '--XYZ',
        'Content-Type: text/cloud-config; charset="us-ascii"',
        '',
        '#cloud-config',
        'runcmd: [echo hi]',
        '--XYZ',
        `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}`,
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from(include).toString('base64'),
        '--XYZ--',
        '',
      ].join('\n');
      seedNoCloud(image, mime);
      const r = await agent(['once', '--root', image.root, '--json']);
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).via, 'fetched');
      assert.equal(exported(image).SERVICE_NAME, 'php');
    } finally {
      await server.close();
      image.remove();
    }
  });

  test('#cloud-config user data is refused, saying it is not for the agent', async (agent) => {
    const image = makeImageRoot(null, NOCLOUD);
    try {
      seedNoCloud(image, '#cloud-config\npackages: [nginx]\n');
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 6, r.err);
      assert.match(r.err, /cloud-config/);
    } finally {
      image.remove();
    }
  });

  test('signed payloads: a good signature is accepted, a tampered body and a wrong key are refused', async (agent) => {
    const { privateKey, publicKeyB64 } = keyPair();
    const other = keyPair();
    const good = await startPayloadServer(SAMPLE_PAYLOAD, { signWith: privateKey });
    const tampered = await startPayloadServer(SAMPLE_PAYLOAD, { signWith: privateKey, tamper: (b) => Buffer.from(b.toString().replace('php', 'PHP')) });
    const cfg = (key: string) => ({ payload: { publicKey: key } });
    const images: ImageRoot[] = [];
    try {
      const ok = makeImageRoot(good.url, cfg(publicKeyB64));
      images.push(ok);
      const r1 = await agent(['once', '--root', ok.root]);
      assert.equal(r1.code, 0, r1.err);
      assert.equal(exported(ok).SERVICE_NAME, 'php');

      const bad = makeImageRoot(tampered.url, cfg(publicKeyB64));
      images.push(bad);
      const r2 = await agent(['once', '--root', bad.root]);
      assert.equal(r2.code, 6, r2.err);
      assert.match(r2.err, /signature/i);
      assert.equal(tampered.requests, 1, 'a bad signature is not retried');

      const wrongKey = makeImageRoot(good.url, cfg(other.publicKeyB64));
      images.push(wrongKey);
      const r3 = await agent(['once', '--root', wrongKey.root]);
      assert.equal(r3.code, 6, r3.err);
    } finally {
      await good.close();
      await tampered.close();
      for (const i of images) i.remove();
    }
  });

  test('with a public key set, an inline user-data payload is refused (it cannot be signed)', async (agent) => {
    const image = makeImageRoot(null, { ...NOCLOUD, payload: { publicKey: keyPair().publicKeyB64 } });
    try {
      seedNoCloud(image, 'A=1\nB=2\n');
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 6, r.err);
      assert.match(r.err, /inline payload cannot carry a signature/);
    } finally {
      image.remove();
    }
  });

  test('a bad CA file path is a config error naming payload.fetch.caFile', async (agent) => {
    const image = makeImageRoot('https://127.0.0.1:9/payload/x?token=t', { payload: { fetch: { caFile: '/etc/nope/ca.pem' } } });
    try {
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 3, r.err);
      assert.match(r.err, /config key "payload\.fetch\.caFile": cannot read the CA bundle \/etc\/nope\/ca\.pem/);
    } finally {
      image.remove();
    }
  });
});
