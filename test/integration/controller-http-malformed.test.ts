/**
 * The controller's HTTP server for real, fed request targets a browser or fetch() would never
 * send (raw over TCP): bad percent-encoding, an encoded NUL, control bytes, overlong paths, a
 * broken absolute-form target. Every one is a 400 naming what was wrong, never a 500, the
 * server keeps serving, and /metrics counts them where they happened.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../agent/src/log';
import { ControllerHttp } from '../../controller-stub/src/http';
import { ControllerKeys } from '../../controller-stub/src/keys';
import { MemberStore } from '../../controller-stub/src/members';

let dir: string;
let server: ControllerHttp;
let port: number;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'controller-http-bad-'));
  const keys = await ControllerKeys.loadOrCreate(dir);
  server = new ControllerHttp({ store: new MemberStore(dir, keys.tokenSecret), keys, log: silentLogger() });
  port = Number(new URL(await server.listen('127.0.0.1', 0)).port);
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One raw HTTP/1.1 request; the status line's code and the body. */
async function raw(target: string | Buffer): Promise<{ status: number; body: string }> {
  const head = Buffer.concat([Buffer.from('GET '), Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]);
  const reply = await new Promise<string>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(head));
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => resolve(data));
    s.on('error', reject);
    s.setTimeout(5_000, () => s.destroy(new Error('no answer')));
  });
  const m = /^HTTP\/1\.1 (\d{3})/.exec(reply);
  assert.ok(m, `an HTTP answer: ${JSON.stringify(reply.slice(0, 100))}`);
  return { status: Number(m[1]), body: reply.slice(reply.indexOf('\r\n\r\n') + 4) };
}

async function metric(re: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = re.exec(text);
  assert.ok(m, `metrics have ${re}:\n${text}`);
  return Number(m[1]);
}

const badRequests = () => metric(/^cartridge_controller_http_errors_total\{status="400"\} (\d+)$/m);
const payloadErrors = () => metric(/^cartridge_controller_payload_requests_total\{result="error"\} (\d+)$/m);

const CASES: Array<[string, string | Buffer, RegExp]> = [
  ['truncated percent-encoding', '/payload/%E0%A4%A', /percent-encoding/],
  ['invalid UTF-8 once decoded', '/payload/%C3%28?token=x', /percent-encoding/],
  ['a lone %', '/payload/%?token=x', /percent-encoding/],
  ['an encoded NUL', '/payload/m1%00?token=x', /control character|member id/],
  ['an encoded slash inside the member id', '/payload/a%2Fb?token=x', /member id/],
  ['an overlong member id', `/payload/${'m'.repeat(300)}?token=x`, /member id/],
  ['an overlong path', `/payload/${'a/'.repeat(3000)}`, /too long/],
  ['bad percent-encoding in the admin path', '/api/members/%E0/m1/terminate', /percent-encoding/],
];

for (const [what, target, why] of CASES) {
  test(`400, never 500: ${what}`, async () => {
    const before = await badRequests();
    const r = await raw(target);
    assert.equal(r.status, 400, `${what}: ${r.body}`);
    assert.match(r.body, why);
    assert.equal(await badRequests(), before + 1, 'counted in cartridge_controller_http_errors_total{status="400"}');
  });
}

test('a malformed payload path also counts as a payload request with result "error"', async () => {
  const before = await payloadErrors();
  assert.equal((await raw('/payload/%E0%A4%A')).status, 400);
  assert.equal(await payloadErrors(), before + 1);
  assert.equal((await raw('/metrics%ZZ')).status, 400);
  assert.equal(await payloadErrors(), before + 1, 'not a payload path: only the HTTP error counter moves');
});

test('a request line the HTTP parser refuses (raw NUL, absolute-form with a broken host) is a counted 400', async () => {
  for (const target of [Buffer.from('/payload/m1\0x'), Buffer.from('http://[::1/payload/m1')]) {
    const before = await badRequests();
    const r = await raw(target);
    assert.equal(r.status, 400, JSON.stringify(target.toString('latin1')));
    assert.equal(await badRequests(), before + 1);
  }
});

test('after all that the server still answers normally', async () => {
  const r = await raw('/payload/nobody?token=x');
  assert.equal(r.status, 404);
  assert.equal(await metric(/^cartridge_controller_http_errors_total\{status="500"\} (\d+)$/m), 0, 'no internal error on the way');
});
