/** OpenStack metadata service emulation on 127.0.0.1: meta_data.json uuid, user_data, 404s, 5xx. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SourceError } from '../../agent/src/errors';
import { OpenStackSource } from '../../agent/src/sources/openstack';
import { makeContext } from '../fixtures/sources/context';
import { send, startServer } from '../helpers/http-server';

const UUID = 'd8e02d56-2648-49a3-bf97-6be8f1204f38';
const USER_DATA = 'https://ctl.example/payload/os-1\n';
const FAST = { backoffMs: 10, backoffCapMs: 50 };

async function startMetadata(opts: { meta?: string | number; userData?: string | number } = {}) {
  return startServer((req, res) => {
    if (req.method !== 'GET') return send(res, 405);
    const answer = (v: string | number) => (typeof v === 'number' ? send(res, v) : send(res, 200, v));
    if (req.url === '/openstack/latest/meta_data.json') return answer(opts.meta ?? JSON.stringify({ uuid: UUID, name: 'm1', files: [] }));
    if (req.url === '/openstack/latest/user_data') return answer(opts.userData ?? USER_DATA);
    send(res, 404);
  });
}

const ctxFor = (baseUrl: string, retries = 1) =>
  makeContext({ config: { sources: { openstack: { baseUrl, retries, connectTimeoutMs: 500, requestTimeoutMs: 2_000 } } } });

test('openstack: uuid from meta_data.json, user_data as user data', async (t) => {
  const md = await startMetadata();
  t.after(() => md.close());
  const r = await new OpenStackSource(FAST).probe(ctxFor(md.url));
  assert.ok(r.status === 'found', JSON.stringify(r));
  assert.equal(r.discovery.instanceId, UUID);
  assert.equal(r.discovery.origin, `${md.url}/openstack/latest/user_data`);
  assert.ok(r.discovery.content.kind === 'userdata');
  assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
  assert.deepEqual(md.requests.map((q) => q.url), ['/openstack/latest/meta_data.json', '/openstack/latest/user_data']);
});

test('openstack: 404 user_data means none', async (t) => {
  const md = await startMetadata({ userData: 404 });
  t.after(() => md.close());
  const r = await new OpenStackSource(FAST).probe(ctxFor(md.url));
  assert.deepEqual(r, { status: 'absent', reason: `no user data at ${md.url}/openstack/latest/user_data (404)` });
});

test('openstack: no OpenStack tree (404 meta_data.json) is absent', async (t) => {
  const md = await startMetadata({ meta: 404 });
  t.after(() => md.close());
  const r = await new OpenStackSource(FAST).probe(ctxFor(md.url));
  assert.deepEqual(r, { status: 'absent', reason: `no OpenStack metadata at ${md.url}/openstack/latest/meta_data.json (404)` });
});

test('openstack: meta_data.json that is not JSON is a SourceError', async (t) => {
  const md = await startMetadata({ meta: '<html>captive portal</html>' });
  t.after(() => md.close());
  await assert.rejects(new OpenStackSource(FAST).probe(ctxFor(md.url)), (err: unknown) =>
    err instanceof SourceError && err.where === `${md.url}/openstack/latest/meta_data.json` && /not valid JSON/.test(err.message));
});

test('openstack: persistent 503 is absent after retries', async (t) => {
  const md = await startMetadata({ meta: 503 });
  t.after(() => md.close());
  const r = await new OpenStackSource(FAST).probe(ctxFor(md.url, 2));
  assert.deepEqual(r, { status: 'absent', reason: `${md.url}/openstack/latest/meta_data.json answered HTTP 503 after 3 attempts` });
  assert.equal(md.requests.length, 3);
});
