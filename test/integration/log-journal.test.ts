/**
 * Under systemd (stderr is the journal: JOURNAL_STREAM names its device and inode) every line
 * the bundle writes starts with its syslog priority, so `journalctl -p err` finds errors; the
 * JSON is unchanged. Anywhere else the lines are plain. (The boot test checks it in journald.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { isJournalStream, journalPrefix } from '../../agent/src/io/journal';
import { BUNDLE, makeImageRoot } from '../../scripts/lib/fake-instance';

const dir = mkdtempSync(path.join(tmpdir(), 'log-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run the bundle with stderr on a file; `journal`: JOURNAL_STREAM names that file (as systemd would). */
async function stderrOf(args: string[], journal: 'this stream' | 'another stream' | 'unset'): Promise<string[]> {
  const file = path.join(dir, `stderr-${Math.random().toString(16).slice(2)}`);
  const fd = openSync(file, 'w');
  const st = fstatSync(fd);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (journal === 'this stream') env.JOURNAL_STREAM = `${st.dev}:${st.ino}`;
  if (journal === 'another stream') env.JOURNAL_STREAM = `${st.dev}:${st.ino + 1}`;
  const child = spawn(process.execPath, [BUNDLE, ...args], { stdio: ['ignore', 'ignore', fd], env });
  closeSync(fd);
  await new Promise((resolve) => child.once('exit', resolve));
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

test('priorities: error 3, warn 4, info 6, debug 7; nothing outside the journal', () => {
  assert.deepEqual(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => journalPrefix(true, l)), ['<2>', '<3>', '<4>', '<6>', '<7>', '<7>']);
  assert.equal(journalPrefix(false, 'error'), '');
  assert.equal(isJournalStream(2, {}), false);
});

test('the bundle prefixes its JSON lines and its message line when stderr is the journal', async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build'`);
  // A refused pointer: info lines (discovering …), then an error (exit 4) as JSON and as a message.
  const image = makeImageRoot('not a url');
  try {
    const args = ['once', '--root', image.root];
    const lines = await stderrOf(args, 'this stream');
    assert.ok(lines.length >= 3, lines.join('\n'));
    for (const line of lines) assert.match(line, /^<[2-7]>/, `every line has a priority: ${line}`);
    const info = lines.find((l) => l.includes('"level":"info"'));
    const error = lines.find((l) => l.includes('"level":"error"'));
    assert.ok(info?.startsWith('<6>{"level":"info"'), info);
    assert.ok(error?.startsWith('<3>{"level":"error"'), error);
    assert.doesNotThrow(() => JSON.parse((error as string).slice(3)), 'the JSON after the prefix is intact');
    assert.match(lines.at(-1) ?? '', /^<3>cartridge-agent: personality/, 'the message line is an error too');

    for (const other of ['another stream', 'unset'] as const) {
      const plain = await stderrOf(args, other);
      for (const line of plain) assert.doesNotMatch(line, /^<\d>/, `${other}: ${line}`);
      assert.match(plain.at(-1) ?? '', /^cartridge-agent: personality/);
    }
  } finally {
    image.remove();
  }
});
