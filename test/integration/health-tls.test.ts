/**
 * TLS to a real mosquitto with a CA and server certificate made by openssl in the test:
 * connects with the CA, fails clearly without it or with the wrong one.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { parseStatusMessage } from '../../agent/src/protocol/mqtt';
import { makeAgent, Observer, PREFIX, sleep, waitUntil } from '../fixtures/health/agent';
import { makeTestPki, type TestPki } from '../fixtures/health/certs';
import { Mosquitto } from '../fixtures/health/mosquitto';
import { requireCommands } from '../helpers/env';

describe('health over TLS', { timeout: 60_000 }, () => {
  const users = { admin: 'admin-pw', m1: 'm1-pw' };
  let pki: TestPki | null = null;
  let broker: Mosquitto | null = null;
  after(async () => {
    await broker?.close();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  async function setup(t: import('node:test').TestContext): Promise<{ b: Mosquitto; p: TestPki } | null> {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd', 'openssl')) return null;
    pki ??= makeTestPki();
    broker ??= await Mosquitto.start({ users, tls: pki });
    return { b: broker, p: pki };
  }

  test('connects with the test CA and publishes its birth', async (t) => {
    const s = await setup(t);
    if (!s) return;
    const live = await Observer.connect(s.b.url, [`${PREFIX}/#`], { username: 'admin', password: users.admin });
    const { reporter, connection, topics } = makeAgent({ urls: [s.b.tlsUrl], member: 'm1', password: users.m1, caFile: s.p.caFile, intervalS: 30 });
    try {
      reporter.start();
      await waitUntil('connected over TLS', () => connection.connected, 5_000);
      const birth = await live.waitFor('birth', (m) => m.topic === topics.status);
      assert.equal(parseStatusMessage(birth.topic, birth.raw)?.state, 'online');
      assert.equal(connection.snapshot().broker, s.b.tlsUrl);
    } finally {
      await reporter.stop({ readyToShutdown: false, timeoutMs: 1_000 });
      await live.close();
    }
  });

  for (const variant of ['no CA (system store)', 'an unrelated CA'] as const) {
    test(`fails clearly with ${variant}`, async (t) => {
      const s = await setup(t);
      if (!s) return;
      const caFile = variant === 'an unrelated CA' ? s.p.otherCaFile : null;
      const { reporter, connection } = makeAgent({ urls: [s.b.tlsUrl], member: 'm1', password: users.m1, caFile, intervalS: 30 });
      try {
        reporter.start();
        await waitUntil('a TLS error', () => connection.snapshot().lastError, 5_000);
        await sleep(200);
        assert.equal(connection.connected, false);
        const err = connection.snapshot().lastError ?? '';
        assert.match(err, new RegExp(`^broker ${s.b.tlsUrl.replace(/\./g, '\\.')}: .*(certificate|self.signed).*\\(TLS: check health\\.caFile and the broker certificate\\)$`));
        assert.equal(connection.snapshot().refused, false, 'a TLS failure is retried with normal backoff');
      } finally {
        await reporter.stop({ readyToShutdown: false, timeoutMs: 500 });
      }
    });
  }
});
