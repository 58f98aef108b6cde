/**
 * fetchPayload against real HTTP servers on 127.0.0.1: retries, timeouts, truncation, size
 * caps, signatures, terminal answers, Retry-After, mirrors, stopping, the instance credential's origin rule.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { FetchError, PayloadError } from '../../agent/src/errors';
import { silentLogger } from '../../agent/src/log';
import { fetchPayload, type FetchPayloadOptions } from '../../agent/src/payload/fetch';
import { pointerUrlDigest } from '../../agent/src/payload/credential';
import { INSTANCE_CREDENTIAL_HEADER, INSTANCE_ID_HEADER, PAYLOAD_SIGNATURE_HEADER, REFUSAL_HEADER } from '../../agent/src/protocol/payload-http';
import { serverPool, type Handler } from '../helpers/http-server';
import { closedPort } from '../helpers/net';
import { captureLog } from '../fixtures/payload/log-capture';

const PAYLOAD = Buffer.from('SERVICE_NAME=php,PORTS=80|443,DB_PASSWORD=hunter2\n');

const base: FetchPayloadOptions = {
  maxBytes: 64 * 1024,
  connectTimeoutMs: 500,
  requestTimeoutMs: 500,
  deadlineSeconds: 5,
  backoffBaseMs: 10,
  backoffCapMs: 50,
  log: silentLogger(),
};

const pool = serverPool();
after(() => pool.closeAll());
const serve = pool.serve;

const ok: Handler = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': PAYLOAD.length });
  res.end(PAYLOAD);
};

async function rejects<E extends Error>(p: Promise<unknown>, type: new (...a: never[]) => E, pattern: RegExp): Promise<E> {
  let caught: unknown;
  await p.then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => {
      caught = err;
    },
  );
  assert.ok(caught instanceof type, `expected ${type.name}, got ${String(caught)}`);
  assert.match((caught as E).message, pattern);
  return caught as E;
}

describe('fetchPayload over http', () => {
  it('500 then 200: retried, succeeds', async () => {
    const s = await serve((req, res, n) => (n === 1 ? res.writeHead(500).end('boom') : ok(req, res, n)));
    const got = await fetchPayload([`${s.url}/p`], base);
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.equal(got.contentType, 'text/plain');
    assert.equal(got.url, `${s.url}/p`);
    assert.equal(s.requests.length, 2);
  });

  it('a stalled server: request timeout, retried, then the deadline error', async () => {
    const s = await serve(() => {
      /* never answers */
    });
    const started = Date.now();
    const err = await rejects(
      fetchPayload([`${s.url}/p`], { ...base, requestTimeoutMs: 300, deadlineSeconds: 1.2 }),
      FetchError,
      /gave up fetching the payload after \d+ attempt\(s\) in [\d.]+ s \(payload\.fetch\.deadlineSeconds = 1\.2\); last error: http:\/\/127\.0\.0\.1:\d+\/p: (no complete response within 300 ms \(payload\.fetch\.requestTimeoutMs\)|the deadline passed while waiting for the response)$/,
    );
    const elapsed = Date.now() - started;
    assert.equal(err.terminal, false);
    assert.ok(s.requests.length >= 3, `retried: ${s.requests.length} requests`);
    assert.equal(err.context.attempts, s.requests.length);
    assert.ok(elapsed >= 1000 && elapsed < 2000, `deadline respected: ${elapsed} ms`);
  });

  it('the connect timeout ends at connect: a slow answer on a connected socket is fine', async () => {
    const s = await serve((req, res, n) => void setTimeout(() => ok(req, res, n), 400));
    const got = await fetchPayload([`${s.url}/p`], { ...base, connectTimeoutMs: 100, requestTimeoutMs: 2000 });
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.equal(s.requests.length, 1);
  });

  it('a truncated body (Content-Length larger than sent) is retried', async () => {
    const s = await serve((req, res, n) => {
      if (n > 1) return ok(req, res, n);
      res.writeHead(200, { 'Content-Length': PAYLOAD.length + 100 });
      res.write(PAYLOAD);
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const got = await fetchPayload([`${s.url}/p`], base);
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.equal(s.requests.length, 2);
  });

  it('a body that is always truncated ends in a FetchError naming it', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': 1000 });
      res.write(PAYLOAD.subarray(0, 10));
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const logged = captureLog();
    const err = await rejects(fetchPayload([`${s.url}/p`], { ...base, deadlineSeconds: 0.5, log: logged.log }), FetchError, /^gave up fetching the payload after \d+ attempt/);
    assert.equal(err.terminal, false);
    assert.ok(s.requests.length >= 2);
    const failures = logged.failures();
    assert.ok(failures.length >= 2);
    assert.match(failures[0]?.err ?? '', /^connection lost after 10 of 1000 body bytes/);
  });

  it('too much with Content-Length: refused at once, not retried', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': 10 * 1024 * 1024 });
      res.write(Buffer.alloc(1024));
    });
    const started = Date.now();
    await rejects(fetchPayload([`${s.url}/p`], base), PayloadError, /is 10485760 bytes \(Content-Length\), more than the 65536 allowed by payload\.maxBytes/);
    assert.ok(Date.now() - started < 400);
    assert.equal(s.requests.length, 1);
  });

  it('too much without Content-Length: reading stops at the cap', async () => {
    let written = 0;
    let clientGone = false;
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' }); // chunked, endless
      const chunk = Buffer.alloc(16 * 1024, 0x41);
      const pump = (): void => {
        while (!clientGone && written < 100 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.on('close', () => {
        clientGone = true;
      });
      pump();
    });
    const started = Date.now();
    await rejects(fetchPayload([`${s.url}/p`], base), PayloadError, /more than the 65536 bytes allowed by payload\.maxBytes; stopped reading/);
    assert.ok(Date.now() - started < 1000);
    assert.equal(s.requests.length, 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(clientGone, 'the agent closed the connection');
    assert.ok(written < 8 * 1024 * 1024, `server could only push ${written} bytes before the agent hung up`);
  });

  it('a gzip Content-Encoding bomb is capped after decompression', async () => {
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024));
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip', 'Content-Length': bomb.length });
      res.end(bomb);
    });
    await rejects(fetchPayload([`${s.url}/p`], base), PayloadError, /stopped reading/);
    assert.equal(s.requests.length, 1);
  });

  it('403: terminal FetchError after exactly one request, URL token redacted', async () => {
    const s = await serve((_req, res) => res.writeHead(403).end('nope'));
    const err = await rejects(fetchPayload([`${s.url}/p?token=s3cr3t`], base), FetchError, /^cannot fetch the payload from http:\/\/127\.0\.0\.1:\d+\/p\?token=\[REDACTED\]: HTTP 403 Forbidden \(not retried/);
    assert.equal(err.terminal, true);
    assert.ok(!err.message.includes('s3cr3t'));
    assert.equal(s.requests.length, 1);
  });

  it('408 and 503 are retried like 5xx', async () => {
    const s = await serve((req, res, n) => (n === 1 ? res.writeHead(408).end() : n === 2 ? res.writeHead(503).end() : ok(req, res, n)));
    await fetchPayload([`${s.url}/p`], base);
    assert.equal(s.requests.length, 3);
  });

  it('429 with Retry-After: 1 waits about a second, then succeeds', async () => {
    const s = await serve((req, res, n) => (n === 1 ? res.writeHead(429, { 'Retry-After': '1' }).end() : ok(req, res, n)));
    const got = await fetchPayload([`${s.url}/p`], base);
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.equal(s.requests.length, 2);
    const waited = (s.requests[1]?.at as number) - (s.requests[0]?.at as number);
    assert.ok(waited >= 950 && waited < 1500, `waited ${waited} ms`);
  });

  it('Retry-After past the deadline: gives up at once, saying so', async () => {
    const s = await serve((_req, res) => res.writeHead(503, { 'Retry-After': '30' }).end());
    const started = Date.now();
    await rejects(fetchPayload([`${s.url}/p`], { ...base, deadlineSeconds: 2 }), FetchError, /server asked to retry after 30 s, past the deadline; last error: .*HTTP 503/);
    assert.ok(Date.now() - started < 500);
    assert.equal(s.requests.length, 1);
  });

  it('mirrors are tried in order: refused connection and 404 fall through to the next', async () => {
    const dead = await closedPort();
    const missing = await serve((_req, res) => res.writeHead(404).end());
    const good = await serve(ok);
    const got = await fetchPayload([`http://127.0.0.1:${dead}/p`, `${missing.url}/p`, `${good.url}/p`], base);
    assert.equal(got.url, `${good.url}/p`);
    assert.equal(missing.requests.length, 1);
    assert.equal(good.requests.length, 1);
  });

  it('every mirror terminal: terminal FetchError without waiting for the deadline', async () => {
    const a = await serve((_req, res) => res.writeHead(404).end());
    const b = await serve((_req, res) => res.writeHead(410).end());
    const err = await rejects(fetchPayload([`${a.url}/p`, `${b.url}/p`], base), FetchError, /HTTP 410 Gone/);
    assert.equal(err.terminal, true);
    assert.equal(a.requests.length + b.requests.length, 2);
  });

  it('follows a redirect', async () => {
    const s = await serve((req, res, n) => (req.url === '/old' ? res.writeHead(302, { Location: '/new' }).end() : ok(req, res, n)));
    const got = await fetchPayload([`${s.url}/old`], base);
    assert.ok(got.bytes.equals(PAYLOAD));
  });

  it('waits follow full-jitter backoff with its cap, on an injected clock', async () => {
    const s = await serve((_req, res, n) => res.writeHead(500, n === 3 ? { 'Retry-After': '3' } : {}).end());
    let clock = 0;
    const delays: number[] = [];
    const err = await rejects(
      fetchPayload([`${s.url}/p`], {
        ...base,
        deadlineSeconds: 4,
        backoffBaseMs: 100,
        backoffCapMs: 400,
        now: () => clock,
        random: () => 0.5,
        sleep: async (ms) => {
          delays.push(ms);
          clock += ms;
          return true;
        },
      }),
      FetchError,
      /after 8 attempt\(s\) in \d\.\d s \(payload\.fetch\.deadlineSeconds = 4\); last error: http:\/\/127\.0\.0\.1:\d+\/p: HTTP 500 Internal Server Error$/,
    );
    // 0.5 × min(400, 100·2^n): 50, 100, then Retry-After 3 s wins over 200, then capped at 200
    // until the next wait would end past the 4 s deadline (at 3.95 s only 50 ms are left).
    assert.deepEqual(delays, [50, 100, 3000, 200, 200, 200, 200]);
    assert.equal(s.requests.length, 8);
    assert.equal(err.terminal, false);
  });

  it('an AbortSignal stops a fetch in progress', async () => {
    const s = await serve(() => {
      /* stall */
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const err = await rejects(fetchPayload([`${s.url}/p`], { ...base, requestTimeoutMs: 5000, signal: controller.signal }), FetchError, /payload fetch stopped after 1 attempt/);
    assert.equal(err.context.stopped, true);
    assert.ok(Date.now() - started < 500);
  });

  // The wait is 30 s and the test's limit 10 s: a stop that did not cut the wait short fails here.
  it('an AbortSignal during the wait between attempts ends the wait and the fetch', { timeout: 10_000 }, async () => {
    const s = await serve((_req, res) => res.writeHead(500).end());
    const controller = new AbortController();
    // Abort just after fetchPayload logs the retry and starts its wait (about 30 s here).
    const log = pino({ level: 'info' }, { write: (l: string) => void (l.includes('"retrying payload fetch"') && setImmediate(() => controller.abort())) });
    const slow = { ...base, deadlineSeconds: 120, backoffBaseMs: 60_000, backoffCapMs: 60_000, random: () => 0.5, log, signal: controller.signal };
    const err = await rejects(fetchPayload([`${s.url}/p`], slow), FetchError, /^payload fetch stopped after 1 attempt\(s\)$/);
    assert.equal(err.context.stopped, true);
    assert.equal(err.terminal, false);
    assert.equal(s.requests.length, 1, 'no attempt after the stop');
  });

  it('logs each attempt with redacted URLs', async () => {
    const logged = captureLog();
    const s = await serve((req, res, n) => (n === 1 ? res.writeHead(502).end() : ok(req, res, n)));
    await fetchPayload([`${s.url}/p?token=s3cr3t`], { ...base, log: logged.log });
    const records = logged.records();
    assert.deepEqual(records.filter((r) => r.msg === 'fetching payload').map((r) => r.attempt), [1, 2]);
    assert.ok(records.some((r) => r.msg === 'payload fetch failed' && /HTTP 502/.test(JSON.stringify(r))));
    assert.ok(!logged.lines.join('').includes('s3cr3t'), 'token never logged');
    assert.ok(records.every((r) => r.url === undefined || r.url.includes('token=[REDACTED]')));
  });
});

describe('fetchPayload with payload.publicKey', () => {
  const keys = generateKeyPairSync('ed25519');
  const signature = sign(null, PAYLOAD, keys.privateKey).toString('base64');
  const withKey = { ...base, publicKey: keys.publicKey };
  const signedWith = (sig: string | undefined): Handler => (_req, res) => {
    res.writeHead(200, sig === undefined ? {} : { [PAYLOAD_SIGNATURE_HEADER]: sig });
    res.end(PAYLOAD);
  };

  it('a good signature is accepted', async () => {
    const s = await serve(signedWith(signature));
    assert.ok((await fetchPayload([`${s.url}/p`], withKey)).bytes.equals(PAYLOAD));
  });

  it('a wrong signature is a PayloadError, not retried', async () => {
    const other = generateKeyPairSync('ed25519');
    const s = await serve(signedWith(sign(null, PAYLOAD, other.privateKey).toString('base64')));
    await rejects(fetchPayload([`${s.url}/p`], withKey), PayloadError, /X-Cartridge-Signature that does not verify with payload\.publicKey/);
    assert.equal(s.requests.length, 1);
  });

  it('a signature over other bytes is refused', async () => {
    const s = await serve(signedWith(sign(null, Buffer.from('SERVICE_NAME=evil'), keys.privateKey).toString('base64')));
    await rejects(fetchPayload([`${s.url}/p`], withKey), PayloadError, /does not verify/);
  });

  it('a missing signature is a PayloadError when a key is configured', async () => {
    const s = await serve(signedWith(undefined));
    await rejects(fetchPayload([`${s.url}/p`], withKey), PayloadError, /has no X-Cartridge-Signature header, but payload\.publicKey requires/);
    assert.equal(s.requests.length, 1);
  });
});

describe('fetchPayload: instance id and credential on the wire', () => {
  const CRED = 'c'.repeat(43);
  const ISSUED = 'n'.repeat(43);
  const issuing: Handler = (_req, res) => {
    res.writeHead(200, { [INSTANCE_CREDENTIAL_HEADER]: ISSUED });
    res.end(PAYLOAD);
  };

  it('sends the instance id and the credential to its origin; returns an issued credential', async () => {
    const s = await serve(issuing);
    const got = await fetchPayload([`${s.url}/p?token=t`], { ...base, identity: { instanceId: 'i-0abc', credential: { origin: s.url, credential: CRED } } });
    assert.equal(got.credential, ISSUED);
    assert.equal(s.requests[0]?.headers[INSTANCE_ID_HEADER.toLowerCase()], 'i-0abc');
    assert.equal(s.requests[0]?.headers.authorization, `Bearer ${CRED}`);
  });

  it('never to another origin: not to a different host name of the same server, not after a cross-origin redirect, not back', async () => {
    const s = await serve(issuing);
    await fetchPayload([`${s.url.replace('127.0.0.1', 'localhost')}/p`], { ...base, identity: { instanceId: 'i', credential: { origin: s.url, credential: CRED } } });
    assert.equal(s.requests[0]?.headers.authorization, undefined, 'localhost is not the origin 127.0.0.1');
    assert.equal(s.requests[0]?.headers[INSTANCE_ID_HEADER.toLowerCase()], 'i');

    // a → b (another port: another origin) → back to a: only the first request carries it.
    let aUrl = '';
    const b = await serve((_req, res) => res.writeHead(302, { Location: `${aUrl}/final` }).end());
    const a = await serve((req, res, n) => (req.url === '/start' ? res.writeHead(302, { Location: `${b.url}/hop` }).end() : issuing(req, res, n)));
    aUrl = a.url;
    const got = await fetchPayload([`${a.url}/start`], { ...base, identity: { instanceId: 'i', credential: { origin: a.url, credential: CRED } } });
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.deepEqual(a.requests.map((r) => [r.url, r.headers.authorization]), [['/start', `Bearer ${CRED}`], ['/final', undefined]]);
    assert.equal(b.requests[0]?.headers.authorization, undefined);
    assert.equal(got.credential, undefined, 'an answer that went through another origin issues nothing we keep');
  });

  it('a same-origin redirect keeps it', async () => {
    const s = await serve((req, res, n) => (req.url === '/old' ? res.writeHead(301, { Location: '/new' }).end() : issuing(req, res, n)));
    const got = await fetchPayload([`${s.url}/old`], { ...base, identity: { instanceId: 'i', credential: { origin: s.url, credential: CRED } } });
    assert.deepEqual(s.requests.map((r) => r.headers.authorization), [`Bearer ${CRED}`, `Bearer ${CRED}`]);
    assert.equal(got.credential, ISSUED);
  });

  it('a terminal refusal carries the server\'s refusal word and the URL digest, never the URL', async () => {
    const s = await serve((_req, res) => res.writeHead(403, { [REFUSAL_HEADER]: 'reused' }).end('forbidden: reused: the single-use token was already used\n'));
    const url = `${s.url}/p?token=secret-token`;
    const err = await rejects(fetchPayload([url], base), FetchError, /HTTP 403/);
    assert.equal(err.terminal, true);
    assert.deepEqual(err.context.refusals, [{ urlDigest: pointerUrlDigest(url), refusal: 'reused' }]);
    assert.doesNotMatch(JSON.stringify(err.context), /secret-token/);
  });
});
