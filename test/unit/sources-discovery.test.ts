import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SourceName } from '../../agent/src/config';
import { NoPointerError, SourceError } from '../../agent/src/errors';
import { createSources, discoverPointer, probeAll } from '../../agent/src/sources';
import type { PointerSource, SourceContext, SourceResult } from '../../agent/src/sources/types';
import { makeContext } from '../fixtures/sources/context';

/** A scripted source: answers from `script` in turn (the last answer repeats) and records calls. */
class FakeSource implements PointerSource {
  calls = 0;
  constructor(
    readonly name: SourceName,
    private readonly script: Array<SourceResult | Error>,
  ) {}
  async probe(_ctx: SourceContext): Promise<SourceResult> {
    const step = this.script[Math.min(this.calls, this.script.length - 1)] as SourceResult | Error;
    this.calls++;
    if (step instanceof Error) throw step;
    return step;
  }
}

const absent = (reason: string): SourceResult => ({ status: 'absent', reason });
const found = (source: SourceName, id: string): SourceResult => ({
  status: 'found',
  discovery: { source, instanceId: id, origin: `/fake/${source}`, content: { kind: 'url', url: `https://ctl.example/${id}` } },
});

const ctxWith = (waitSeconds: number, pollIntervalMs = 50, signal?: AbortSignal) =>
  makeContext({ config: { sources: { waitSeconds, pollIntervalMs } }, signal });

test('sources are tried in order and the first found wins; later ones are not probed', async () => {
  const a = new FakeSource('personality', [absent('no file at /x')]);
  const b = new FakeSource('configdrive', [found('configdrive', 'uuid-b')]);
  const c = new FakeSource('nocloud', [found('nocloud', 'iid-c')]);
  const d = await discoverPointer(ctxWith(0), undefined, [a, b, c]);
  assert.equal(d.source, 'configdrive');
  assert.equal(d.instanceId, 'uuid-b');
  assert.deepEqual([a.calls, b.calls, c.calls], [1, 1, 0]);
});

test('keeps polling until a source finds something, reporting what it waits for', async () => {
  const a = new FakeSource('personality', [absent('no file at /etc/p'), absent('no file at /etc/p'), found('personality', 'late')]);
  const b = new FakeSource('nocloud', [absent('no user-data in /seed')]);
  const status: string[] = [];
  const started = Date.now();
  const d = await discoverPointer(ctxWith(10, 50), (s) => status.push(s), [a, b]);
  assert.equal(d.instanceId, 'late');
  assert.equal(a.calls, 3);
  assert.equal(b.calls, 2);
  assert.equal(status.length, 2);
  assert.match(status[0] as string, /waiting for a payload pointer \(\d+ s left\): personality: no file at \/etc\/p; nocloud: no user-data in \/seed/);
  // Two sleeps of ~pollIntervalMs, far below the 10 s deadline.
  assert.ok(Date.now() - started < 2_000);
});

test('after the deadline, NoPointerError lists every source with its last reason', async () => {
  const a = new FakeSource('personality', [absent('first reason'), absent('later reason')]);
  const b = new FakeSource('ec2', [absent('IMDS unreachable')]);
  const started = Date.now();
  await assert.rejects(discoverPointer(ctxWith(1, 100), undefined, [a, b]), (err: unknown) => {
    assert.ok(err instanceof NoPointerError);
    assert.deepEqual(err.reasons, [
      { source: 'personality', reason: 'later reason' },
      { source: 'ec2', reason: 'IMDS unreachable' },
    ]);
    assert.match(err.message, /personality: later reason; ec2: IMDS unreachable/);
    return true;
  });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1_000 && elapsed < 2_500, `elapsed ${elapsed} ms`);
  assert.ok(a.calls >= 5, `polled ${a.calls} times`);
});

test('waitSeconds 0 means exactly one round', async () => {
  const a = new FakeSource('personality', [absent('nothing')]);
  await assert.rejects(discoverPointer(ctxWith(0), undefined, [a]), NoPointerError);
  assert.equal(a.calls, 1);
});

test('a SourceError propagates at once: no later source, no waiting', async () => {
  const broken = new SourceError('personality', '/etc/p', 'first line is not an http(s) URL');
  const a = new FakeSource('personality', [broken]);
  const b = new FakeSource('nocloud', [found('nocloud', 'x')]);
  const started = Date.now();
  await assert.rejects(discoverPointer(ctxWith(30), undefined, [a, b]), (err) => err === broken);
  assert.equal(b.calls, 0);
  assert.ok(Date.now() - started < 1_000);
});

test('stopping (signal aborted) ends the wait early with NoPointerError', async () => {
  const ac = new AbortController();
  const a = new FakeSource('personality', [absent('no file')]);
  setTimeout(() => ac.abort(), 150);
  const started = Date.now();
  await assert.rejects(discoverPointer(ctxWith(30, 1_000, ac.signal), undefined, [a]), (err: unknown) => {
    assert.ok(err instanceof NoPointerError);
    assert.match(err.message, /personality: no file; discovery: stopped before a pointer was found/);
    return true;
  });
  assert.ok(Date.now() - started < 1_000);
});

test('probeAll: one round over all sources, no short-circuit, errors reported not thrown', async () => {
  const a = new FakeSource('personality', [found('personality', 'p')]);
  const b = new FakeSource('configdrive', [new SourceError('configdrive', '/cd/meta_data.json', 'not valid JSON')]);
  const c = new FakeSource('nocloud', [absent('no seed')]);
  const report = await probeAll(ctxWith(60), [a, b, c]);
  assert.deepEqual(report.map((r) => r.source), ['personality', 'configdrive', 'nocloud']);
  assert.equal('result' in report[0]! && report[0].result.status, 'found');
  assert.deepEqual(report[1], { source: 'configdrive', error: 'configdrive (/cd/meta_data.json): not valid JSON' });
  assert.deepEqual(report[2], { source: 'nocloud', result: absent('no seed') });
  assert.deepEqual([a.calls, b.calls, c.calls], [1, 1, 1]);
});

test('createSources builds one source per configured name, in order', () => {
  const names: SourceName[] = ['ec2', 'personality', 'cloudstack', 'nocloud', 'openstack', 'configdrive'];
  assert.deepEqual(createSources(names).map((s) => s.name), names);
});
