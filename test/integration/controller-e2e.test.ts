/**
 * Controller and agent together on one machine: `cartridge-controller serve` (embedded broker)
 * and `register` through the CLI, then the BUILT agent bundle runs `once --root` with the
 * personality content register printed and payload.publicKey = the controller's key.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BUNDLE, makeImageRoot, runAgent } from '../../scripts/lib/fake-instance';
import { main, type CliIo } from '../../controller-stub/src/cli';
import { readServeInfo } from '../../controller-stub/src/serve';
import { startServeProcess, type ServeProcess } from '../fixtures/controller/serve-process';

const PAYLOAD = 'APPLICATION_ID=shop,SERVICE_NAME=php,CLUSTER_ID=php.shop,MEMBER_ID=php.member-1,PORTS=80|443,DB_PASSWORD=s3cr3t,DB_URL=mysql://db:3306/shop?ssl=true\n';
let dir: string;
let serve: ChildProcess;
let serveProcess: ServeProcess;

/** Run the CLI in this process; serve runs as a real child process. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), waitForStop: () => new Promise(() => undefined) };
  const code = await main(args, io);
  return { code, out, err };
}

before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  dir = mkdtempSync(path.join(tmpdir(), 'controller-e2e-'));
  writeFileSync(path.join(dir, 'payload.txt'), PAYLOAD);
  serveProcess = await startServeProcess(path.join(dir, 'state'));
  serve = serveProcess.child;
});
after(() => {
  if (serve.exitCode === null) serve.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('e2e: register → agent once fetches the signed payload and exports it; tampered key refused', async () => {
  const state = path.join(dir, 'state');
  const reg = await cli(['register', '--state', state, '--cluster', 'php.shop', '--member', 'php.member-1', '--payload-file', path.join(dir, 'payload.txt'), '--json']);
  assert.equal(reg.code, 0, reg.err);
  const printed = JSON.parse(reg.out) as { personality: string; publicKey: string; payloadUrl: string; userData: { plain: string; mime: string } };
  assert.equal(printed.publicKey, /public key: (\S+)/.exec(serveProcess.out())?.[1], 'register prints the key serve signs with');
  assert.ok(printed.payloadUrl.startsWith(readServeInfo(state)?.publicUrl ?? '!'), 'the URL points at the running serve');

  const image = makeImageRoot(null, { payload: { publicKey: printed.publicKey } });
  try {
    writeFileSync(image.at('/etc/cartridge-agent/payload-url'), printed.personality);
    const r = await runAgent(['once', '--root', image.root, '--json']);
    assert.equal(r.code, 0, r.err);
    const summary = JSON.parse(r.out);
    assert.equal(summary.via, 'fetched');
    const vars = JSON.parse(readFileSync(image.at('/run/cartridge-agent/payload.json'), 'utf8'));
    assert.equal(vars.DB_URL, 'mysql://db:3306/shop?ssl=true');
    assert.equal(vars.PORTS, '80|443');
    assert.equal(vars.MEMBER_ID, 'php.member-1');
    assert.doesNotMatch(r.err + r.out, /s3cr3t/);
  } finally {
    image.remove();
  }

  // The same payload, but the image trusts another key: the agent must refuse the signature.
  const other = makeImageRoot(null, { payload: { publicKey: Buffer.alloc(32, 9).toString('base64'), fetch: { deadlineSeconds: 1 } } });
  try {
    writeFileSync(other.at('/etc/cartridge-agent/payload-url'), printed.personality);
    const r = await runAgent(['once', '--root', other.root]);
    assert.equal(r.code, 6, r.err);
    assert.match(r.err, /X-Cartridge-Signature that does not verify with payload\.publicKey/);
    assert.equal(existsSync(other.at('/run/cartridge-agent/payload.json')), false, 'nothing exported');
  } finally {
    other.remove();
  }
});

test('e2e: fleet and terminate through the CLI; the agent is refused afterwards; serve stops on SIGTERM', async () => {
  const state = path.join(dir, 'state');
  const table = await cli(['fleet', '--state', state]);
  assert.equal(table.code, 0, table.err);
  assert.match(table.out, /^php\.shop\s+php\.member-1\s+(UNKNOWN|ONLINE)\s/m);
  const json = await cli(['fleet', '--state', state, '--json']);
  assert.equal(JSON.parse(json.out).members[0].memberId, 'php.member-1');

  const reg = JSON.parse((await cli(['register', '--state', state, '--cluster', 'php.shop', '--member', 'php.member-1', '--payload-file', path.join(dir, 'payload.txt'), '--json'])).out);
  const term = await cli(['terminate', '--state', state, '--cluster', 'php.shop', '--member', 'php.member-1']);
  assert.equal(term.code, 0, term.err);
  assert.match(term.out, /token revoked, retained topics cleared/);
  assert.equal((await cli(['terminate', '--state', state, '--cluster', 'php.shop', '--member', 'nobody'])).code, 6);
  assert.match((await cli(['fleet', '--state', state])).out, /php\.member-1\s+GONE/);

  const image = makeImageRoot(null, { payload: { publicKey: reg.publicKey, fetch: { deadlineSeconds: 1 } } });
  try {
    writeFileSync(image.at('/etc/cartridge-agent/payload-url'), reg.personality);
    const r = await runAgent(['once', '--root', image.root]);
    assert.equal(r.code, 5, r.err);
    assert.match(r.err, /403/);
  } finally {
    image.remove();
  }

  const exited = new Promise<number | null>((resolve) => serve.once('exit', (code) => resolve(code)));
  serve.kill('SIGTERM');
  assert.equal(await exited, 0, serveProcess.err());
  assert.equal(readServeInfo(state), null, 'serve.json removed');
  const down = await cli(['fleet', '--state', state]);
  assert.equal(down.code, 5);
  assert.match(down.err, /no controller is serving from/);
});
