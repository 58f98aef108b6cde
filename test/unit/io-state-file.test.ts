/** Validated reads of the agent's own state files: absent is null, damaged names the file. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { StateFileError } from '../../agent/src/errors';
import { objectWith, readStateFile, stringRecord } from '../../agent/src/io/state-file';

const dir = mkdtempSync(path.join(tmpdir(), 'state-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const check = objectWith({ pid: 'number', name: 'string|null', list: 'array', inner: 'object' });

test('absent is null; a good file is returned', async () => {
  assert.equal(await readStateFile(path.join(dir, 'missing.json'), 'the thing', check), null);
  const file = path.join(dir, 'good.json');
  writeFileSync(file, JSON.stringify({ pid: 1, name: null, list: [], inner: {}, extra: true }));
  assert.deepEqual(await readStateFile(file, 'the thing', check), { pid: 1, name: null, list: [], inner: {}, extra: true });
});

test('damaged files are StateFileErrors naming the file, the role and the problem', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['torn', '{"pid": 1, "na', /the thing is damaged: not valid JSON/],
    ['array', '[1, 2]', /the thing is damaged: not a JSON object/],
    ['null', 'null', /the thing is damaged: not a JSON object/],
    ['wrong type', '{"pid": "1", "name": "x", "list": [], "inner": {}}', /field "pid" should be number, is "1"/],
    ['missing', '{"pid": 1, "list": [], "inner": {}}', /field "name" should be string or null, is missing/],
    ['inner array', '{"pid": 1, "name": "x", "list": [], "inner": []}', /field "inner" should be object/],
  ];
  for (const [label, text, problem] of cases) {
    const file = path.join(dir, `${label}.json`);
    writeFileSync(file, text);
    await assert.rejects(readStateFile(file, 'the thing', check), (err: unknown) => {
      assert.ok(err instanceof StateFileError, label);
      assert.equal(err.exitCode, 11);
      assert.equal(err.file, file);
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.match(err.message, problem, label);
      return true;
    });
  }
});

test('an unreadable path (a directory) is a StateFileError, not a crash', async () => {
  await assert.rejects(readStateFile(dir, 'the thing', check), (err: unknown) => err instanceof StateFileError && /cannot read the thing: EISDIR/.test(err.message));
});

test('stringRecord accepts only objects of strings', () => {
  assert.equal(stringRecord({ A: 'x', B: '' }), null);
  assert.equal(stringRecord({ A: 1 }), 'the value of "A" is not a string');
  assert.equal(stringRecord('x'), 'not a JSON object');
});
