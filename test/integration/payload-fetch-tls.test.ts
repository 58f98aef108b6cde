/**
 * fetchPayload over https with a CA made by the real `openssl` in the test: a self-signed CA
 * and a server certificate for 127.0.0.1 (subjectAltName IP). Trusted with the CA, refused
 * without it; a server that never finishes the TLS handshake hits the connect timeout.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FetchError } from '../../agent/src/errors';
import { silentLogger } from '../../agent/src/log';
import { fetchPayload, type FetchPayloadOptions } from '../../agent/src/payload/fetch';
import { hasCommand, requireCommands } from '../helpers/env';
import { startServer, type TestServer } from '../helpers/http-server';
import { captureLog } from '../fixtures/payload/log-capture';

const PAYLOAD = Buffer.from('SERVICE_NAME=php\n');
const base: FetchPayloadOptions = {
  maxBytes: 64 * 1024,
  connectTimeoutMs: 300,
  requestTimeoutMs: 1000,
  deadlineSeconds: 5,
  backoffBaseMs: 10,
  backoffCapMs: 50,
  log: silentLogger(),
};

function makeCa(dir: string): { ca: string; key: string; cert: string } {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=cartridge test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  run('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  return { ca: read('ca.pem'), key: read('server.key'), cert: read('server.pem') };
}

describe('fetchPayload over https', () => {
  let dir = '';
  let pki: { ca: string; key: string; cert: string } | undefined;
  const servers: TestServer[] = [];
  before(() => {
    if (!hasCommand('openssl')) return;
    dir = mkdtempSync(join(tmpdir(), 'payload-tls-'));
    pki = makeCa(dir);
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function httpsServer(): Promise<TestServer> {
    assert.ok(pki);
    const s = await startServer((req, res) => {
      if (req.url === '/downgrade') return void res.writeHead(302, { Location: 'http://127.0.0.1:1/p' }).end();
      if (req.url === '/slow') return void setTimeout(() => res.writeHead(200).end(PAYLOAD), 400);
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(PAYLOAD);
    }, { key: pki.key, cert: pki.cert });
    servers.push(s);
    return s;
  }

  it('succeeds when the CA (payload.fetch.caFile) is given', async (t) => {
    if (!requireCommands(t, 'openssl')) return;
    const s = await httpsServer();
    const got = await fetchPayload([`${s.url}/p`], { ...base, caPem: pki?.ca });
    assert.ok(got.bytes.equals(PAYLOAD));
  });

  it('the connect timeout covers the TLS handshake only, not a slow answer', async (t) => {
    if (!requireCommands(t, 'openssl')) return;
    const s = await httpsServer();
    const got = await fetchPayload([`${s.url}/slow`], { ...base, caPem: pki?.ca, connectTimeoutMs: 150, requestTimeoutMs: 2000 });
    assert.ok(got.bytes.equals(PAYLOAD));
    assert.equal(s.requests.length, 1);
  });

  it('fails without the CA, naming the certificate problem', async (t) => {
    if (!requireCommands(t, 'openssl')) return;
    const s = await httpsServer();
    const err = await fetchPayload([`${s.url}/p`], { ...base, deadlineSeconds: 0.5 }).then(
      () => assert.fail('an untrusted certificate was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FetchError, String(err));
    assert.equal(err.terminal, false);
    assert.match(err.message, /last error: .*(SELF_SIGNED|self-signed|unable to (get|verify)).*payload\.fetch\.caFile/i);
    assert.ok(s.requests.length === 0, 'no request reached the application');
  });

  it('a CA that did not sign the server certificate is refused too', async (t) => {
    if (!requireCommands(t, 'openssl')) return;
    const s = await httpsServer();
    const otherDir = mkdtempSync(join(tmpdir(), 'payload-tls-other-'));
    try {
      const other = makeCa(otherDir);
      await assert.rejects(fetchPayload([`${s.url}/p`], { ...base, deadlineSeconds: 0.3, caPem: other.ca }), FetchError);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('refuses a redirect from https to http (terminal)', async (t) => {
    if (!requireCommands(t, 'openssl')) return;
    const s = await httpsServer();
    const err = await fetchPayload([`${s.url}/downgrade`], { ...base, caPem: pki?.ca }).then(() => assert.fail('followed'), (e: unknown) => e);
    assert.ok(err instanceof FetchError, String(err));
    assert.equal(err.terminal, true);
    assert.match(err.message, /redirected from https to http; refused/);
  });
});

describe('connect timeout', () => {
  it('a server that accepts TCP but never completes TLS hits payload.fetch.connectTimeoutMs', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => void sockets.add(s)); // never says a word
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const logged = captureLog();
      const started = Date.now();
      const err = await fetchPayload([`https://127.0.0.1:${port}/p`], { ...base, connectTimeoutMs: 200, requestTimeoutMs: 5000, deadlineSeconds: 0.7, log: logged.log }).then(
        () => assert.fail('no error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof FetchError, String(err));
      assert.match(err.message, /^gave up fetching the payload after \d+ attempt\(s\)/);
      const failures = logged.failures();
      assert.ok(failures.length >= 2, `${failures.length} attempts`);
      assert.equal(failures[0]?.err, 'no connection within 200 ms (payload.fetch.connectTimeoutMs)');
      assert.ok(Date.now() - started < 1200, 'the request timeout (5 s) did not apply');
      assert.ok(sockets.size >= 2, 'each attempt connected over TCP');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
