/**
 * Fleet members cannot impersonate or evict each other, on both brokers the controller offers:
 * the embedded aedes of `serve --mqtt-auth` (the real controller), and a real mosquitto run
 * with the config `cartridge-controller mosquitto-config` generates. The victim is a real agent
 * (MqttConnection + HealthReporter); the attacker is a plain mqtt.js client holding another
 * member's valid credentials. (a) Connecting with the victim's client id neither disconnects the
 * victim nor fires its will; (b) publishing under another member's or another cluster's topics
 * never reaches the tracker. The agent's own birth, health, events, will and shutdown still work.
 * Ids are Stratos-style dotted ones, so every topic and ACL entry carries encoded levels. The
 * embedded broker lets a member send Stratos events about itself only (it reads the body).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import mqtt, { type IClientOptions } from 'mqtt';
import { silentLogger } from '../../agent/src/log';
import { buildBirth, buildOffline, memberClientId, memberTopic, type MemberChannel, type MemberId } from '../../agent/src/protocol/mqtt';
import { FleetTracker, type FleetRow } from '../../controller-stub/src/fleet';
import { ControllerKeys } from '../../controller-stub/src/keys';
import { MemberStore } from '../../controller-stub/src/members';
import { main } from '../../controller-stub/src/cli';
import { CONTROLLER_MQTT_USER, startController } from '../../controller-stub/src/serve';
import { SimAgent, waitFor } from '../fixtures/controller/fleet-sim';
import { makeAgent, Observer, PREFIX, sleep } from '../fixtures/health/agent';
import { Mosquitto } from '../fixtures/health/mosquitto';
import { requireCommands } from '../helpers/env';

const VICTIM: MemberId = { clusterId: 'php.shop', memberId: 'php.shop.ma' };
const ATTACKER: MemberId = { clusterId: 'php.cms', memberId: 'php.cms.mb' };
const MORTAL: MemberId = { clusterId: 'php.shop', memberId: 'php.shop.mc' };
const MEMBERS = [VICTIM, ATTACKER, MORTAL];
const pw = (id: MemberId) => `${id.memberId}-secret`;
const t = (id: MemberId, channel: MemberChannel) => memberTopic(PREFIX, id, channel);
const key = (id: MemberId) => `${id.clusterId}/${id.memberId}`;

async function registerAll(store: MemberStore): Promise<void> {
  for (const id of MEMBERS) {
    const payload = JSON.stringify({ CLUSTER_ID: id.clusterId, MEMBER_ID: id.memberId, MB_USERNAME: id.memberId, MB_PASSWORD: pw(id), PORTS: '80' });
    await store.register(id.clusterId, id.memberId, payload, { ttlSeconds: 3600, singleUse: false });
  }
}

interface Bench {
  url: string;
  protocolVersion: 4 | 5;
  tracker: FleetTracker;
  /** A superuser login with its own client id, for the observer. */
  observerLogin: IClientOptions;
  stratosEvents: boolean;
  /** The broker reads Stratos event bodies (embedded): one naming another member is refused. */
  checksStratosBodies: boolean;
}

/** Connect, publish once (QoS 1), go away abruptly: whatever the broker does, never hang. */
async function attempt(url: string, opts: IClientOptions, topic: string, body: string): Promise<string> {
  let client;
  try {
    client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3_000, ...opts });
  } catch (err) {
    return `connect refused: ${(err as Error).message}`;
  }
  const closed = new Promise<string>((resolve) => client.once('close', () => resolve('connection closed')));
  const outcome = await Promise.race([
    client.publishAsync(topic, body, { qos: 1, retain: true }).then(() => 'acknowledged', (e: Error) => `refused: ${e.message}`),
    closed,
    sleep(2_000).then(() => 'no answer'),
  ]);
  client.stream.destroy(); // abrupt: a will, if the broker took one, would fire now
  await client.endAsync(true).catch(() => undefined);
  return outcome;
}

const rowKeys = (rows: FleetRow[]) => rows.map((r) => `${r.clusterId}/${r.memberId}`).sort();

