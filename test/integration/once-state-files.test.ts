/**
 * The agent's own state files, damaged the ways a crash, a full disk or a careless edit leave
 * them: every command that reads one says which file is damaged and how, with its documented
 * exit code — never a TypeError from deep inside (e.g. "e.indexOf is not a function").
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { BUNDLE, makeImageRoot, runAgent, startPayloadServer, type ImageRoot, type PayloadServer } from '../../scripts/lib/fake-instance';

const DAMAGE: Array<[label: string, text: string]> = [
  ['torn', '{"A": "x", "B'],
  ['not an object', '["A", "B"]'],
  ['a string', '"A=x"'],
  ['wrong value type', '{"A": 1, "B": {"indexOf": 2}}'],
  ['empty', ''],
  ['not a variable name', '{"PORTS": "80", "lower-case": "x"}'],
];

let server: PayloadServer;
let image: ImageRoot;
before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  server = await startPayloadServer('SERVICE_NAME=php,PORTS=80|443');
  image = makeImageRoot(server.url);
});
after(async () => {
  await server.close();
  image.remove();
});

const agent = (...args: string[]) => runAgent([...args, '--root', image.root, '--log-level', 'silent']);
const noCrash = (err: string) => assert.doesNotMatch(err, /TypeError|internal error|at .*\.js:\d+/, err);

test('a damaged payload.json: env and firewall plan name the file (exit 11)', async () => {
  assert.equal((await agent('once')).code, 0);
  const file = image.at('/run/cartridge-agent/payload.json');
  for (const [label, text] of DAMAGE) {
    writeFileSync(file, text);
    for (const args of [['env'], ['firewall', 'plan']]) {
      const r = await agent(...args);
      assert.equal(r.code, 11, `${label}, ${args.join(' ')}: ${r.err}`);
      assert.ok(r.err.startsWith(`cartridge-agent: ${file}: the exported payload is damaged: `), `${label}: ${r.err}`);
      noCrash(r.err);
    }
  }
});

test('a damaged status.json: status names the file (exit 11)', async () => {
  const file = image.at('/run/cartridge-agent/status.json');
  for (const [label, text] of [...DAMAGE, ['pid is text', '{"v": 1, "pid": "1"}'] as [string, string]]) {
    writeFileSync(file, text);
    const r = await agent('status');
    assert.equal(r.code, 11, label);
    assert.ok(r.err.startsWith(`cartridge-agent: ${file}: the daemon status file is damaged: `), `${label}: ${r.err}`);
    noCrash(r.err);
  }
});

test('a damaged cache entry while the controller is down: exit 5 naming the entry, exports untouched', async () => {
  // Its own controller, stopped after the first boot (the pointer, hence the instance id, stays).
  const controller = await startPayloadServer('SERVICE_NAME=php,PORTS=80|443');
  const image = makeImageRoot(controller.url, { payload: { fetch: { deadlineSeconds: 1 } } });
  const agent = (...args: string[]) => runAgent([...args, '--root', image.root, '--log-level', 'silent']);
  assert.equal((await agent('once')).code, 0);
  await controller.close();
  const cacheDir = image.at('/var/lib/cartridge-agent/cache');
  const [entry] = readdirSync(cacheDir).filter((n) => n.endsWith('.payload.json'));
  assert.ok(entry, 'once cached the payload');
  const file = `${cacheDir}/${entry}`;
  const good = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const exported = readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8');
  const cases: Array<[string, string, RegExp]> = [
    ['torn', JSON.stringify(good).slice(0, 40), /not valid JSON/],
    ['bytes not text', JSON.stringify({ ...good, bytesBase64: 12 }), /field "bytesBase64" should be string, is 12/],
    ['origin an object', JSON.stringify({ ...good, origin: { indexOf: 1 } }), /field "origin" should be string/],
    ['bytes changed', JSON.stringify({ ...good, bytesBase64: Buffer.from('PORTS=1-65535').toString('base64') }), /its bytes have sha256 [0-9a-f]{64}, not the recorded/],
    ['another instance', JSON.stringify({ ...good, instanceId: 'someone-else' }), /it belongs to instance "someone-else"/],
  ];
  for (const [label, text, problem] of cases) {
    writeFileSync(file, text);
    const r = await agent('once');
    assert.equal(r.code, 5, `${label}: ${r.err}`);
    assert.match(r.err, new RegExp(`the cache cannot stand in: ${file.replace(/[.]/g, '\\.')}: the cached payload is damaged: `), label);
    assert.match(r.err, problem, label);
    noCrash(r.err);
    assert.equal(readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8'), exported, `${label}: exports untouched`);
  }
  writeFileSync(file, JSON.stringify(good));
  const fromCache = await agent('once');
  assert.equal(fromCache.code, 0, `the intact entry stands in: ${fromCache.err}`);
  image.remove();
});
