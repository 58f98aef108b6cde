/**
 * The server's own words for a refusal (the body of a 403/404/5xx: "reused", "expired",
 * "revoked" …), made safe to show: the body is hostile input that ends up on a terminal and
 * in the journal. At most MAX_REASON_BYTES are read; the text becomes one line of printable
 * characters (ANSI sequences dropped, control, format/bidi and unassigned characters
 * replaced), URL tokens redacted, at most MAX_REASON_CHARS long. A JSON body
 * `{"error": "…"}` (or `{"message": "…"}`) shows just its text.
 */
import type { Readable } from 'node:stream';
import { redactUrl } from '../redact';

export const MAX_REASON_BYTES = 4096;
export const MAX_REASON_CHARS = 200;

/** Read at most MAX_REASON_BYTES of a refusal's body, then hang up. Never throws: the reason is best effort. */
export async function readRefusalReason(body: Readable): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total >= MAX_REASON_BYTES) break;
    }
  } catch {
    // Cut off (timeout, reset): what arrived is still the server's reason.
  } finally {
    body.destroy();
  }
  return refusalReason(Buffer.concat(chunks).subarray(0, MAX_REASON_BYTES));
}

/** CSI (`ESC [ … final`), OSC (`ESC ] … BEL|ST`) and the other two-byte escapes. */
// eslint-disable-next-line no-control-regex -- matching escape sequences is the point
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]?/g;
/** Line breaks and tabs: become a space. */
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
/** Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned characters, and U+FFFD (bad UTF-8). */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\ufffd]/gu;

/** Pure: the body bytes → one safe line, or undefined when nothing printable is left. */
export function refusalReason(bytes: Buffer): string | undefined {
  const raw = bytes.toString('utf8');
  const text = (jsonErrorText(raw) ?? raw)
    .replace(ANSI, '')
    .replace(BREAKS, ' ')
    .replace(NON_PRINTABLE, '?')
    .replace(/ {2,}/g, ' ')
    .trim();
  if (text === '' || /^\?*$/.test(text)) return undefined;
  const safe = redactUrl(text);
  const chars = [...safe];
  return chars.length <= MAX_REASON_CHARS ? safe : `${chars.slice(0, MAX_REASON_CHARS - 1).join('')}…`;
}

function jsonErrorText(text: string): string | undefined {
  if (!text.trimStart().startsWith('{')) return undefined;
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    for (const key of ['error', 'message']) if (typeof value[key] === 'string') return value[key];
  } catch {
    // Not JSON after all (or cut at MAX_REASON_BYTES): shown as text.
  }
  return undefined;
}
