/**
 * `cartridge-controller register` refuses, through the CLI, what every agent with the default
 * config would refuse at boot — bad PORTS / PORT_MAPPINGS / FIREWALL_ALLOW entries, values no
 * process environment can hold, too many keys — with exit 4 and the agent's own message, and
 * stores nothing. Payloads every agent accepts still register.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { main } from '../../controller-stub/src/cli';
import { MEMBERS_FILE } from '../../controller-stub/src/members';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'controller-register-'));
  dirs.push(d);
  return d;
}

async function register(dir: string, payload: string[] | { file: string }): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t), waitForStop: () => new Promise<string>(() => undefined) };
  const source = Array.isArray(payload) ? payload.flatMap((kv) => ['--set', kv]) : ['--payload-file', payload.file];
  const code = await main(['register', '--state', path.join(dir, 'state'), '--public-url', 'http://127.0.0.1:9', '--cluster', 'c1', '--member', 'm1', ...source], io);
  return { code, out, err };
}

function jsonFile(dir: string, vars: Record<string, string>): { file: string } {
  const file = path.join(dir, 'payload.json');
  writeFileSync(file, JSON.stringify({ CLUSTER_ID: 'c1', MEMBER_ID: 'm1', ...vars }));
  return { file };
}

const REFUSED: Array<[string, (dir: string) => string[] | { file: string }, RegExp]> = [
  ['PORTS=80|abc', () => ['PORTS=80|abc'], /payload PORTS entry 2 \("abc"\): "abc" is not a port number/],
  ['PORTS=70000', () => ['PORTS=70000'], /PORTS entry 1 .*out of range/],
  ['PORT_MAPPINGS without a numeric PORT', () => ['PORT_MAPPINGS=NAME:http|PROTOCOL:http|PORT:web'], /PORT_MAPPINGS entry 1/],
  ['PORT_MAPPINGS with an unknown protocol', () => ['PORT_MAPPINGS=NAME:x|PROTOCOL:sctp|PORT:80'], /PROTOCOL "sctp"/],
  ['FIREWALL_ALLOW with a bad source', () => ['FIREWALL_ALLOW=tcp/5432 from 300.0.0.0/8'], /FIREWALL_ALLOW entry 1/],
  ['FIREWALL_ALLOW with a reversed range', () => ['FIREWALL_ALLOW=tcp/90-80'], /reversed port range/],
  ['a value with a NUL byte', (d) => jsonFile(d, { SECRET: 'a\u0000b' }), /SECRET.*NUL byte/],
  ['a value with a Unicode noncharacter', (d) => jsonFile(d, { NOTE: 'x\uFFFE' }), /"NOTE" cannot be exported: .*noncharacter/],
  ['a value over the exec limit', (d) => jsonFile(d, { BIG: 'x'.repeat(140_000) }), /"BIG" cannot be exported: .*MAX_ARG_STRLEN/],
  ['more keys than payload.maxKeys', (d) => jsonFile(d, Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`K${i}`, '1']))), /10000|keys/],
  ['a refused name', () => ['LD_PRELOAD=/tmp/x.so'], /LD_PRELOAD/],
];

for (const [what, payload, why] of REFUSED) {
  test(`register refuses ${what} (exit 4, the agent's reason), storing nothing`, async () => {
    const dir = tempDir();
    const r = await register(dir, payload(dir));
    assert.equal(r.code, 4, `exit 4 for ${what}; stderr: ${r.err}`);
    assert.match(r.err, /the agent would refuse this payload: /);
    assert.match(r.err, why);
    assert.equal(existsSync(path.join(dir, 'state', MEMBERS_FILE)), false, 'nothing stored');
  });
}

test('register accepts what agents accept: ports, mappings, rich rules', async () => {
  const dir = tempDir();
  const r = await register(dir, ['PORTS=80|443', 'PORT_MAPPINGS=NAME:http|PROTOCOL:http|PORT:8080|PROXY_PORT:80', 'FIREWALL_ALLOW=tcp/5432 from 10.0.0.0/8,udp/5353']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Registered c1\/m1/);
});

test('the built-from-source CLI process says the same (bin.ts, exit status 4)', () => {
  const dir = tempDir();
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'controller-stub/src/bin.ts', 'register', '--state', path.join(dir, 'state'), '--public-url', 'http://127.0.0.1:9', '--cluster', 'c1', '--member', 'm1', '--set', 'PORTS=80|abc'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, /^cartridge-controller: the agent would refuse this payload: payload PORTS entry 2 \("abc"\)/m);
});
