/**
 * Personality source against a real temporary image root (--root): on disk, injected late
 * while discovery waits, missing past the deadline, and broken.
 */
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { NoPointerError, SourceError } from '../../agent/src/errors';
import { discoverPointer } from '../../agent/src/sources';
import { PersonalitySource, instanceIdFromUrl } from '../../agent/src/sources/personality';
import { makeContext, tempRoot, writeInRoot } from '../fixtures/sources/context';

const P = '/etc/cartridge-agent/payload-url';
const URL_WITH_TOKEN = 'https://ctl.example:8443/payload/member-7?token=9f8e7d';

test('personality file on disk under --root: URL, derived instance id, origin is the path', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, P, `${URL_WITH_TOKEN}\r\n`);
  const r = await new PersonalitySource().probe(makeContext({ root }));
  assert.equal(r.status, 'found');
  assert.ok(r.status === 'found');
  assert.deepEqual(r.discovery, {
    source: 'personality',
    instanceId: instanceIdFromUrl(URL_WITH_TOKEN),
    origin: P,
    content: { kind: 'url', url: URL_WITH_TOKEN },
  });
});

test('second configured path is used when the first is missing', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, '/var/lib/payload-url', 'http://10.0.0.1/p\n');
  const ctx = makeContext({ root, config: { sources: { personality: { paths: [P, '/var/lib/payload-url'] } } } });
  const r = await new PersonalitySource().probe(ctx);
  assert.ok(r.status === 'found');
  assert.equal(r.discovery.origin, '/var/lib/payload-url');
});

test('absent reason names the missing path and the missing config drive', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const r = await new PersonalitySource().probe(makeContext({ root }));
  assert.ok(r.status === 'absent');
  assert.match(r.reason, /^no file at \/etc\/cartridge-agent\/payload-url; no config drive \(no openstack\/latest\/meta_data.json in \/var\/lib\/cloud\/seed\/config_drive or \/config-drive; device scan off/);
});

test('a broken personality file is a SourceError naming the path', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  await writeInRoot(root, P, 'x'.repeat(1500));
  await assert.rejects(new PersonalitySource().probe(makeContext({ root })), (err: unknown) =>
    err instanceof SourceError && err.where === P && /1500 bytes, over the 1000-byte personality limit/.test(err.message));
  await writeInRoot(root, P, 'gopher://old.example/\n');
  await assert.rejects(new PersonalitySource().probe(makeContext({ root })), /must be http or https/);
});

test('late injection: the file appears while discovery waits and is found', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const ctx = makeContext({ root, config: { sources: { waitSeconds: 10, pollIntervalMs: 50 } } });
  const status: string[] = [];
  const started = Date.now();
  // Written like nova-agent does: a temporary file renamed into place, 300 ms after discovery starts.
  const injector = setTimeout(() => {
    void writeInRoot(root, `${P}.tmp`, `${URL_WITH_TOKEN}\n`).then((tmp) => rename(tmp, path.join(root, P)));
  }, 300);
  t.after(() => clearTimeout(injector));
  const d = await discoverPointer(ctx, (s) => status.push(s));
  const elapsed = Date.now() - started;
  assert.equal(d.content.kind === 'url' && d.content.url, URL_WITH_TOKEN);
  assert.ok(elapsed >= 250 && elapsed < 3_000, `elapsed ${elapsed} ms`);
  assert.ok(status.length >= 2, 'STATUS reported while waiting');
  assert.match(status[0] as string, /personality: no file at \/etc\/cartridge-agent\/payload-url/);
  assert.ok(!status.some((s) => s.includes('9f8e7d')));
});

test('deadline passes without a file: NoPointerError lists each source and why', async (t) => {
  const { root, cleanup } = await tempRoot();
  t.after(cleanup);
  const ctx = makeContext({ root, config: { sources: { waitSeconds: 1, pollIntervalMs: 100 } } });
  const started = Date.now();
  await assert.rejects(discoverPointer(ctx), (err: unknown) => {
    assert.ok(err instanceof NoPointerError);
    assert.deepEqual(err.reasons.map((r) => r.source), ['personality', 'configdrive', 'nocloud']);
    assert.match(err.reasons[0]!.reason, /no file at \/etc\/cartridge-agent\/payload-url/);
    assert.match(err.reasons[2]!.reason, /no user-data in \/var\/lib\/cloud\/seed\/nocloud/);
    return true;
  });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1_000 && elapsed < 3_000, `elapsed ${elapsed} ms`);
});
