/** FileTransaction on a real file system: all staged files change together, or none does. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { WriteError } from '../../agent/src/errors';
import { FileTransaction } from '../../agent/src/io/staged-write';

const base = mkdtempSync(path.join(tmpdir(), 'txn-'));
after(() => rmSync(base, { recursive: true, force: true }));

test('commit replaces every staged file, with its mode, and leaves no temp files', async () => {
  const a = path.join(base, 'one', 'a');
  const b = path.join(base, 'two', 'b');
  mkdirSync(path.dirname(a), { recursive: true });
  writeFileSync(a, 'old a');
  const txn = new FileTransaction();
  await txn.stage(a, 'new a', { mode: 0o600, stage: 'exports' });
  await txn.stage(b, Buffer.from('new b'), { mode: 0o640, stage: 'cache' });
  assert.equal(readFileSync(a, 'utf8'), 'old a', 'nothing changes before the commit');
  assert.deepEqual(txn.targets, [a, b]);
  await txn.commit();
  assert.equal(readFileSync(a, 'utf8'), 'new a');
  assert.equal(readFileSync(b, 'utf8'), 'new b');
  assert.equal(statSync(b).mode & 0o777, 0o640);
  assert.deepEqual([...readdirSync(path.dirname(a)), ...readdirSync(path.dirname(b))].sort(), ['a', 'b']);
});

test('a failure while staging the second file leaves the first target as it was', async () => {
  const a = path.join(base, 'three', 'a');
  mkdirSync(path.dirname(a), { recursive: true });
  writeFileSync(a, 'old a');
  writeFileSync(path.join(base, 'not-a-dir'), 'x');
  const txn = new FileTransaction();
  await txn.stage(a, 'new a', { mode: 0o600, stage: 'exports' });
  await assert.rejects(txn.stage(path.join(base, 'not-a-dir', 'b'), 'b', { mode: 0o600, stage: 'cache' }), (err: unknown) => {
    assert.ok(err instanceof WriteError);
    assert.equal(err.stage, 'cache');
    assert.match(err.message, /^cache: cannot write .*not-a-dir\/b: cannot create the directory/);
    return true;
  });
  await txn.discard();
  assert.equal(readFileSync(a, 'utf8'), 'old a');
  assert.deepEqual(readdirSync(path.dirname(a)), ['a']);
});

test('a rename that fails discards the rest and names the file', async () => {
  const a = path.join(base, 'four', 'a');
  const blocked = path.join(base, 'four', 'blocked');
  const c = path.join(base, 'four', 'c');
  mkdirSync(path.join(blocked, 'child'), { recursive: true });
  const txn = new FileTransaction();
  await txn.stage(a, 'a', { mode: 0o600, stage: 'exports' });
  await txn.stage(blocked, 'b', { mode: 0o600, stage: 'firewall record' });
  await txn.stage(c, 'c', { mode: 0o600, stage: 'cache' });
  await assert.rejects(txn.commit(), /^WriteError: firewall record: cannot write .*blocked: cannot rename/);
  assert.deepEqual(readdirSync(path.dirname(a)).sort(), ['a', 'blocked'], 'c was discarded, no temp files');
});

test('the same target twice in one transaction is a bug, refused', async () => {
  const txn = new FileTransaction();
  const a = path.join(base, 'five');
  await txn.stage(a, '1', { mode: 0o600, stage: 'x' });
  await assert.rejects(txn.stage(a, '2', { mode: 0o600, stage: 'x' }), /staged twice/);
  await txn.discard();
});
