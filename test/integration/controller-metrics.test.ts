/**
 * The controller's /metrics from a real `serve`, checked by Prometheus' own linter
 * (`promtool check metrics`, Debian's prometheus package): a build_info gauge, per-state member
 * gauges, and the error series counted where errors happen.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readServeInfo } from '../../controller-stub/src/serve';
import { startServeProcess, type ServeProcess } from '../fixtures/controller/serve-process';
import { requireCommands } from '../helpers/env';

let dir: string;
let serve: ServeProcess;
let httpUrl: string;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'controller-metrics-'));
  serve = await startServeProcess(path.join(dir, 'state'));
  httpUrl = readServeInfo(path.join(dir, 'state'))?.httpUrl ?? '';
  assert.match(httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
});
after(() => {
  serve?.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const metrics = async () => (await fetch(`${httpUrl}/metrics`)).text();

test('/metrics passes promtool, carries build_info and member gauges, counts errors where they happen', async (t) => {
  if (!requireCommands(t, 'promtool')) return;
  const before = await metrics();
  assert.match(before, /^cartridge_controller_build_info\{version="[^"]+",node="v\d+\.\d+\.\d+"\} 1$/m);
  for (const state of ['ONLINE', 'STALE', 'OFFLINE', 'GONE']) assert.match(before, new RegExp(`^cartridge_controller_members\\{state="${state}"\\} 0$`, 'm'));
  assert.match(before, /^cartridge_controller_payload_requests_total\{result="error"\} 0$/m);

  // A malformed payload path is an error where it happens: 400, counted.
  assert.equal((await fetch(`${httpUrl}/payload/%E0%A4%A`)).status, 400);
  const after = await metrics();
  assert.match(after, /^cartridge_controller_payload_requests_total\{result="error"\} 1$/m);
  assert.match(after, /^cartridge_controller_http_errors_total\{status="400"\} 1$/m);

  const lint = spawnSync('promtool', ['check', 'metrics'], { input: after, encoding: 'utf8' });
  assert.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
  assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'promtool has no remarks');
});