async function scenario(b: Bench): Promise<void> {
  const attackerLogin = { username: ATTACKER.memberId, password: pw(ATTACKER), protocolVersion: b.protocolVersion };
  const live = await Observer.connect(b.url, [`${PREFIX}/#`, 'instance/status/#'], { ...b.observerLogin, protocolVersion: b.protocolVersion });
  const { reporter, connection } = makeAgent({ urls: [b.url], member: VICTIM.memberId, cluster: VICTIM.clusterId, password: pw(VICTIM), protocolVersion: b.protocolVersion, stratosEvents: b.stratosEvents, vars: new Map([['CLUSTER_ID', VICTIM.clusterId], ['MEMBER_ID', VICTIM.memberId]]) });
  let downs = 0;
  connection.on('down', () => downs++);
  const agents: SimAgent[] = [];
  try {
    reporter.start();
    await waitFor('victim ONLINE in the fleet', () => b.tracker.rows().find((r) => r.memberId === VICTIM.memberId)?.state === 'ONLINE', 5_000);
    const session = connection.snapshot().session as number;
    reporter.publishEvent('started');
    await live.waitFor('victim health', (m) => m.topic === t(VICTIM, 'health'), 4_000);
    await live.waitFor('victim started event', (m) => m.topic === t(VICTIM, 'event') && m.json?.type === 'started');
    if (b.stratosEvents) await live.waitFor('Stratos started event', (m) => m.topic === 'instance/status/InstanceStartedEvent' && m.json?.memberId === VICTIM.memberId);

    // (a) The attacker's own valid login, the victim's client id, and a will that would mark it offline.
    const will = { topic: t(VICTIM, 'status'), payload: Buffer.from(JSON.stringify(buildOffline(session + 1000, Date.now(), 'lwt'))), qos: 1 as const, retain: true };
    const takeover = await attempt(b.url, { ...attackerLogin, clientId: memberClientId(VICTIM), will }, t(ATTACKER, 'status'), JSON.stringify(buildBirth(Date.now(), Date.now(), 'x', 60)));
    // The victim's login with a wrong password and its client id.
    const guess = await attempt(b.url, { username: VICTIM.memberId, password: 'guess', clientId: memberClientId(VICTIM), protocolVersion: b.protocolVersion }, t(VICTIM, 'status'), '{}');
    assert.match(guess, /connect refused/);

    // (b) Publishing for others: another member, another cluster with its own name, and both.
    const offline = JSON.stringify(buildOffline(session + 1000, Date.now(), 'shutdown'));
    const birth = JSON.stringify(buildBirth(Date.now(), Date.now(), 'evil', 60));
    const forged: Array<[string, string]> = [
      [t(VICTIM, 'status'), offline],
      [t(VICTIM, 'event'), JSON.stringify({ v: 1, session, seq: 99, ts: Date.now(), type: 'fault', reason: 'forged' })],
      [t({ clusterId: 'evil', memberId: ATTACKER.memberId }, 'status'), birth],
      [t({ clusterId: VICTIM.clusterId, memberId: ATTACKER.memberId }, 'status'), birth],
      [t({ clusterId: 'evil', memberId: VICTIM.memberId }, 'status'), birth],
      // The raw dotted levels (what agents sent before ids were encoded) are no member's topics either.
      [`${PREFIX}/${VICTIM.clusterId}/${VICTIM.memberId}/status`, offline],
      ...(b.checksStratosBodies ? [['instance/status/InstanceReadyToShutdownEvent', JSON.stringify({ serviceName: 'php', clusterId: VICTIM.clusterId, memberId: VICTIM.memberId })] as [string, string]] : []),
    ];
    const outcomes: string[] = [];
    for (const [topic, body] of forged) outcomes.push(`${topic}: ${await attempt(b.url, { ...attackerLogin, clientId: memberClientId(ATTACKER) }, topic, body)}`);

    // The attacker's own topics work: once the tracker has its birth, anything forged earlier would have landed.
    agents.push(await SimAgent.connect({ url: b.url, id: ATTACKER, session: Date.now(), username: ATTACKER.memberId, password: pw(ATTACKER), protocolVersion: b.protocolVersion }));
    await waitFor('attacker ONLINE under its own id', () => b.tracker.rows().find((r) => r.memberId === ATTACKER.memberId)?.state === 'ONLINE', 5_000);
    await sleep(300);

    const detail = `takeover: ${takeover}; ${outcomes.join('; ')}; fleet ${JSON.stringify(rowKeys(b.tracker.rows()))}`;
    assert.equal(downs, 0, `the victim was never disconnected (${detail})`);
    assert.ok(connection.connected, 'the victim is still connected');
    assert.deepEqual(rowKeys(b.tracker.rows()), [key(ATTACKER), key(VICTIM)].sort(), `nothing forged reached the fleet table (${detail})`);
    const victimRow = b.tracker.rows().find((r) => r.memberId === VICTIM.memberId);
    assert.equal(victimRow?.state, 'ONLINE', detail);
    assert.equal(victimRow?.session, session, 'still the victim\'s own session');
    for (const [topic, body] of forged) assert.deepEqual(live.on(topic).filter((m) => m.raw === body), [], `nothing forged delivered on ${topic} (${detail})`);
    assert.ok(!live.on(t(VICTIM, 'status')).some((m) => m.json?.state === 'offline'), `no offline for the victim (${detail})`);
    assert.ok(!live.on(t(VICTIM, 'event')).some((m) => m.json?.type === 'fault'), 'no forged event');

    // Legitimate wills still work, and so does the agent's own shutdown.
    const mortal = await SimAgent.connect({ url: b.url, id: MORTAL, session: Date.now(), username: MORTAL.memberId, password: pw(MORTAL), protocolVersion: b.protocolVersion });
    await waitFor('mortal ONLINE', () => b.tracker.rows().find((r) => r.memberId === MORTAL.memberId)?.state === 'ONLINE', 5_000);
    mortal.kill();
    await waitFor('mortal OFFLINE by its will', () => b.tracker.rows().find((r) => r.memberId === MORTAL.memberId)?.state === 'OFFLINE', 10_000);
    await reporter.stop();
    await live.waitFor('victim offline on its own shutdown', (m) => m.topic === t(VICTIM, 'status') && m.json?.cause === 'shutdown');
    await waitFor('victim OFFLINE in the fleet', () => b.tracker.rows().find((r) => r.memberId === VICTIM.memberId)?.state === 'OFFLINE', 5_000);
  } finally {
    await reporter.stop({ readyToShutdown: false, timeoutMs: 500 });
    for (const a of agents) await a.end().catch(() => undefined);
    await live.close();
  }
}

