/**
 * The run lock on a real file system: taken atomically, held against a live holder (waited
 * for, or refused at once when the holder is the daemon), broken when the holder died, and
 * released only by its owner.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { BusyError } from '../../agent/src/errors';
import { acquireRunLock, bootId, decodeHolder, encodeHolder, LOCK_FILE, processStartTime } from '../../agent/src/io/run-lock';

const base = mkdtempSync(path.join(tmpdir(), 'run-lock-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(base, `state-${n++}`);

/** A pid that ran and has exited (so its lock is stale). */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

test('holder text round-trips and fits in an inode', () => {
  const h = { pid: 4194304, startTime: '123456789012', boot: 'a1b2c3d4', command: 'firewall restore' };
  const text = encodeHolder(h);
  assert.ok(text.length <= 60, `${text.length} bytes: no longer a fast symlink`);
  assert.deepEqual(decodeHolder(text), h);
  assert.equal(decodeHolder('garbage'), null);
});

test('processStartTime reads field 22 even when the command name holds spaces and parentheses', () => {
  const proc = path.join(base, 'proc');
  mkdirSync(path.join(proc, '42'), { recursive: true });
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  writeFileSync(path.join(proc, '42', 'stat'), `42 (we) ird (name) S ${fields.join(' ')}\n`);
  // Field 22 is the 20th after "pid (comm)": state is field 3 ("S"), so field 22 = fields[18].
  assert.equal(processStartTime(42, proc), fields[18]);
  assert.equal(processStartTime(43, proc), null);
  assert.match(processStartTime(process.pid) ?? '', /^\d+$/);
});

test('acquire, release, acquire again', async () => {
  const dir = freshDir();
  const lock = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
  assert.match(readlinkSync(lock.file), new RegExp(`^${process.pid} \\d+ [0-9a-f]{8} once$`));
  await lock.release();
  assert.equal(existsSync(lock.file), false);
  const again = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
  await again.release();
});

test('a live holder is waited for, then the second run is refused naming it', async () => {
  const dir = freshDir();
  const lock = await acquireRunLock({ stateDir: dir, command: 'firewall apply', waitMs: 0 });
  try {
    await assert.rejects(acquireRunLock({ stateDir: dir, command: 'once', waitMs: 200, pollMs: 20 }), (err: unknown) => {
      assert.ok(err instanceof BusyError);
      assert.equal(err.exitCode, 10);
      assert.match(err.message, new RegExp(`cartridge-agent firewall apply \\(pid ${process.pid}, since .*\\) is still working on this root after 200 ms \\(lock .*${LOCK_FILE}\\)`));
      return true;
    });
  } finally {
    await lock.release();
  }
});

test('a holder that releases while the second run waits lets it in', async () => {
  const dir = freshDir();
  const first = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
  setTimeout(() => void first.release(), 100);
  const second = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 5_000, pollMs: 10 });
  await second.release();
});

test('the daemon as holder is refused at once, with what to do instead', async () => {
  const dir = freshDir();
  const lock = await acquireRunLock({ stateDir: dir, command: 'run', waitMs: 0 });
  try {
    await assert.rejects(acquireRunLock({ stateDir: dir, command: 'once', waitMs: 60_000 }), /is running on this root .* reload it \(systemctl reload cartridge-agent/);
  } finally {
    await lock.release();
  }
});

test('a lock whose holder died, or that is not a lock at all, is broken', async () => {
  const dir = freshDir();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  const stale = [
    encodeHolder({ pid: deadPid(), startTime: '1', boot: bootId(), command: 'once' }),
    // pid alive (ours) but another start time: the pid was reused
    encodeHolder({ pid: process.pid, startTime: '1', boot: bootId(), command: 'run' }),
    // pid and start time as ours, but taken in an earlier boot
    encodeHolder({ pid: process.pid, startTime: processStartTime(process.pid) ?? '1', boot: bootId() === '00000000' ? '11111111' : '00000000', command: 'run' }),
    'half written',
  ];
  for (const target of stale) {
    symlinkSync(target, file);
    const lock = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
    assert.match(readlinkSync(file), new RegExp(`^${process.pid} `), target);
    await lock.release();
  }
  writeFileSync(file, 'a regular file someone left');
  const lock = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
  await lock.release();
});

test('release leaves a lock that is no longer ours alone', async () => {
  const dir = freshDir();
  const lock = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
  unlinkSync(lock.file);
  const other = encodeHolder({ pid: 1, startTime: processStartTime(1) ?? '0', boot: bootId(), command: 'run' });
  symlinkSync(other, lock.file);
  await lock.release();
  assert.equal(readlinkSync(lock.file), other);
});

test('a stop while waiting ends the wait', async () => {
  const dir = freshDir();
  const lock = await acquireRunLock({ stateDir: dir, command: 'once', waitMs: 0 });
  try {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 50);
    await assert.rejects(acquireRunLock({ stateDir: dir, command: 'once', waitMs: 60_000, signal: stop.signal }), /stopped while waiting for cartridge-agent once/);
  } finally {
    await lock.release();
  }
});
