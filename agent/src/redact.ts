/**
 * Secrets never reach the log. Values under secret-looking names are replaced, and URLs lose
 * their credentials and query values (personality URLs carry per-instance tokens).
 */

const SECRET_NAME = /PASSW(OR)?D|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|SIGNATURE/i;
export const REDACTED = '[REDACTED]';

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/**
 * `https://user:pw@host/p?token=abc` → `https://host/p?token=[REDACTED]`; the same for broker
 * URLs (mqtt(s)://, ws(s)://, tcp://, ssl://). Non-URLs pass through.
 */
export function redactUrl(text: string): string {
  return text.replace(/\b(https?|mqtts?|wss?|tcp|ssl):\/\/[^\s"'<>]+/gi, (match) => {
    let url: URL;
    try {
      url = new URL(match);
    } catch {
      return match;
    }
    url.username = '';
    url.password = '';
    for (const key of [...url.searchParams.keys()]) url.searchParams.set(key, REDACTED);
    // URLSearchParams percent-encodes the brackets; keep the marker readable.
    return url.toString().replace(/%5BREDACTED%5D/g, REDACTED);
  });
}

/** Deep copy of a log object with secret-named fields and URL tokens redacted. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (depth > 8) return value;
  if (typeof value === 'string') return redactUrl(value);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  if (value instanceof Error) return value;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretName(k) && v !== null && v !== undefined && v !== '' ? REDACTED : redactDeep(v, depth + 1);
    }
    return out;
  }
  return value;
}

/** Payload names with secret values shown as redacted: safe to log. */
export function describeVars(vars: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of vars) out[k] = isSecretName(k) ? REDACTED : redactUrl(v.length > 200 ? `${v.slice(0, 200)}…` : v);
  return out;
}
