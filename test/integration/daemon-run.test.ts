/**
 * `cartridge-agent run` from the bundle, as systemd runs it: a real mosquitto (own config,
 * password file and ACL), a fake NOTIFY_SOCKET with WATCHDOG_USEC set, the app's ports opened
 * late by a real listener, a real hook. Checks from outside: READY=1 only after the exports
 * exist, the retained birth, started → activated events, health reports, `status`, SIGHUP
 * picking up a new payload, and SIGTERM → STOPPING=1, ready-to-shutdown, offline, exit 0.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { requireCommands } from '../helpers/env';
import { freePort, Mosquitto, MEMBER_ACL, PREFIX } from '../fixtures/health/mosquitto';
import { BUNDLE, makeImageRoot, runAgent, startPayloadServer, type ImageRoot } from '../../scripts/lib/fake-instance';
import { startNotifyListener } from '../fixtures/systemd/notify-listener';
import { encodeIdLevel } from '../../agent/src/protocol/mqtt';

const MEMBER = 'php.member-1';
const CLUSTER = 'php.shop';

interface Seen {
  topic: string;
  body: Record<string, unknown>;
  retain: boolean;
}

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const v = fn();
      if (v) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 50);
    };
    poll();
  });
}

test('run: READY after exports, birth, events, health, status, SIGHUP reload, clean SIGTERM', async (t) => {
  if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd', 'python3', 'systemd-notify')) return;
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);

  const broker = await Mosquitto.start({ users: { admin: 'admin-pw', [MEMBER]: 'member-pw' }, acl: MEMBER_ACL });
  cleanups.push(() => broker.close());
  const appPort = await freePort();
  const payload = (extra = '') =>
    `SERVICE_NAME=php,CLUSTER_ID=${CLUSTER},MEMBER_ID=${MEMBER},PORTS=${appPort},MB_URLS=tcp://127.0.0.1:${broker.port},MB_USERNAME=${MEMBER},MB_PASSWORD=member-pw${extra}`;
  const controller = await startPayloadServer(payload());
  cleanups.push(() => controller.close());
  const image: ImageRoot = makeImageRoot(controller.url, {
    health: { intervalSeconds: 1, keepaliveSeconds: 5 },
    readiness: { intervalMs: 100, timeoutSeconds: 30 },
  });
  cleanups.push(() => image.remove());
  // A hook that records it ran, with the payload in its environment.
  const hookDir = image.at('/etc/cartridge-agent/hooks/activated.d');
  mkdirSync(hookDir, { recursive: true });
  writeFileSync(path.join(hookDir, '10-record'), `#!/bin/sh\nprintf '%s' "$SERVICE_NAME" > "${image.at('/hook-ran')}"\n`);
  chmodSync(path.join(hookDir, '10-record'), 0o755);

  // Observer with its own credentials: everything the member publishes.
  const seen: Seen[] = [];
  const observer = mqtt.connect(broker.url, { username: 'admin', password: 'admin-pw', protocolVersion: 5 });
  cleanups.push(() => observer.end(true));
  await new Promise<void>((resolve, reject) => {
    observer.once('connect', () => observer.subscribe(`${PREFIX}/#`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
    observer.once('error', reject);
  });
  observer.on('message', (topic, msg, packet) => {
    if (msg.length) seen.push({ topic, body: JSON.parse(msg.toString()) as Record<string, unknown>, retain: packet.retain });
  });

  // Fake systemd notify socket.
  const sockDir = mkdtempSync(path.join(tmpdir(), 'ca-notify-'));
  cleanups.push(() => rmSync(sockDir, { recursive: true, force: true }));
  const notifySocket = path.join(sockDir, 'notify');
  const notes: string[] = [];
  let exportsAtReady: boolean | null = null;
  const listener = await startNotifyListener(notifySocket, ({ msg }) => {
    notes.push(msg);
    if (msg.includes('READY=1') && exportsAtReady === null) exportsAtReady = existsSync(image.at('/run/cartridge-agent/payload.env'));
  });
  cleanups.push(() => listener.stop());

  const agent: ChildProcess = spawn(process.execPath, [BUNDLE, 'run', '--root', image.root, '--log-level', 'warn'], {
    env: { ...process.env, NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: '2000000' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let agentErr = '';
  agent.stderr?.on('data', (d: Buffer) => (agentErr += d.toString()));
  const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
  cleanups.push(() => agent.kill('SIGKILL'));

  // Dotted Stratos ids travel encoded (docs/daemon.md "Ids on the wire").
  const base = `${PREFIX}/${encodeIdLevel(CLUSTER)}/${encodeIdLevel(MEMBER)}`;
  assert.equal(base, `${PREFIX}/php%2Eshop/php%2Emember-1`);
  await waitFor('READY=1', () => notes.some((n) => n.includes('READY=1')));
  assert.equal(exportsAtReady, true, 'READY=1 must come after the exports are written');
  const birth = await waitFor('retained birth', () => seen.find((m) => m.topic === `${base}/status` && m.body.state === 'online'));
  await waitFor('started event', () => seen.find((m) => m.topic === `${base}/event` && m.body.type === 'started'));

  // The app comes up late: activated only then, and its hook runs with the payload.
  assert.ok(!seen.some((m) => m.body.type === 'activated'), 'activated before the app port answered');
  const app = net.createServer((s) => s.destroy()).listen(appPort, '127.0.0.1');
  cleanups.push(() => app.close());
  await waitFor('activated event', () => seen.find((m) => m.topic === `${base}/event` && m.body.type === 'activated'));
  await waitFor('activated hook', () => existsSync(image.at('/hook-ran')));
  assert.equal(readFileSync(image.at('/hook-ran'), 'utf8'), 'php');

  const firstHealth = await waitFor('health report', () => seen.find((m) => m.topic === `${base}/health`));
  assert.equal(firstHealth.body.session, birth.body.session);
  await waitFor('two watchdog pings', () => notes.filter((n) => n.includes('WATCHDOG=1')).length >= 2);

  const status = await runAgent(['status', '--root', image.root, '--json']);
  assert.equal(status.code, 0, status.err);
  const st = JSON.parse(status.out);
  assert.equal(st.running, true);
  assert.equal(st.app, 'activated');
  assert.equal(st.broker.connected, true);
  assert.equal(st.source.name, 'personality');

  // SIGHUP: a new payload is fetched and reported (its digest changes in health reports).
  const oldDigest = firstHealth.body.payloadDigest;
  await controller.close();
  const controller2 = await startPayloadServer(payload(',EXTRA=1'));
  cleanups.push(() => controller2.close());
  writeFileSync(image.at('/etc/cartridge-agent/payload-url'), controller2.url + '\n');
  agent.kill('SIGHUP');
  await waitFor('health with the new payload', () => seen.find((m) => m.topic === `${base}/health` && m.body.payloadDigest !== oldDigest));
  assert.match(readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8'), /^EXTRA="1"$/m);

  // SIGTERM: STOPPING=1, ready-to-shutdown, retained offline (shutdown) for this session, exit 0.
  agent.kill('SIGTERM');
  assert.equal(await exited, 0, agentErr);
  await waitFor('offline', () => seen.find((m) => m.topic === `${base}/status` && m.body.state === 'offline'));
  const offline = seen.filter((m) => m.topic === `${base}/status` && m.body.state === 'offline').pop() as Seen;
  assert.equal(offline.body.cause, 'shutdown');
  const rts = seen.findIndex((m) => m.body.type === 'ready-to-shutdown');
  assert.ok(rts >= 0 && rts < seen.indexOf(offline), 'ready-to-shutdown must precede offline');
  await waitFor('STOPPING=1', () => notes.some((n) => n.includes('STOPPING=1')));
  const order = ['READY=1', 'WATCHDOG=1', 'STOPPING=1'].map((k) => notes.findIndex((n) => n.includes(k)));
  assert.deepEqual([...order].sort((a, b) => a - b), order, `notify order: ${notes.join(' | ')}`);
  assert.doesNotMatch(agentErr, /member-pw/, 'the broker password reached the log');
});
