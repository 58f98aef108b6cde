/**
 * EC2 IMDSv2 against an emulation on 127.0.0.1: token PUT with TTL header, token on GETs,
 * 401 → new token, 403 on the token (terminal, no retry), 404 user-data, 500 then 200,
 * a stalled server, a refused port and a port that never accepts.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { test } from 'node:test';
import { SourceError } from '../../agent/src/errors';
import { Ec2Source } from '../../agent/src/sources/ec2';
import type { SourceResult } from '../../agent/src/sources/types';
import { requireCommands } from '../helpers/env';
import { startBlackhole } from '../fixtures/sources/blackhole';
import { makeContext } from '../fixtures/sources/context';
import { send, startServer, type RecordedRequest } from '../helpers/http-server';
import { closedPort } from '../helpers/net';

const USER_DATA = '#include\nhttps://ctl.example/payload/i-0abc?token=t0k\n';
const INSTANCE_ID = 'i-0123456789abcdef0';
const FAST = { backoffMs: 10, backoffCapMs: 50 };

interface ImdsBehaviour {
  tokenStatus?: number;
  /** GETs with the first token issued answer 401 (expired session). */
  expireFirstToken?: boolean;
  /** user-data: body, or a status to answer instead. */
  userData?: string | number;
  /** Answer 500 to the first N user-data GETs. */
  userDataFailures?: number;
}

/** An IMDSv2 emulation following the AWS rules: PUT-only token, token required on every GET. */
async function startImds(b: ImdsBehaviour = {}) {
  let issued = 0;
  let failures = b.userDataFailures ?? 0;
  return startServer((req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/latest/api/token') {
      if (req.method !== 'PUT') return send(res, 405);
      if (req.headers['x-forwarded-for']) return send(res, 403);
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21_600)) return send(res, 400, 'bad ttl');
      if (b.tokenStatus && b.tokenStatus !== 200) return send(res, b.tokenStatus);
      issued++;
      return send(res, 200, `token-${issued}`);
    }
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (typeof token !== 'string' || !/^token-\d+$/.test(token)) return send(res, 401);
    if (b.expireFirstToken && token === 'token-1') return send(res, 401);
    if (req.method !== 'GET') return send(res, 405);
    if (req.url === '/latest/meta-data/instance-id') return send(res, 200, INSTANCE_ID);
    if (req.url === '/latest/user-data') {
      if (failures > 0) {
        failures--;
        return send(res, 500, 'internal error');
      }
      const ud = b.userData ?? USER_DATA;
      return typeof ud === 'number' ? send(res, ud) : send(res, 200, ud);
    }
    send(res, 404);
  });
}

function ctxFor(baseUrl: string, ec2: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return makeContext({ config: { sources: { ec2: { baseUrl, connectTimeoutMs: 500, requestTimeoutMs: 2_000, retries: 2, ...ec2 } }, ...extra } });
}

const puts = (reqs: RecordedRequest[]) => reqs.filter((r) => r.method === 'PUT');
const gets = (reqs: RecordedRequest[], url: string) => reqs.filter((r) => r.method === 'GET' && r.url === url);

function assertFound(r: SourceResult): asserts r is Extract<SourceResult, { status: 'found' }> {
  assert.equal(r.status, 'found', JSON.stringify(r));
}

test('token PUT carries the configured TTL; GETs carry the token; user data and instance id found', async (t) => {
  const imds = await startImds();
  t.after(() => imds.close());
  const r = await new Ec2Source(FAST).probe(ctxFor(imds.url, { tokenTtlSeconds: 300 }));
  assertFound(r);
  assert.equal(r.discovery.instanceId, INSTANCE_ID);
  assert.equal(r.discovery.origin, `${imds.url}/latest/user-data`);
  assert.ok(r.discovery.content.kind === 'userdata');
  assert.equal(r.discovery.content.bytes.toString('utf8'), USER_DATA);
  const [put] = puts(imds.requests);
  assert.equal(puts(imds.requests).length, 1, 'one token for the whole probe');
  assert.equal(put?.headers['x-aws-ec2-metadata-token-ttl-seconds'], '300');
  for (const g of imds.requests.filter((q) => q.method === 'GET')) assert.equal(g.headers['x-aws-ec2-metadata-token'], 'token-1');
  assert.equal(gets(imds.requests, '/latest/user-data').length, 1);
  assert.equal(gets(imds.requests, '/latest/meta-data/instance-id').length, 1);
});

test('401 on a GET refreshes the token once and retries', async (t) => {
  const imds = await startImds({ expireFirstToken: true });
  t.after(() => imds.close());
  const r = await new Ec2Source(FAST).probe(ctxFor(imds.url));
  assertFound(r);
  assert.equal(r.discovery.instanceId, INSTANCE_ID);
  assert.equal(puts(imds.requests).length, 2);
  const ud = gets(imds.requests, '/latest/user-data');
  assert.deepEqual(ud.map((q) => q.headers['x-aws-ec2-metadata-token']), ['token-1', 'token-2']);
});