describe('fleet members cannot impersonate or evict each other', { timeout: 90_000 }, () => {
  it('embedded broker (serve --mqtt-auth)', async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'ctl-identity-'));
    const running = await startController({ stateDir, http: { host: '127.0.0.1', port: 0 }, broker: { kind: 'embedded', host: '127.0.0.1', port: 0, auth: true }, topicPrefix: PREFIX, log: silentLogger() });
    try {
      await registerAll(running.store);
      const observerLogin = { username: CONTROLLER_MQTT_USER, password: running.keys.adminToken, clientId: 'observer' };
      await scenario({ url: running.info.brokerUrl, protocolVersion: 4, tracker: running.tracker, observerLogin, stratosEvents: true, checksStratosBodies: true });
    } finally {
      await running.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('mosquitto with the generated config (Stratos events allowed)', async (tc) => {
    if (!requireCommands(tc, 'mosquitto')) return;
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'ctl-identity-'));
    const keys = await ControllerKeys.loadOrCreate(stateDir);
    const store = new MemberStore(stateDir, keys.tokenSecret);
    await registerAll(store);
    // The config as an operator makes it: `cartridge-controller mosquitto-config`, through the CLI.
    const broker = await Mosquitto.start({
      users: {},
      config: async (dir, port) => {
        writeFileSync(path.join(dir, 'ctl-pw'), 'ctl-pw\n');
        let out = '';
        let err = '';
        const io = { out: (x: string) => void (out += x), err: (x: string) => void (err += x), waitForStop: () => new Promise<string>(() => undefined) };
        const code = await main(['mosquitto-config', '--state', stateDir, '--out', dir, '--listen', `127.0.0.1:${port}`, '--controller-user', 'ctl-1', '--controller-user', 'observer',
          '--controller-password-file', path.join(dir, 'ctl-pw'), '--topic-prefix', PREFIX, '--stratos-events'], io);
        assert.equal(code, 0, err);
        assert.equal(err, '', 'no member left out');
        assert.match(out, /3 member\(s\): php\.cms\.mb, php\.shop\.ma, php\.shop\.mc/);
        const acl = readFileSync(path.join(dir, 'acl'), 'utf8');
        assert.match(acl, /^topic write cartridge\/v1\/php%2Eshop\/php%2Eshop%2Ema\/status$/m, 'exact encoded topics per member');
        return [readFileSync(path.join(dir, 'cartridge-mosquitto.conf'), 'utf8')];
      },
    });
    const tracker = new FleetTracker({ brokerUrl: broker.url, username: 'ctl-1', password: 'ctl-pw', topicPrefix: PREFIX, shareGroup: 'ctl', log: silentLogger() });
    try {
      await tracker.start();
      await scenario({ url: broker.url, protocolVersion: 5, tracker, observerLogin: { username: 'observer', password: 'ctl-pw' }, stratosEvents: true, checksStratosBodies: false });
    } catch (err) {
      throw new Error(`${(err as Error).message}\nmosquitto log:\n${broker.log.split('\n').slice(-60).join('\n')}`);
    } finally {
      await tracker.stop();
      await broker.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
