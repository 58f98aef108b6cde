/**
 * `run` when its boot work fails, with the bundle and a fake NOTIFY_SOCKET: a terminal
 * failure (the controller refuses: 403) stops it with its exit code and says why in STATUS=
 * and the log — the unit's RestartPreventExitStatus= then keeps systemd from restarting it
 * every 2 s — while a failure that may pass (controller unreachable, nothing cached) is retried
 * in the process with growing pauses until the controller answers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startNotifyListener, type NotifyListener } from '../fixtures/systemd/notify-listener';
import { startServer, type TestServer } from '../helpers/http-server';
import { closedPort } from '../helpers/net';
import { waitFor } from '../helpers/wait';
import { BUNDLE, makeImageRoot } from '../../scripts/lib/fake-instance';

let sockDir: string;
let listener: NotifyListener;
before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  sockDir = mkdtempSync(path.join(tmpdir(), 'ca-notify-'));
  listener = await startNotifyListener(path.join(sockDir, 'notify'));
});
after(() => {
  listener.stop();
  rmSync(sockDir, { recursive: true, force: true });
});

function startRun(root: string) {
  const child = spawn(process.execPath, [BUNDLE, 'run', '--root', root, '--log-level', 'info'], {
    env: { ...process.env, NOTIFY_SOCKET: listener.socket },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { text: '' };
  child.stdout?.on('data', (d: Buffer) => (out.text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out.text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exited };
}

test('a terminal refusal stops run with exit 5, says why in STATUS= and the log, and is not retried', async () => {
  const server = await startServer((_req, res) => res.writeHead(403, { 'content-type': 'text/plain' }).end('token revoked\n'));
  const image = makeImageRoot(`${server.url}/payload/php.member-1?token=t`);
  try {
    const run = startRun(image.root);
    const code = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    if (code === 'still running') run.child.kill('SIGKILL');
    assert.equal(code, 5, run.out.text);
    assert.equal(server.requests.length, 1, 'asked once, not again and again');
    assert.match(run.out.text, /stopped, not restarted \(exit 5\): .*403.*fix the cause, then: systemctl restart cartridge-agent/);
    await waitFor('the STATUS= of the stop', () => listener.messages.some((m) => /STATUS=stopped, not restarted \(exit 5\)/.test(m.msg)), 5_000);
  } finally {
    await server.close();
    image.remove();
  }
});

test('an unreachable controller with nothing cached is retried in the process until it answers', async () => {
  const port = await closedPort();
  const image = makeImageRoot(`http://127.0.0.1:${port}/payload/php.member-1?token=t`, { payload: { fetch: { deadlineSeconds: 1 } } });
  const run = startRun(image.root);
  let server: TestServer | undefined;
  try {
    await waitFor('a retry announced', () => /boot work failed \(exit 5\), retrying in \d+ s: gave up fetching/.test(run.out.text), 15_000, () => run.out.text);
    // (sent by systemd-notify children, so not from run's own pid)
    await waitFor('the retry in STATUS=', () => listener.messages.some((m) => /STATUS=boot work failed \(exit 5\), retrying in/.test(m.msg)), 5_000);
    assert.equal(run.child.exitCode, null, 'still running, not exited for a restart');
    // The controller comes up on that port: the next attempt gets the payload, READY=1.
    server = await startServerOn(port);
    await waitFor('READY=1', () => listener.messages.some((m) => m.msg.includes('READY=1')), 90_000, () => run.out.text);
    assert.ok(existsSync(image.at('/run/cartridge-agent/payload.env')));
  } finally {
    run.child.kill('SIGTERM');
    await run.exited;
    await server?.close();
    image.remove();
  }
});

/** A payload server on a given port (the one that was closed). */
async function startServerOn(port: number): Promise<TestServer> {
  const http = await import('node:http');
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('SERVICE_NAME=php,PORTS=80'));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, port, requests: [], close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}