test('403 on the token PUT: absent, metadata service disabled, no retries, no GETs', async (t) => {
  const imds = await startImds({ tokenStatus: 403 });
  t.after(() => imds.close());
  const r = await new Ec2Source(FAST).probe(ctxFor(imds.url));
  assert.deepEqual(r, { status: 'absent', reason: `IMDSv2 token refused (403): metadata service disabled at ${imds.url}` });
  assert.equal(imds.requests.length, 1);
});

test('404 on user-data: absent, the instance has none', async (t) => {
  const imds = await startImds({ userData: 404 });
  t.after(() => imds.close());
  const r = await new Ec2Source(FAST).probe(ctxFor(imds.url));
  assert.deepEqual(r, { status: 'absent', reason: `no user data at ${imds.url}/latest/user-data (404)` });
  assert.equal(gets(imds.requests, '/latest/user-data').length, 1, '404 is not retried');
});

test('500 then 200: retried and found', async (t) => {
  const imds = await startImds({ userDataFailures: 2 });
  t.after(() => imds.close());
  const r = await new Ec2Source(FAST).probe(ctxFor(imds.url, { retries: 2 }));
  assertFound(r);
  assert.equal(gets(imds.requests, '/latest/user-data').length, 3);
});

test('500 beyond the retries: absent saying how often it tried', async (t) => {
  const imds = await startImds({ userDataFailures: 10 });
  t.after(() => imds.close());
  const r = await new Ec2Source(FAST).probe(ctxFor(imds.url, { retries: 1 }));
  assert.deepEqual(r, { status: 'absent', reason: `${imds.url}/latest/user-data answered HTTP 500 after 2 attempts` });
  assert.equal(gets(imds.requests, '/latest/user-data').length, 2);
});

test('a server that accepts but never answers times out within the configured limits', async (t) => {
  const stall = await startServer(() => undefined);
  t.after(() => stall.close());
  const started = Date.now();
  const r = await new Ec2Source(FAST).probe(ctxFor(stall.url, { requestTimeoutMs: 300, retries: 1 }));
  const elapsed = Date.now() - started;
  assert.deepEqual(r, {
    status: 'absent',
    reason: `IMDS unreachable: ${stall.url}/latest/api/token: no complete answer within 300 ms (2 attempts)`,
  });
  assert.equal(stall.requests.length, 2);
  assert.ok(elapsed >= 600 && elapsed < 1_500, `elapsed ${elapsed} ms`);
});

test('connection refused: absent after the bounded retries', async () => {
  const port = await closedPort();
  const r = await new Ec2Source(FAST).probe(ctxFor(`http://127.0.0.1:${port}`, { retries: 2 }));
  assert.deepEqual(r, { status: 'absent', reason: `IMDS unreachable: http://127.0.0.1:${port}/latest/api/token: connection refused (3 attempts)` });
});

test('no TCP handshake: the connect timeout fires, not the request timeout', async (t) => {
  if (!requireCommands(t, 'python3')) return;
  const hole = await startBlackhole();
  t.after(() => hole.stop());
  const started = Date.now();
  const r = await new Ec2Source(FAST).probe(ctxFor(`http://127.0.0.1:${hole.port}`, { connectTimeoutMs: 200, requestTimeoutMs: 5_000, retries: 1 }));
  const elapsed = Date.now() - started;
  assert.deepEqual(r, {
    status: 'absent',
    reason: `IMDS unreachable: http://127.0.0.1:${hole.port}/latest/api/token: no connection within 200 ms (2 attempts)`,
  });
  assert.ok(elapsed >= 400 && elapsed < 1_500, `elapsed ${elapsed} ms`);
});

test('user data over payload.maxUserDataBytes is a SourceError', async (t) => {
  const imds = await startImds({ userData: 'x'.repeat(5_000) });
  t.after(() => imds.close());
  await assert.rejects(new Ec2Source(FAST).probe(ctxFor(imds.url, {}, { payload: { maxUserDataBytes: 4_096 } })), (err: unknown) =>
    err instanceof SourceError && err.where === `${imds.url}/latest/user-data` && /larger than 4096 bytes/.test(err.message));
});

test('a discovery stop (signal) ends a stalled probe at once', async (t) => {
  const stall = await startServer(() => undefined);
  t.after(() => stall.close());
  const ac = new AbortController();
  const ctx = makeContext({ config: { sources: { ec2: { baseUrl: stall.url, requestTimeoutMs: 10_000 } } }, signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  const started = Date.now();
  const r = await new Ec2Source(FAST).probe(ctx);
  assert.equal(r.status, 'absent');
  assert.match((r as { reason: string }).reason, /aborted \(discovery stopped\)/);
  assert.ok(Date.now() - started < 1_000);
});
