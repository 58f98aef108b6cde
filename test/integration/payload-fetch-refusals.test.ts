/**
 * What the controller meant, over real HTTP on 127.0.0.1: a redirect to a scheme other than
 * http(s) is a terminal FetchError naming the scheme, and the reason a server gives for a
 * refusal is shown — one bounded, sanitized line — in the error and the log. Against hostile
 * local servers and against the real controller stub (token reused, expired, revoked, forged).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { FetchError } from '../../agent/src/errors';
import { silentLogger } from '../../agent/src/log';
import { fetchPayload, type FetchPayloadOptions } from '../../agent/src/payload/fetch';
import { ControllerHttp } from '../../controller-stub/src/http';
import { ControllerKeys } from '../../controller-stub/src/keys';
import { MemberStore } from '../../controller-stub/src/members';
import { issueToken } from '../../controller-stub/src/tokens';
import { captureLog } from '../fixtures/payload/log-capture';
import { serverPool } from '../helpers/http-server';

const PAYLOAD = Buffer.from('SERVICE_NAME=php,PORTS=80|443\n');
const base: FetchPayloadOptions = {
  maxBytes: 64 * 1024,
  connectTimeoutMs: 500,
  requestTimeoutMs: 2000,
  deadlineSeconds: 20,
  backoffBaseMs: 10,
  backoffCapMs: 50,
  log: silentLogger(),
};

const pool = serverPool();
after(() => pool.closeAll());
const serve = pool.serve;

async function fetchError(p: Promise<unknown>): Promise<FetchError> {
  const err = await p.then(
    () => assert.fail('expected a FetchError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof FetchError, `expected FetchError, got ${String(err)}`);
  return err;
}

/** What the error says the server said, without the quotes. */
function serverSays(message: string): string | undefined {
  return /; the server says: "(.*)"$/.exec(message)?.[1];
}

describe('redirects to other schemes', () => {
  for (const [location, scheme] of [
    ['file:///etc/passwd', 'file:'],
    ['ftp://127.0.0.1/payload', 'ftp:'],
    ['data:text/plain,SERVICE_NAME=evil', 'data:'],
    ['gopher://127.0.0.1:70/1', 'gopher:'],
    ['javascript:alert(1)', 'javascript:'],
  ] as const) {
    it(`${scheme} is a terminal FetchError naming the scheme, after one request`, async () => {
      const s = await serve((_req, res) => res.writeHead(302, { Location: location }).end());
      const started = Date.now();
      const err = await fetchError(fetchPayload([`${s.url}/p?token=s3cr3t`], base));
      assert.equal(err.terminal, true);
      assert.equal(err.exitCode, 5);
      assert.match(err.message, new RegExp(`^cannot fetch the payload from http://127\\.0\\.0\\.1:\\d+/p\\?token=\\[REDACTED\\]: redirected to a ${scheme} URL; only http and https redirects are followed \\(not retried\\)$`));
      assert.equal(s.requests.length, 1, 'not retried');
      assert.ok(Date.now() - started < base.deadlineSeconds * 1000 / 2, 'did not wait for the deadline');
    });
  }

  it('after an http hop too, and a later mirror is still tried', async () => {
    const bad = await serve((req, res) => res.writeHead(301, { Location: req.url === '/p' ? '/hop' : 'ftp://127.0.0.1/x' }).end());
    const good = await serve((_req, res) => res.writeHead(200).end(PAYLOAD));
    const got = await fetchPayload([`${bad.url}/p`, `${good.url}/p`], base);
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.deepEqual(bad.requests.map((r) => r.url), ['/p', '/hop']);
  });

  it('http redirects are still followed', async () => {
    const s = await serve((req, res) => (req.url === '/old' ? res.writeHead(307, { Location: `http://127.0.0.1:${s.port}/new` }).end() : res.writeHead(200).end(PAYLOAD)));
    assert.ok((await fetchPayload([`${s.url}/old`], base)).bytes.equals(PAYLOAD));
  });
});

