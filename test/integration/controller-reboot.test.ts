/**
 * Reboots against the real controller: `cartridge-controller serve` as a child process,
 * `register --single-use`, then the BUILT agent bundle runs `once --root` on one image root
 * again and again, as the same instance rebooting. The first boot spends the token and gets an
 * instance credential; later boots are admitted by the credential; a copy of the credential in
 * another instance, and the credential after terminate, are refused; when the controller has
 * lost the credential and answers "reused", the instance that spent the token uses its cache.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { main, type CliIo } from '../../controller-stub/src/cli';
import { MEMBERS_FILE } from '../../controller-stub/src/members';
import { readServeInfo } from '../../controller-stub/src/serve';
import { startServeProcess, type ServeProcess } from '../fixtures/controller/serve-process';
import { instanceIdFromUrl } from '../../agent/src/sources/personality';
import { BUNDLE, makeImageRoot, runAgent, type ImageRoot, type RunResult } from '../../scripts/lib/fake-instance';

const PAYLOAD = 'APPLICATION_ID=shop,SERVICE_NAME=php,CLUSTER_ID=php.shop,MEMBER_ID=php.member-1,PORTS=80|443,DB_PASSWORD=s3cr3t\n';
const CREDENTIAL = '/var/lib/cartridge-agent/credential.json';
let dir: string;
let state: string;
let serve: ChildProcess;
let serveProcess: ServeProcess;
let image: ImageRoot;
let pointer: string;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => void (out += t), err: (t) => void (err += t), waitForStop: () => new Promise(() => undefined) };
  return { code: await main(args, io), out, err };
}

const boot = (root: ImageRoot): Promise<RunResult> => runAgent(['once', '--root', root.root, '--json']);
const summary = (r: RunResult): { via: string } => JSON.parse(r.out) as { via: string };
const exported = (root: ImageRoot): Record<string, string> => JSON.parse(readFileSync(root.at('/run/cartridge-agent/payload.json'), 'utf8'));

before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  dir = mkdtempSync(path.join(tmpdir(), 'controller-reboot-'));
  state = path.join(dir, 'state');
  writeFileSync(path.join(dir, 'payload.txt'), PAYLOAD);
  serveProcess = await startServeProcess(state);
  serve = serveProcess.child;
  const reg = await cli(['register', '--state', state, '--cluster', 'php.shop', '--member', 'php.member-1', '--payload-file', path.join(dir, 'payload.txt'), '--single-use', '--json']);
  assert.equal(reg.code, 0, reg.err);
  const printed = JSON.parse(reg.out) as { personality: string; publicKey: string };
  pointer = printed.personality.trim();
  image = makeImageRoot(pointer, { payload: { publicKey: printed.publicKey } });
});
after(() => {
  if (serve.exitCode === null) serve.kill('SIGKILL');
  image?.remove();
  rmSync(dir, { recursive: true, force: true });
});

test('first boot spends the single-use token and stores the instance credential (0600, instance id, origin, no token)', async () => {
  const r = await boot(image);
  assert.equal(r.code, 0, r.err);
  assert.equal(summary(r).via, 'fetched');
  assert.equal(exported(image).DB_PASSWORD, 's3cr3t');
  const file = image.at(CREDENTIAL);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const stored = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(stored.instanceId, instanceIdFromUrl(pointer));
  assert.equal(stored.origin, new URL(readServeInfo(state)?.publicUrl ?? '').origin);
  assert.match(stored.credential, /^[A-Za-z0-9_-]{43}$/);
  const token = new URL(pointer).searchParams.get('token') as string;
  assert.equal(readFileSync(file, 'utf8').includes(token), false, 'the token is not kept');
  const members = readFileSync(path.join(state, MEMBERS_FILE), 'utf8');
  assert.equal(members.includes(stored.credential), false, 'the controller keeps only a hash');
  assert.notEqual(JSON.parse(members).members[0].token.usedAt, null, 'the token is spent');
});

test('reboot: the spent token is not enough, the credential admits this instance; the payload comes up', async () => {
  const r = await boot(image);
  assert.equal(r.code, 0, r.err);
  assert.equal(summary(r).via, 'fetched');
  assert.equal(exported(image).MEMBER_ID, 'php.member-1');
  assert.doesNotMatch(r.err, /TOKEN ALREADY USED/);
});

test('another instance presenting this instance\'s credential is refused (wrong-instance), nothing exported', async () => {
  // A copy of the image state in a new instance (another pointer URL → another instance id),
  // with the credential file edited to claim the new id, so the agent sends it.
  const clonePointer = `${pointer}&clone=1`;
  const clone = makeImageRoot(clonePointer, JSON.parse(readFileSync(image.at('/etc/cartridge-agent/agent.json'), 'utf8')));
  try {
    const stolen = JSON.parse(readFileSync(image.at(CREDENTIAL), 'utf8'));
    mkdirSync(path.dirname(clone.at(CREDENTIAL)), { recursive: true });
    writeFileSync(clone.at(CREDENTIAL), JSON.stringify({ ...stolen, instanceId: instanceIdFromUrl(clonePointer) }), { mode: 0o600 });
    const r = await boot(clone);
    assert.equal(r.code, 5, r.err);
    assert.match(r.err, /"refusal":"wrong-instance"/);
    assert.match(r.err, /HTTP 403/);
    assert.equal(existsSync(clone.at('/run/cartridge-agent/payload.json')), false);
  } finally {
    clone.remove();
  }
});

test('the controller lost the credential and answers "reused": the instance that spent the token boots from its cache, warning', async () => {
  const file = path.join(state, MEMBERS_FILE);
  const store = JSON.parse(readFileSync(file, 'utf8'));
  store.members[0].credentials = [];
  writeFileSync(`${file}.new`, JSON.stringify(store), { mode: 0o600 });
  renameSync(`${file}.new`, file);

  const r = await boot(image);
  assert.equal(r.code, 0, r.err);
  assert.equal(summary(r).via, 'cache');
  assert.match(r.err, /"level":"warn"[^\n]*TOKEN ALREADY USED BY THIS INSTANCE: the controller refused the single-use token as reused/);
  assert.equal(exported(image).DB_PASSWORD, 's3cr3t');

  // The same refusal for a fresh instance (no cache of its own) stays terminal.
  const fresh = makeImageRoot(pointer, JSON.parse(readFileSync(image.at('/etc/cartridge-agent/agent.json'), 'utf8')));
  try {
    const f = await boot(fresh);
    assert.equal(f.code, 5, f.err);
    assert.match(f.err, /"refusal":"reused"/);
  } finally {
    fresh.remove();
  }
});

test('after terminate the instance is refused (revoked), also with its cache: terminal, exit 5', async () => {
  // Give the instance a credential again (re-register issues a new token; fetch once with it).
  const reg = await cli(['register', '--state', state, '--cluster', 'php.shop', '--member', 'php.member-1', '--payload-file', path.join(dir, 'payload.txt'), '--single-use', '--json']);
  assert.equal(reg.code, 0, reg.err);
  pointer = (JSON.parse(reg.out) as { personality: string }).personality.trim();
  writeFileSync(image.at('/etc/cartridge-agent/payload-url'), `${pointer}\n`);
  assert.equal((await boot(image)).code, 0);
  assert.equal((await boot(image)).code, 0, 'the new credential admits the reboot');

  const term = await cli(['terminate', '--state', state, '--cluster', 'php.shop', '--member', 'php.member-1']);
  assert.equal(term.code, 0, term.err);
  const r = await boot(image);
  assert.equal(r.code, 5, r.err);
  assert.match(r.err, /"refusal":"revoked"/);
  assert.doesNotMatch(r.err, /TOKEN ALREADY USED/);
});
