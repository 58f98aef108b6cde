import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../agent/src/log';

test('the real logger writes JSON lines with secrets redacted in fields and messages', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'ca-log-')), 'log');
  const fd = openSync(file, 'w');
  const log = createLogger('debug', fd);
  log.info({ url: 'https://ctl/p?token=tok-123', vars: { MB_PASSWORD: 'pw-456', PORTS: '80' } }, 'fetching https://u:pw-789@ctl/p?token=tok-123');
  log.debug({ headers: { 'X-aws-ec2-metadata-token': 'imds-abc' } }, 'imds');
  closeSync(fd);
  const text = readFileSync(file, 'utf8');
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].level, 'info');
  assert.equal(lines[0].vars.PORTS, '80');
  for (const secret of ['tok-123', 'pw-456', 'pw-789', 'imds-abc']) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
});
