/**
 * The bundle as a V8 startup snapshot (packaging/code-cache-loader.cjs, docs/packaging.md),
 * on each runtime, with the unit's node flags: `node --snapshot-blob F --build-snapshot
 * <bundle>` builds it (nothing of the agent runs then), and `node --snapshot-blob F ARGS…`
 * runs the agent as `node <bundle> ARGS…` does — `version`, `once`, and `run` end to end (a
 * real mosquitto, a fake NOTIFY_SOCKET: READY=1, the retained birth, SIGTERM → offline, exit
 * 0) — with no warning on stderr, and with the code cache a run without the snapshot wrote.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { memberTopics } from '../../agent/src/protocol/mqtt';
import { parseUnitDeployment } from '../../bench/lib/unit-file';
import { requireCommands, requireFile } from '../helpers/env';
import { agentRuntimes } from '../helpers/runtimes';
import { Mosquitto, MEMBER_ACL, PREFIX } from '../fixtures/health/mosquitto';
import { startNotifyListener } from '../fixtures/systemd/notify-listener';
import { BUNDLE, makeImageRoot, runCommand, startPayloadServer } from '../../scripts/lib/fake-instance';

const UNIT = 'packaging/systemd/cartridge-agent.service';
const FLAGS = parseUnitDeployment(readFileSync(UNIT, 'utf8'), UNIT).nodeFlags;
const MEMBER = 'php.member-1';
const CLUSTER = 'php.shop';
const scratch = mkdtempSync(path.join(tmpdir(), 'ca-snapshot-'));
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(scratch, { recursive: true, force: true });
});
const clean = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...extra });

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const runtime of agentRuntimes()) {
  describe(`startup snapshot on ${runtime.name}`, () => {
    const dir = path.join(scratch, runtime.name.replace(/\W+/g, '-'));
    const blob = path.join(dir, 'agent.blob');
    const cache = path.join(dir, 'cc');

    test('built from the bundle with the unit flags; version from it, quietly', async (t) => {
      if (!requireFile(t, runtime.node, runtime.missing ?? '')) return;
      assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build'`);
      mkdirSync(dir, { recursive: true });
      const build = await runCommand(runtime.node, [...FLAGS, '--snapshot-blob', blob, '--build-snapshot', BUNDLE], 120_000, clean());
      assert.equal(build.code, 0, build.err);
      assert.ok(statSync(blob).size > 0);
      const v = await runCommand(runtime.node, [...FLAGS, '--snapshot-blob', blob, 'version'], 30_000, clean());
      assert.equal(v.code, 0, v.err);
      assert.match(v.out, /^cartridge-agent \d+\.\d+\.\d+/);
      assert.equal(v.err, '');
    });

    test("once from it uses the code cache a start without the snapshot wrote, and rewrites nothing", async (t) => {
      if (!requireFile(t, runtime.node, runtime.missing ?? '') || !existsSync(blob)) return void assert.ok(!runtime.node, 'no snapshot built');
      const server = await startPayloadServer(`SERVICE_NAME=php,MEMBER_ID=${MEMBER},PORTS=8080`);
      cleanups.push(() => server.close());
      const image = makeImageRoot(server.url);
      cleanups.push(() => image.remove());
      const plain = await runCommand(runtime.node, [...FLAGS, BUNDLE, 'once', '--root', image.root], 30_000, clean({ CARTRIDGE_AGENT_CODE_CACHE: cache }));
      assert.equal(plain.code, 0, plain.err);
      const [file] = readdirSync(cache);
      assert.ok(file, 'no code cache written');
      const before = statSync(path.join(cache, file)).mtimeMs;
      rmSync(image.at('/run/cartridge-agent'), { recursive: true, force: true });
      const r = await runCommand(runtime.node, [...FLAGS, '--snapshot-blob', blob, 'once', '--root', image.root, '--log-level', 'warn'], 30_000, clean({ CARTRIDGE_AGENT_CODE_CACHE: cache }));
      assert.equal(r.code, 0, r.err);
      assert.equal(r.err, '');
      assert.match(readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8'), /^SERVICE_NAME="php"$/m);
      assert.deepEqual(readdirSync(cache), [file], 'the snapshot run keyed the cache differently');
      assert.equal(statSync(path.join(cache, file)).mtimeMs, before, 'V8 rejected the cache in the snapshot run');
    });

    test('run from it: READY=1, the retained birth, SIGTERM → offline and exit 0', async (t) => {
      if (!requireFile(t, runtime.node, runtime.missing ?? '') || !existsSync(blob)) return void assert.ok(!runtime.node, 'no snapshot built');
      if (!requireCommands(t, 'mosquitto', 'mosquitto_passwd', 'python3', 'systemd-notify')) return;
      const broker = await Mosquitto.start({ users: { admin: 'admin-pw', [MEMBER]: 'member-pw' }, acl: MEMBER_ACL });
      cleanups.push(() => broker.close());
      const server = await startPayloadServer(
        `SERVICE_NAME=php,CLUSTER_ID=${CLUSTER},MEMBER_ID=${MEMBER},MB_URLS=tcp://127.0.0.1:${broker.port},MB_USERNAME=${MEMBER},MB_PASSWORD=member-pw`,
      );
      cleanups.push(() => server.close());
      const image = makeImageRoot(server.url, { health: { intervalSeconds: 1 }, readiness: { enabled: false } });
      cleanups.push(() => image.remove());
      const seen: Array<{ topic: string; body: Record<string, unknown> }> = [];
      const observer = mqtt.connect(broker.url, { username: 'admin', password: 'admin-pw', protocolVersion: 5 });
      cleanups.push(() => observer.end(true));
      await new Promise<void>((resolve, reject) => {
        observer.once('connect', () => observer.subscribe(`${PREFIX}/#`, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
        observer.once('error', reject);
      });
      observer.on('message', (topic, msg) => {
        if (msg.length) seen.push({ topic, body: JSON.parse(msg.toString()) as Record<string, unknown> });
      });
      const listener = await startNotifyListener(path.join(mkdtempSync(path.join(scratch, 'notify-')), 'notify'));
      cleanups.push(() => listener.stop());

      const agent = spawn(runtime.node as string, [...FLAGS, '--snapshot-blob', blob, 'run', '--root', image.root, '--log-level', 'warn'], {
        env: clean({ NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '4000000', CARTRIDGE_AGENT_CODE_CACHE: cache }),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      agent.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
      cleanups.push(() => agent.kill('SIGKILL'));

      // The dotted Stratos ids travel encoded (docs/daemon.md, "Ids on the wire").
      const topics = memberTopics(PREFIX, { clusterId: CLUSTER, memberId: MEMBER });
      await until('READY=1', () => listener.messages.some((m) => m.msg.includes('READY=1')));
      await until('retained birth', () => seen.find((m) => m.topic === topics.status && m.body.state === 'online'));
      await until('a health report', () => seen.find((m) => m.topic === topics.health));
      agent.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      await until('offline', () => seen.find((m) => m.topic === topics.status && m.body.state === 'offline'));
      assert.ok(listener.messages.some((m) => m.msg.includes('STOPPING=1')));
      assert.doesNotMatch(stderr, /Warning|snapshot/i, 'the snapshot run printed warnings');
    });
  });
}
