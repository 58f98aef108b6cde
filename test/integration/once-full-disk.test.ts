/**
 * One boot, one outcome, on a real full disk: the state dir is a small tmpfs filled to the
 * last block. `once` (the bundle, in an "instance" network namespace, fetching from a
 * controller stand-in in a "client" namespace) must then fail with exit 7 naming the stage and
 * the path — and leave in force exactly what was there before: the previous exports, cache
 * entry and rules, or on a first boot the baseline the early unit put in force. Checked with
 * real packets over IPv4 and IPv6, on nft, iptables-nft and iptables-legacy.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { requireCommands, requireRoot } from '../helpers/env';
import { NetnsPair, targets, type ProbeOutcome } from '../helpers/netns';
import { BUNDLE, makeImageRoot, runCommand, type ImageRoot } from '../../scripts/lib/fake-instance';

const CONTROLLER_PORT = 8000;
const PORTS = [22, 80, 9000];
const BODY_FILE_ARG = 1;
/** Serves the current content of a file, so a test can change the payload between boots. */
const CONTROLLER = `
const http = require('http'), fs = require('fs');
http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(fs.readFileSync(process.argv[${BODY_FILE_ARG}])))
  .listen(${CONTROLLER_PORT}, '::', () => console.log('ready'));
`;

const BACKENDS = [
  { backend: 'nft', tools: ['nft'] },
  { backend: 'iptables-nft', tools: ['iptables-nft', 'ip6tables-nft', 'iptables-nft-restore', 'ip6tables-nft-restore'] },
  { backend: 'iptables-legacy', tools: ['iptables-legacy', 'ip6tables-legacy', 'iptables-legacy-restore', 'ip6tables-legacy-restore'] },
] as const;

const expect = (open: number[]): Record<string, ProbeOutcome> =>
  Object.fromEntries(targets('tcp', PORTS).map((t) => [`tcp/${t.port} ${t.family}`, open.includes(t.port) ? 'open' : 'timeout']));

let pair: NetnsPair | undefined;
let controller: ChildProcess | undefined;
let bodyFile: string;

before(async () => {
  if (process.getuid?.() !== 0) return;
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  pair = NetnsPair.create();
  await pair.listen(PORTS);
  bodyFile = path.join(pair.instance.replace(/^/, '/tmp/'), 'body');
  mkdirSync(path.dirname(bodyFile), { recursive: true });
  writeFileSync(bodyFile, 'SERVICE_NAME=php,PORTS=80');
  controller = spawn('ip', ['netns', 'exec', pair.client, process.execPath, '-e', CONTROLLER, bodyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    controller?.stdout?.once('data', () => resolve());
    controller?.once('exit', (code) => reject(new Error(`controller exited (${code})`)));
  });
});

after(() => {
  controller?.kill('SIGKILL');
  pair?.destroy();
  if (bodyFile) rmSync(path.dirname(bodyFile), { recursive: true, force: true });
});

/** A tmpfs for the state dir, and a way to fill it to the last block and to free it again. */
function mountSmallStateDir(image: ImageRoot) {
  const dir = image.at('/var/lib/cartridge-agent');
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir]);
  assert.equal(r.status, 0, `mount tmpfs: ${r.stderr}`);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(4096, 120);
      try {
        for (let i = 0; i < 1000; i++) writeSync(fd, chunk);
        assert.fail('the tmpfs did not fill up');
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        closeSync(fd);
      }
    },
    free: () => rmSync(filler, { force: true }),
    unmount: () => spawnSync('umount', ['-l', dir]),
  };
}

function canRun(t: TestContext, tools: readonly string[]): boolean {
  return requireRoot(t) && requireCommands(t, 'ip', 'mount', ...tools);
}

for (const b of BACKENDS) {
  test(`${b.backend}: a full state dir never leaves the host more open than its last good state`, async (t) => {
    if (!canRun(t, b.tools)) return;
    const p = pair as NetnsPair;
    const image = makeImageRoot(`http://${p.clientV4}:${CONTROLLER_PORT}/payload/php.member-1?token=t`, {
      firewall: { mode: 'enforce', backend: b.backend },
      // The exports live in /run and /etc (not full); the cache is the first write to the full disk.
      export: { launchParamsFile: null },
    });
    const disk = mountSmallStateDir(image);
    const agent = (...args: string[]) =>
      runCommand('ip', ['netns', 'exec', p.instance, process.execPath, BUNDLE, ...args, '--root', image.root, '--log-level', 'warn']);
    const envFile = image.at('/run/cartridge-agent/payload.env');
    const noTemps = () => {
      for (const dir of [disk.dir, `${disk.dir}/cache`, image.at('/run/cartridge-agent'), image.at('/etc/profile.d')]) {
        if (existsSync(dir)) assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], `temp files in ${dir}`);
      }
    };
    try {
      // First boot, state dir full: the early unit's baseline is in force, the boot work fails.
      writeFileSync(bodyFile, 'SERVICE_NAME=php,PORTS=80');
      disk.fill();
      const restore = await agent('firewall', 'restore');
      assert.equal(restore.code, 0, restore.err);
      const first = await agent('once');
      assert.equal(first.code, 7, first.err);
      assert.match(first.err, new RegExp(`cartridge-agent: cache: cannot write ${disk.dir}/cache/[0-9a-f]{32}\\.payload\\.json: .*ENOSPC`));
      assert.equal(existsSync(envFile), false, 'no exports from a boot that failed');
      assert.deepEqual(await p.probe(targets('tcp', PORTS)), expect([22]), 'first boot failed: the baseline (SSH) only, never an open host');
      noTemps();

      // Space again: the payload's allowlist replaces the baseline.
      disk.free();
      const good = await agent('once');
      assert.equal(good.code, 0, good.err);
      assert.deepEqual(await p.probe(targets('tcp', PORTS)), expect([22, 80]));
      const goodEnv = readFileSync(envFile, 'utf8');
      const goodRecord = readFileSync(`${disk.dir}/firewall.json`, 'utf8');
      const cacheDir = `${disk.dir}/cache`;
      const goodCache = readdirSync(cacheDir).map((n) => readFileSync(`${cacheDir}/${n}`, 'utf8'));

      // A new payload while the disk is full: nothing of it is in force.
      writeFileSync(bodyFile, 'SERVICE_NAME=php,PORTS=9000');
      disk.fill();
      const full = await agent('once');
      assert.equal(full.code, 7, full.err);
      assert.match(full.err, /cartridge-agent: cache: cannot write .*ENOSPC/);
      assert.equal(readFileSync(envFile, 'utf8'), goodEnv, 'the previous exports are in force');
      assert.equal(readFileSync(`${disk.dir}/firewall.json`, 'utf8'), goodRecord, 'the previous firewall record');
      assert.deepEqual(readdirSync(cacheDir).map((n) => readFileSync(`${cacheDir}/${n}`, 'utf8')), goodCache, 'the previous cache entry');
      assert.deepEqual(await p.probe(targets('tcp', PORTS)), expect([22, 80]), 'the previous rules are in force, the new port is not open');
      noTemps();

      disk.free();
      const next = await agent('once');
      assert.equal(next.code, 0, next.err);
      assert.deepEqual(await p.probe(targets('tcp', PORTS)), expect([22, 9000]));
    } finally {
      await agent('firewall', 'remove');
      disk.unmount();
      image.remove();
    }
  });
}
