/**
 * `cartridge-controller serve --broker mqtts://…` with --broker-ca and --broker-protocol (issue
 * 14 §1; before, TLS worked only through NODE_EXTRA_CA_CERTS and the tracker was pinned to
 * 3.1.1 without --share): the CLI in this process against a real mosquitto with a TLS
 * listener and a CA made by openssl; mosquitto's log says which protocol the tracker spoke.
 * A dotted Stratos member reports over TLS and `fleet --json` lists it under its real ids.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { main, type CliIo } from '../../controller-stub/src/cli';
import { makeAgent, waitUntil } from '../fixtures/health/agent';
import { makeTestPki, type TestPki } from '../fixtures/health/certs';
import { Mosquitto } from '../fixtures/health/mosquitto';
import { hasCommand, requireCommands } from '../helpers/env';

const USERS = { ctl: 'ctl-pw', 'php.shop.m1': 'm1-pw' };

describe('serve against an mqtts:// broker', { timeout: 60_000 }, () => {
  const ready = hasCommand('mosquitto') && hasCommand('mosquitto_passwd') && hasCommand('openssl');
  let pki: TestPki;
  let broker: Mosquitto;
  let dir: string;
  before(async () => {
    if (!ready) return;
    pki = makeTestPki();
    broker = await Mosquitto.start({ users: USERS, tls: pki, acl: 'user ctl\ntopic readwrite #\n\npattern write cartridge/v1/+/%c/#\npattern read cartridge/v1/+/%c/status\n' });
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctl-tls-'));
    writeFileSync(path.join(dir, 'pw'), `${USERS.ctl}\n`);
  });
  after(async () => {
    if (!ready) return;
    await broker.close();
    rmSync(pki.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  /** Run `serve` until `until` resolves; resolves with its exit code and output. */
  async function serve(state: string, args: string[], until: (out: () => string) => Promise<void>): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    let stop: (s: string) => void = () => undefined;
    const stopped = new Promise<string>((resolve) => (stop = resolve));
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), waitForStop: () => stopped };
    const run = main(['serve', '--state', path.join(dir, state), '--http', '127.0.0.1:0', '--broker', `mqtts://ctl@127.0.0.1:${broker.tlsPort}`, '--broker-password-file', path.join(dir, 'pw'), ...args], io);
    const early = await Promise.race([run.then((code) => ({ code })), until(() => out).then(() => null)]);
    if (early) return { code: early.code, out, err };
    stop('SIGTERM');
    return { code: await run, out, err };
  }
  const serving = (out: () => string) => waitUntil('serving', () => /cartridge-controller serving/.test(out()), 10_000).then(() => undefined);
  const trackerConnects = (p: string) => broker.count(new RegExp(`New client connected .* as cartridge-controller-\\S+ \\(${p},.*u'ctl'`));

  test('--broker-ca and --broker-protocol 5: the tracker verifies the broker and speaks MQTT 5; a dotted member shows up', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd', 'openssl')) return;
    const before5 = trackerConnects('p5');
    const r = await serve('v5', ['--broker-ca', pki.caFile, '--broker-protocol', '5'], async (out) => {
      await serving(out);
      const { reporter, connection } = makeAgent({ urls: [broker.tlsUrl], cluster: 'php.shop', member: 'php.shop.m1', password: USERS['php.shop.m1'], caFile: pki.caFile, intervalS: 1 });
      try {
        reporter.start();
        await waitUntil('agent connected over TLS', () => connection.connected, 5_000);
        let table = '';
        const fleetIo: CliIo = { out: (x) => void (table += x), err: () => undefined, waitForStop: () => new Promise(() => undefined) };
        for (let i = 0; i < 50 && !/"memberId": ?"php\.shop\.m1"[^}]*"state": ?"ONLINE"/.test(table); i++) {
          table = '';
          await main(['fleet', '--state', path.join(dir, 'v5'), '--json'], fleetIo);
          await new Promise((res) => setTimeout(res, 100));
        }
        assert.match(table, /"clusterId": ?"php\.shop"/);
        assert.match(table, /"memberId": ?"php\.shop\.m1"[^}]*"state": ?"ONLINE"/);
      } finally {
        await reporter.stop({ timeoutMs: 1_000 });
      }
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(trackerConnects('p5'), before5 + 1, `tracker connected with MQTT 5:\n${broker.log.slice(-2000)}`);
  });

  test('--broker-protocol 3.1.1 is what the tracker speaks', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd', 'openssl')) return;
    const before2 = trackerConnects('p2');
    const r = await serve('v311', ['--broker-ca', pki.caFile, '--broker-protocol', '3.1.1'], serving);
    assert.equal(r.code, 0, r.err);
    assert.equal(trackerConnects('p2'), before2 + 1, 'MQTT 3.1.1 is protocol p2 in mosquitto\'s log');
  });

  test('without the CA: a clear TLS failure; bad flags are usage errors', async (t) => {
    if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd', 'openssl')) return;
    const noCa = await serve('no-ca', [], serving);
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.err, /fleet tracker cannot connect to mqtts:\/\/(ctl@)?127\.0\.0\.1:\d+: .*(self.signed|certificate)/i);
    const usage = async (args: string[], re: RegExp): Promise<void> => {
      let err = '';
      const code = await main(['serve', '--state', path.join(dir, 'u'), ...args], { out: () => undefined, err: (x) => void (err += x), waitForStop: () => new Promise(() => undefined) });
      assert.equal(code, 2, err);
      assert.match(err, re);
    };
    await usage(['--broker', 'mqtt://127.0.0.1:1', '--broker-ca', pki.caFile], /need an mqtts:\/\/ --broker/);
    await usage(['--broker', 'mqtts://127.0.0.1:1', '--broker-cert', pki.certFile], /--broker-cert and --broker-key go together/);
    await usage(['--broker', 'mqtts://127.0.0.1:1', '--broker-protocol', '4'], /--broker-protocol must be 3\.1\.1 or 5/);
    await usage(['--broker-ca', pki.caFile], /--broker-ca needs --broker/);
    await usage(['--broker', 'mqtts://127.0.0.1:1', '--broker-ca', path.join(dir, 'missing.pem')], /--broker-ca .*missing\.pem/);
  });
});