describe('the server\'s reason for a refusal', () => {
  it('a plain-text 403 reason is in the error and in the log', async () => {
    const s = await serve((_req, res) => res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden: reused: the single-use token was already used\n'));
    const logged = captureLog();
    const err = await fetchError(fetchPayload([`${s.url}/p`], { ...base, log: logged.log }));
    assert.equal(err.terminal, true);
    assert.match(err.message, /HTTP 403 Forbidden \(not retried: a 403 answer will not change by asking again\); the server says: "forbidden: reused: the single-use token was already used"$/);
    assert.match(logged.failures()[0]?.err ?? '', /the server says: "forbidden: reused: the single-use token was already used"/);
  });

  it('a JSON body {"error": …} shows just its text', async () => {
    const s = await serve((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'no member php.member-9 is registered', code: 17 })));
    const err = await fetchError(fetchPayload([`${s.url}/p`], base));
    assert.equal(serverSays(err.message), 'no member php.member-9 is registered');
  });

  it('an empty body adds nothing', async () => {
    const s = await serve((_req, res) => res.writeHead(410).end());
    const err = await fetchError(fetchPayload([`${s.url}/p`], base));
    assert.match(err.message, /HTTP 410 Gone \(not retried: a 410 answer will not change by asking again\)$/);
  });

  it('hostile bytes become one printable line: no ANSI, no control or bidi characters', async () => {
    const hostile = '\x1b[2J\x1b[31mtoken \x1b]0;pwned\x07revoked\x1b[0m\r\nFAKE: cartridge-agent: all good\x00\x08\x7f\u009b1m\u202eoh\u2028x\ufeff\udc00 \xff';
    const s = await serve((_req, res) => res.writeHead(403).end(Buffer.concat([Buffer.from(hostile, 'utf8'), Buffer.from([0xc3, 0x28, 0xff])])));
    const logged = captureLog();
    const err = await fetchError(fetchPayload([`${s.url}/p`], { ...base, log: logged.log }));
    const said = serverSays(err.message) ?? '';
    assert.ok(said.startsWith('token revoked FAKE: cartridge-agent: all good'), said);
    assert.equal(err.message.split('\n').length, 1);
    // Printable ASCII and printable non-ASCII letters only; nothing a terminal interprets.
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    assert.doesNotMatch(err.message, /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ufffd]/u);
    // eslint-disable-next-line no-control-regex -- as above
    for (const line of logged.lines) assert.doesNotMatch(JSON.parse(line).err ?? '', /[\u0000-\u001f\u007f-\u009f\u202e]/);
  });

  it('a 1 MB body: reading stops early, the reason is at most 200 characters', async () => {
    let written = 0;
    let clientGone = false;
    const s = await serve((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain' }); // chunked, 1 MB
      res.on('close', () => void (clientGone = true));
      const chunk = Buffer.alloc(16 * 1024, 0x41);
      const pump = (): void => {
        while (!clientGone && written < 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!clientGone) res.end();
      };
      pump();
    });
    const err = await fetchError(fetchPayload([`${s.url}/p`], base));
    const said = serverSays(err.message) ?? '';
    assert.ok(said.length > 0 && said.length <= 200, `${said.length} chars`);
    assert.ok(said.endsWith('…'), 'cut marked');
    assert.equal(err.terminal, true);
  });

  it('a retried 503 keeps its reason in the final error', async () => {
    const s = await serve((_req, res) => res.writeHead(503).end('maintenance until 10:00'));
    const err = await fetchError(fetchPayload([`${s.url}/p`], { ...base, deadlineSeconds: 0.3 }));
    assert.equal(err.terminal, false);
    assert.match(err.message, /HTTP 503 Service Unavailable; the server says: "maintenance until 10:00"$/);
  });

  it('a token in a URL the server echoes is redacted', async () => {
    const s = await serve((_req, res) => res.writeHead(403).end('bad token in http://ctl.example/payload/m?token=s3cr3t'));
    const err = await fetchError(fetchPayload([`${s.url}/p`], base));
    assert.equal(serverSays(err.message), 'bad token in http://ctl.example/payload/m?token=[REDACTED]');
  });
});

describe('the real controller stub\'s refusals', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-refusals-'));
  let clock = Date.now();
  let controller: ControllerHttp;
  let store: MemberStore;
  let baseUrl: string;
  after(async () => {
    await controller?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reused, expired, revoked and forged tokens: the agent shows the controller\'s reason', async () => {
    const keys = await ControllerKeys.loadOrCreate(dir);
    store = new MemberStore(dir, keys.tokenSecret, { now: () => clock });
    controller = new ControllerHttp({ store, keys, log: silentLogger(), now: () => clock });
    baseUrl = await controller.listen('127.0.0.1', 0);
    const reg = (member: string, singleUse: boolean) => store.register('php.shop', member, `CLUSTER_ID=php.shop\nMEMBER_ID=${member}\n`, { ttlSeconds: 60, singleUse });

    const once = await reg('php.m1', true);
    const url = `${baseUrl}/payload/php.m1?token=${once.token}`;
    assert.equal((await fetchPayload([url], base)).bytes.toString(), 'CLUSTER_ID=php.shop\nMEMBER_ID=php.m1\n');
    const reused = await fetchError(fetchPayload([url], base));
    assert.equal(reused.terminal, true);
    assert.match(serverSays(reused.message) ?? '', /^forbidden: reused: the single-use token was already used$/);
    assert.ok(!reused.message.includes(once.token), 'the token is not shown');

    const later = await reg('php.m2', false);
    clock += 120_000;
    const expired = await fetchError(fetchPayload([`${baseUrl}/payload/php.m2?token=${later.token}`], base));
    assert.match(serverSays(expired.message) ?? '', /^forbidden: expired: the token expired at \d{4}-\d\d-\d\dT/);

    const gone = await reg('php.m3', false);
    await store.terminate('php.shop', 'php.m3');
    const revoked = await fetchError(fetchPayload([`${baseUrl}/payload/php.m3?token=${gone.token}`], base));
    assert.match(serverSays(revoked.message) ?? '', /^forbidden: revoked: /);

    const forgedToken = issueToken(Buffer.alloc(32, 7), { memberId: 'php.m3', expiresAtS: Math.floor(clock / 1000) + 60, nonce: 'x' });
    const forged = await fetchError(fetchPayload([`${baseUrl}/payload/php.m3?token=${forgedToken}`], base));
    assert.match(serverSays(forged.message) ?? '', /^forbidden: forged: /);

    const unknown = await fetchError(fetchPayload([`${baseUrl}/payload/php.nobody?token=x`], base));
    assert.match(unknown.message, /HTTP 404 Not Found .*; the server says: "not found: no such member"$/);
  });
});
