/**
 * Each command of the bundle evaluates only the modules it uses (docs/daemon.md "Start-up"):
 * `version`/`help` no library at all, `env` and `firewall` no HTTP and no MQTT stack, `once`
 * with a fetched payload the HTTP stack but no MQTT, and `run` the MQTT stack only after it
 * has sent READY=1. Seen from inside the real bundle by test/fixtures/bundle/load-probe.cjs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { requireCommands } from '../helpers/env';
import { freePort } from '../fixtures/health/mosquitto';
import { startNotifyListener } from '../fixtures/systemd/notify-listener';
import { BUNDLE, makeImageRoot, runCommand, SAMPLE_PAYLOAD, startPayloadServer, type ImageRoot } from '../../scripts/lib/fake-instance';

const PROBE = path.resolve('test/fixtures/bundle/load-probe.cjs');
const scratch = mkdtempSync(path.join(tmpdir(), 'ca-lazy-load-'));
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(scratch, { recursive: true, force: true });
});

let n = 0;
function probeFile(): string {
  return path.join(scratch, `probe-${++n}.txt`);
}
function readProbe(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** The bundle's libraries by package name, in the order first evaluated. */
function libraries(lines: string[]): string[] {
  const names = lines
    .filter((l) => l.startsWith('module node_modules/'))
    .map((l) => l.slice('module node_modules/'.length).split('/'))
    .map((parts) => (parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] as string)));
  return [...new Set(names)];
}

const HTTP_STACK = ['axios', 'follow-redirects', 'proxy-from-env'];
const MQTT_STACK = ['mqtt', 'mqtt-packet', 'readable-stream'];
const LOGGING = ['pino', 'sonic-boom'];

async function probe(args: string[], env: NodeJS.ProcessEnv = {}) {
  const file = probeFile();
  const r = await runCommand(process.execPath, ['--require', PROBE, BUNDLE, ...args], 30_000, { ...process.env, ...env, CARTRIDGE_LOAD_PROBE: file });
  const lines = readProbe(file);
  // The probe must see the bundle's own modules, or every "not loaded" below would be vacuous.
  assert.ok(lines.some((l) => l.startsWith('module ')), `the probe saw no module of the bundle evaluated (${args.join(' ')}): ${r.err}`);
  return { ...r, lines, libs: libraries(lines) };
}

function assertNone(libs: string[], forbidden: string[], what: string): void {
  const loaded = forbidden.filter((f) => libs.includes(f));
  assert.deepEqual(loaded, [], `${what} evaluated ${loaded.join(', ')} (all libraries: ${libs.join(', ')})`);
}

function imageWithExports(): ImageRoot {
  const image = makeImageRoot(null);
  cleanups.push(() => image.remove());
  mkdirSync(image.at('/run/cartridge-agent'), { recursive: true });
  writeFileSync(image.at('/run/cartridge-agent/payload.json'), JSON.stringify({ SERVICE_NAME: 'php', PORTS: '8080' }));
  return image;
}

test('version and help evaluate no library', async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build'`);
  for (const args of [['version'], ['help'], ['once', '--help']]) {
    const r = await probe(args);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.libs, [], `${args.join(' ')} evaluated libraries`);
  }
});

test('env, firewall plan and firewall restore: logging, but neither the HTTP nor the MQTT stack', async () => {
  const image = imageWithExports();
  for (const args of [['env'], ['firewall', 'plan'], ['firewall', 'restore']]) {
    const r = await probe([...args, '--root', image.root]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    for (const lib of LOGGING) assert.ok(r.libs.includes(lib), `${args.join(' ')} should log with ${lib}: ${r.libs.join(', ')}`);
    assertNone(r.libs, [...HTTP_STACK, ...MQTT_STACK], args.join(' '));
  }
});

test('discover with only the personality file: no HTTP stack', async () => {
  const image = makeImageRoot('http://127.0.0.1:9/payload/x');
  cleanups.push(() => image.remove());
  const r = await probe(['discover', '--root', image.root]);
  assert.equal(r.code, 0, r.err);
  assertNone(r.libs, [...HTTP_STACK, ...MQTT_STACK], 'discover');
});

test('once with a fetched payload: the HTTP stack, not the MQTT stack', async () => {
  const server = await startPayloadServer(SAMPLE_PAYLOAD);
  cleanups.push(() => server.close());
  const image = makeImageRoot(server.url);
  cleanups.push(() => image.remove());
  const r = await probe(['once', '--root', image.root, '--log-level', 'warn']);
  assert.equal(r.code, 0, r.err);
  for (const lib of HTTP_STACK.slice(0, 2)) assert.ok(r.libs.includes(lib), `once should fetch with ${lib}: ${r.libs.join(', ')}`);
  assertNone(r.libs, MQTT_STACK, 'once');
});

test('run evaluates the MQTT stack only after it has sent READY=1, which carries its STATUS= in one run', async (t) => {
  if (!requireCommands(t, 'python3', 'systemd-notify')) return;
  const brokerPort = await freePort(); // nothing listens: the reporter is created, and keeps retrying
  const server = await startPayloadServer(`SERVICE_NAME=php,MEMBER_ID=php.member-1,MB_URLS=tcp://127.0.0.1:${brokerPort}`);
  cleanups.push(() => server.close());
  const image = makeImageRoot(server.url, { readiness: { enabled: false } });
  cleanups.push(() => image.remove());
  const sockDir = mkdtempSync(path.join(scratch, 'notify-'));
  const listener = await startNotifyListener(path.join(sockDir, 'notify'));
  cleanups.push(() => listener.stop());

  const file = probeFile();
  const agent = spawn(process.execPath, ['--require', PROBE, BUNDLE, 'run', '--root', image.root, '--log-level', 'warn'], {
    env: { ...process.env, NOTIFY_SOCKET: listener.socket, CARTRIDGE_LOAD_PROBE: file },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  agent.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
  cleanups.push(() => agent.kill('SIGKILL'));

  const started = Date.now();
  while (!libraries(readProbe(file)).includes('mqtt')) {
    assert.ok(Date.now() - started < 15_000, `run never loaded mqtt (it must, for health reporting): ${stderr}`);
    assert.equal(agent.exitCode, null, `run exited early: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  agent.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);

  const lines = readProbe(file);
  const ready = lines.findIndex((l) => l.startsWith('exec systemd-notify') && l.includes('READY=1'));
  const firstMqtt = lines.findIndex((l) => /^module node_modules\/(mqtt|mqtt-packet|readable-stream)\//.test(l));
  assert.ok(ready >= 0, `run never sent READY=1: ${lines.filter((l) => l.startsWith('exec')).join('; ')}`);
  assert.ok(firstMqtt > ready, `the MQTT stack was evaluated before READY=1 was sent (${lines[firstMqtt]} at line ${firstMqtt}, READY=1 at ${ready})`);
  // READY=1 goes out with its STATUS= in one systemd-notify run, which is not repeated alone.
  const readyMsg = listener.messages.find((m) => m.msg.includes('READY=1'));
  const readyStatus = readyMsg?.msg.split('\n').find((a) => a.startsWith('STATUS=ready'));
  assert.ok(readyStatus, `READY=1 without its STATUS=: ${JSON.stringify(readyMsg)}`);
  assert.ok(!listener.messages.some((m) => m.msg === readyStatus), `the STATUS= of READY=1 was sent again on its own: ${readyStatus}`);
});
