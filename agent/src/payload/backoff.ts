/**
 * Retry timing. Pure. Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
 * a fleet of instances booting together does not hammer the controller in lockstep.
 */

/** Delay before retry number `attempt` (0-based): uniform in [0, min(cap, base·2^attempt)), whole ms. */
export function backoffDelayMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  const r = random();
  // random() is [0, 1); clamp anyway so an injected 1 cannot reach the ceiling.
  return Math.min(Math.floor(r * ceiling), Math.max(0, Math.ceil(ceiling) - 1));
}

/**
 * `Retry-After` → milliseconds to wait, or undefined when absent or unreadable. Both forms of
 * RFC 9110 §10.2.3: delay-seconds, and an HTTP-date (a date in the past means 0).
 */
export function parseRetryAfterMs(header: string | undefined, now: number = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // HTTP-date (IMF-fixdate and the obsolete forms Date.parse reads); needs a weekday or month name.
  if (!/[A-Za-z]{3}/.test(value)) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
