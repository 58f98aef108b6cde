import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelayMs, parseRetryAfterMs } from '../../agent/src/payload/backoff';

/** Deterministic PRNG (mulberry32) so the distribution test is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('backoffDelayMs', () => {
  it('is random * min(cap, base * 2^attempt), whole ms', () => {
    assert.equal(backoffDelayMs(0, 100, 10_000, () => 0.5), 50);
    assert.equal(backoffDelayMs(3, 100, 10_000, () => 0.5), 400);
    assert.equal(backoffDelayMs(3, 100, 10_000, () => 0.999), 799);
    assert.equal(backoffDelayMs(2, 100, 10_000, () => 0), 0);
  });

  it('never reaches the ceiling, even with random() = 1', () => {
    assert.equal(backoffDelayMs(0, 100, 10_000, () => 1), 99);
    assert.equal(backoffDelayMs(20, 100, 1_000, () => 1), 999);
  });

  it('is capped, also for huge attempt numbers', () => {
    assert.equal(backoffDelayMs(10, 250, 10_000, () => 0.5), 5000);
    assert.equal(backoffDelayMs(1000, 250, 10_000, () => 0.5), 5000);
    assert.ok(Number.isFinite(backoffDelayMs(5000, 250, 10_000, () => 0.9)));
  });

  it('stays within [0, ceiling) and spreads uniformly (full jitter)', () => {
    const random = seeded(42);
    const n = 20_000;
    const ceiling = 800; // attempt 3, base 100
    const buckets = new Array(4).fill(0);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const d = backoffDelayMs(3, 100, 10_000, random);
      assert.ok(d >= 0 && d < ceiling && Number.isInteger(d), `out of range: ${d}`);
      buckets[Math.floor(d / (ceiling / 4))]++;
      sum += d;
    }
    for (const count of buckets) assert.ok(Math.abs(count - n / 4) < n * 0.02, `uneven buckets: ${buckets.join(',')}`);
    assert.ok(Math.abs(sum / n - ceiling / 2) < ceiling * 0.02, `mean ${sum / n}`);
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');

  it('reads delay-seconds', () => {
    assert.equal(parseRetryAfterMs('1', now), 1000);
    assert.equal(parseRetryAfterMs(' 120 ', now), 120_000);
    assert.equal(parseRetryAfterMs('0', now), 0);
  });

  it('reads HTTP-dates relative to now; past dates are 0', () => {
    assert.equal(parseRetryAfterMs('Sun, 01 Mar 2026 12:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfterMs('Sun, 01 Mar 2026 11:00:00 GMT', now), 0);
  });

  it('ignores absent or unreadable values', () => {
    for (const v of [undefined, '', '-1', '1.5', 'soon', '12abc', 'Mon, 99 Foo 2026']) assert.equal(parseRetryAfterMs(v, now), undefined, String(v));
  });
});
