/** bootUntilDone's decisions: terminal failures stop at once and say why, others are retried. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BootResult } from '../../agent/src/boot';
import { bootUntilDone, RUN_TERMINAL_EXIT_CODES } from '../../agent/src/daemon/boot-retry';
import { ConfigError, ExitCode, FetchError, NoPointerError, PayloadError, WriteError } from '../../agent/src/errors';
import { createLogger } from '../../agent/src/log';

const log = createLogger('silent');
const RESULT = { via: 'fetched' } as unknown as BootResult;

function harness(failures: unknown[], signal = new AbortController().signal) {
  const said: string[] = [];
  let calls = 0;
  const run = bootUntilDone({
    boot: async () => {
      const f = failures[calls++];
      if (f !== undefined) throw f;
      return RESULT;
    },
    log,
    signal,
    say: (t) => said.push(t),
    drain: async () => undefined,
  });
  return { run, said, calls: () => calls };
}

test('terminal failures stop at the first attempt, saying why', async () => {
  const terminal = [
    new ConfigError('health.brokerUrls', 'bad'),
    new NoPointerError([{ source: 'personality', reason: 'absent' }]),
    new PayloadError('refused name PATH'),
    new FetchError('HTTP 403', true, { refusals: [{ urlDigest: 'x', refusal: 'revoked' }, { urlDigest: 'y', refusal: 'revoked' }] }),
  ];
  for (const err of terminal) {
    const h = harness([err]);
    await assert.rejects(h.run, (e: unknown) => e === err);
    assert.equal(h.calls(), 1);
    assert.match(h.said.at(-1) ?? '', new RegExp(`^stopped, not restarted \\(exit ${(err as { exitCode: number }).exitCode}\\): `));
  }
  const h = harness([terminal[3]]);
  await assert.rejects(h.run);
  assert.match(h.said[0] ?? '', /^stopped, not restarted \(exit 5\): the controller refused \(revoked\): HTTP 403/);
  assert.deepEqual([...RUN_TERMINAL_EXIT_CODES], [ExitCode.CONFIG, ExitCode.NO_POINTER, ExitCode.FETCH, ExitCode.PAYLOAD_REJECTED]);
});

test('a failure that may pass is retried until the boot work succeeds', async () => {
  const h = harness([new FetchError('unreachable', false), new WriteError('cache', '/x', 'ENOSPC')]);
  assert.equal(await h.run, RESULT);
  assert.equal(h.calls(), 3);
  // No pointer, but a metadata service was among the sources: the network may not be up yet.
  const net = harness([new NoPointerError([{ source: 'personality', reason: 'no file' }, { source: 'ec2', reason: 'EHOSTUNREACH' }])]);
  assert.equal(await net.run, RESULT);
  assert.match(net.said[0] ?? '', /^boot work failed \(exit 4\), retrying in/);
  assert.match(h.said[0] ?? '', /^boot work failed \(exit 5\), retrying in \d+ s: unreachable/);
  assert.match(h.said[1] ?? '', /^boot work failed \(exit 7\), retrying in \d+ s: cache: cannot write \/x/);
});

test('a stop while waiting to retry ends it without an error', async () => {
  const stop = new AbortController();
  const h = harness([new FetchError('unreachable', false)], stop.signal);
  setTimeout(() => stop.abort(), 50);
  assert.equal(await h.run, null);
  assert.equal(h.calls(), 1);
});
