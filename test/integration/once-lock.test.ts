/**
 * The run lock with the real bundle: concurrent `once` runs on one root are serialized (never
 * one deleting the other's staged files), `once` beside a running daemon is refused naming it,
 * a lock left by a killed run is taken over, and stale temp files in every directory the agent
 * writes (the cache too) are removed by the next run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { bootId, encodeHolder, processStartTime } from '../../agent/src/io/run-lock';
import { renderEnvFile } from '../../agent/src/export/render';
import { BUNDLE, makeImageRoot, runAgent, startPayloadServer, type ImageRoot, type PayloadServer } from '../../scripts/lib/fake-instance';
import { waitFor } from '../helpers/wait';

const PAIRS = 12;
/** Big enough that staging and committing take a while, so two runs overlap. */
function payload(version: string): string {
  return Array.from({ length: 1500 }, (_, i) => `KEY_${i}=${version}-${i}-${'x'.repeat(100)}`).join('\n') + '\n';
}

let servers: PayloadServer[];
let image: ImageRoot;
before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  servers = await Promise.all(['a', 'b'].map((v) => startPayloadServer(payload(v))));
  image = makeImageRoot(servers[0]!.url, { payload: { maxBytes: 4 * 1024 * 1024 } });
});
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  image.remove();
});

const once = () => runAgent(['once', '--root', image.root, '--log-level', 'warn'], { timeoutMs: 60_000 });
const pointTo = (server: PayloadServer) => writeFileSync(image.at('/etc/cartridge-agent/payload-url'), `${server.url}\n`);

test(`${PAIRS} pairs of concurrent once on one root: both succeed, one after the other`, async () => {
  const complete = ['a', 'b'].map((v) => renderEnvFile(new Map(payload(v).trim().split('\n').map((l) => l.split('=', 2) as [string, string]))));
  for (let i = 0; i < PAIRS; i++) {
    pointTo(servers[i % 2]!);
    const [r1, r2] = await Promise.all([once(), once()]);
    assert.equal(r1.code, 0, `pair ${i}, first: ${r1.err}`);
    assert.equal(r2.code, 0, `pair ${i}, second: ${r2.err}`);
    const env = readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8');
    assert.equal(env, complete[i % 2], `pair ${i}: payload.env is the complete payload it pointed to`);
    assert.deepEqual(readdirSync(image.at('/run/cartridge-agent')).filter((n) => n.includes('.tmp-')), []);
  }
});

test('once beside a running daemon is refused (exit 10) naming it, and changes nothing', async () => {
  pointTo(servers[0]!);
  assert.equal((await once()).code, 0);
  const before = readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8');
  pointTo(servers[1]!);
  const daemon = spawn(process.execPath, [BUNDLE, 'run', '--root', image.root, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const statusFile = image.at('/run/cartridge-agent/status.json');
    const booted = () => existsSync(statusFile) && (JSON.parse(readFileSync(statusFile, 'utf8')) as { payload: unknown }).payload !== null;
    await waitFor('the daemon to finish its boot work', booted, 30_000);
    const refusedAt = readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8');
    pointTo(servers[0]!);
    const r = await once();
    assert.equal(r.code, 10, r.err);
    assert.match(r.err, new RegExp(`cartridge-agent run \\(pid ${daemon.pid}, since [0-9TZ:-]+\\) is running on this root \\(lock .*run\\.lock\\).*reload it`));
    assert.equal(readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8'), refusedAt, 'the refused once wrote nothing');
    assert.notEqual(refusedAt, before, 'the daemon exported the payload it pointed to');
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon.once('exit', resolve));
  }
  assert.equal(existsSync(image.at('/var/lib/cartridge-agent/run.lock')), false, 'the daemon released its lock on SIGTERM');
});

test('a lock left by a run that was killed is taken over; stale temp files everywhere are removed', async () => {
  pointTo(servers[0]!);
  const dead = spawn('true');
  const pid = dead.pid as number;
  const startTime = processStartTime(pid) ?? '1';
  await new Promise((resolve) => dead.once('exit', resolve));
  const state = image.at('/var/lib/cartridge-agent');
  mkdirSync(`${state}/cache`, { recursive: true });
  symlinkSync(encodeHolder({ pid, startTime, boot: bootId(), command: 'once' }), `${state}/run.lock`);
  const stale = [
    `${state}/cache/.0123456789abcdef0123456789abcdef.payload.json.tmp-0123456789ab`,
    `${state}/.firewall.json.tmp-00112233aabb`,
    image.at('/run/cartridge-agent/.payload.env.tmp-ffeeddccbbaa'),
    image.at('/etc/profile.d/.cartridge-agent.sh.tmp-0a0b0c0d0e0f'),
  ];
  const foreign = image.at('/etc/profile.d/.other-tool.sh.tmp-0a0b0c0d0e0f');
  for (const f of [...stale, foreign]) writeFileSync(f, 'SECRET=left behind by kill -9\n', { mode: 0o600 });
  const r = await once();
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /removed 4 staged temp file\(s\) left by an earlier run that was killed/);
  for (const f of stale) assert.equal(existsSync(f), false, `${f} removed`);
  assert.equal(existsSync(foreign), true, "another tool's temp file in a shared directory is left alone");
  assert.equal(existsSync(`${state}/run.lock`), false, 'released at exit');
});
