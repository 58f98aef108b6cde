/**
 * A connection the broker closes before CONNACK (issue 14 §1): a warning with the likely
 * cause, not repeated on every attempt, and `status` shows it. MQTT 5 is tried as 3.1.1 once
 * and then, when that is not it either, back to 5. The "broker" is a real TCP listener that
 * closes every connection as soon as the CONNECT arrives (what RabbitMQ 3.10 does to MQTT 5;
 * the real brokers are in health-ids-brokers.test.ts).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { makeAgent, waitUntil } from '../fixtures/health/agent';

describe('closed before CONNACK', { timeout: 30_000 }, () => {
  let server: net.Server;
  let connects = 0;
  let url = '';
  before(async () => {
    server = net.createServer((s) => s.once('data', () => { connects++; s.destroy(); }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function run(protocolVersion: 4 | 5, attempts: number) {
    const lines: Array<{ level: number; msg: string }> = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const { reporter, connection } = makeAgent({ urls: [url], protocolVersion, baseMs: 10, capMs: 30, log });
    const from = connects;
    try {
      reporter.start();
      await waitUntil(`${attempts} attempts`, () => connects - from >= attempts && connection.snapshot().failures >= attempts, 20_000);
      return { lines, snapshot: connection.snapshot(), warnings: lines.filter((l) => l.level === 40).map((l) => l.msg) };
    } finally {
      await reporter.stop({ timeoutMs: 500 });
    }
  }

  test('MQTT 3.1.1: one warning with the likely causes for many attempts; status has it', async () => {
    const { warnings, snapshot, lines } = await run(4, 6);
    const pre = warnings.filter((w) => /closed before CONNACK/.test(w));
    assert.equal(pre.length, 1, `rate-limited: ${JSON.stringify(warnings)}`);
    assert.match(pre[0]!, /connection closed before CONNACK \(MQTT 3\.1\.1\); likely it refused something in the CONNECT .*NATS.*; or the port is not an MQTT listener/);
    assert.match(pre[0]!, /repeats are logged at debug level for 10 min/);
    assert.ok(lines.filter((l) => l.level === 20 && /closed before CONNACK/.test(l.msg)).length >= 4, 'the repeats at debug');
    assert.match(snapshot.lastError ?? '', /closed before CONNACK/);
    assert.equal(snapshot.protocolVersion, 4);
    assert.ok(!warnings.some((w) => /trying MQTT 3\.1\.1/.test(w)), 'nothing to fall back to');
  });

  test('MQTT 5: 3.1.1 once, said so; then back to 5, and one warning', async () => {
    const { warnings, snapshot } = await run(5, 6);
    assert.equal(warnings.filter((w) => /did not accept MQTT 5 \(closed before CONNACK\): trying MQTT 3\.1\.1 once/.test(w)).length, 1, JSON.stringify(warnings));
    assert.equal(warnings.filter((w) => /did not accept MQTT 3\.1\.1 either: back to MQTT 5/.test(w)).length, 1);
    // The 3.1.1 attempt that was not it either gets the usual warning; the MQTT 5 ones after it are repeats.
    const pre = warnings.filter((w) => /connection closed before CONNACK \(/.test(w));
    assert.equal(pre.length, 1, JSON.stringify(warnings));
    assert.match(pre[0]!, /\(MQTT 3\.1\.1\); likely it refused something in the CONNECT/);
    assert.equal(snapshot.protocolVersion, 5);
  });
});
