import assert from 'node:assert/strict';
import { PayloadError } from '../../agent/src/errors';

/** `fn` throws a PayloadError matching `pattern` whose message does not contain `secret`. */
export function refused(fn: () => unknown, pattern: RegExp, secret?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PayloadError, `expected PayloadError, got ${String(err)}`);
    assert.match(err.message, pattern);
    if (secret !== undefined) assert.ok(!err.message.includes(secret), `error leaks the value: ${err.message}`);
    return true;
  });
}
