/**
 * User data → what it points at (PayloadRef). Pure: bytes in, a URL list or inline payload
 * bytes out, or a PayloadError saying exactly what the user data is and why it is refused.
 *
 * Order, following cloud-init (user_data.py `convert_string`) where it applies:
 *  1. Unwrap whole-body layers, at most MAX_LAYERS deep:
 *     - gzip, by the magic bytes 1f 8b (decompressed with the output capped);
 *     - base64 of the whole body (EC2 consoles and some tools encode twice). It is decoded only
 *       when the body, whitespace ignored, is canonical padded base64 AND the result is gzip
 *       or printable UTF-8 that looks like user data (starts with `#` or `{`, or contains `=`,
 *       `:`). Payloads are never mangled: `KEY=` is valid base64 but decodes to "(F", which
 *       looks like nothing, and `ABCD` decodes to binary; a body that is one `NAME=` / `NAME==`
 *       assignment is never decoded at all.
 *  2. MIME (`mime-version:` in the first 4096 bytes, case-insensitive, as cloud-init): take the
 *     one part of type text/x-cartridge-payload (see ./userdata-mime).
 *  3. Other cloud-init formats (`#cloud-config`, `#!` scripts, …) as the whole user data are
 *     refused: they are not for us, and guessing would turn a script into "payload".
 *  4. `#include` / `#include-once`: one http(s) URL per line, `#` lines are comments (a URL may
 *     also follow `#include ` on the same line, as cloud-init allows). Unlike cloud-init, which
 *     fetches and merges every URL, the URLs are MIRRORS of one payload: the fetcher tries them
 *     in order and uses the first that answers.
 *  5. One non-empty line that is an http(s) URL: a pointer.
 *  6. Anything else: the inline payload itself.
 *
 * payload.maxUserDataBytes bounds the raw bytes, every decoded step, and the bytes all gzip
 * layers and MIME parts inflate to IN TOTAL; a time limit and the stop signal bound the rest
 * (see ./decode-budget). Async: inflating runs off the event loop, so SIGTERM is heard.
 */
import { PayloadError } from '../errors';
import type { PayloadRef } from './types';
import { DecodeBudget, USER_DATA_BUDGET_KEY as LIMIT_KEY } from './decode-budget';
import { gunzipBudgeted, isGzip } from './gzip';
import { findOurPart, looksLikeMime } from './userdata-mime';
import { isPrintableText } from './utf8';

export interface UserDataLimits {
  /** payload.maxUserDataBytes */
  maxBytes: number;
  /** The agent's stop signal: a stop ends the decode at the next chunk or part. */
  signal?: AbortSignal;
  /** Wall-time limit of the whole decode (default DECODE_TIME_LIMIT_MS). */
  timeLimitMs?: number;
  /** Test seam: the clock the time limit is measured with. */
  now?: () => number;
}

const MAX_LAYERS = 4;

export function checkUserDataSize(buf: Buffer, maxBytes: number, what: string): void {
  if (buf.length > maxBytes) {
    throw new PayloadError(`${what} is ${buf.length} bytes, more than the ${maxBytes} allowed by ${LIMIT_KEY}`, { size: buf.length, limit: maxBytes });
  }
}

export async function decodeUserData(bytes: Buffer, limits: UserDataLimits): Promise<PayloadRef> {
  const max = limits.maxBytes;
  checkUserDataSize(bytes, max, 'user data');
  const budget = new DecodeBudget({
    maxInflatedBytes: max,
    signal: limits.signal,
    ...(limits.timeLimitMs !== undefined ? { timeLimitMs: limits.timeLimitMs } : {}),
    ...(limits.now ? { now: limits.now } : {}),
  });
  const content = await unwrapLayers(bytes, max, budget);
  if (looksLikeMime(content)) {
    return classifyContent(await findOurPart(content, max, budget), 'our MIME part');
  }
  refuseForeignFormats(content);
  return classifyContent(content, 'user data');
}

async function unwrapLayers(bytes: Buffer, max: number, budget: DecodeBudget): Promise<Buffer> {
  let current = bytes;
  for (let layer = 0; layer < MAX_LAYERS; layer++) {
    await budget.pause('user data');
    if (isGzip(current)) {
      current = await gunzipBudgeted(current, budget, layer === 0 ? 'user data' : `user data (layer ${layer + 1})`);
      continue;
    }
    const decoded = decodeWholeBodyBase64(current);
    if (decoded === undefined) return current;
    checkUserDataSize(decoded, max, 'base64-decoded user data');
    current = decoded;
  }
  throw new PayloadError(`user data is wrapped in more than ${MAX_LAYERS} layers of gzip/base64; refusing it`);
}

const SINGLE_ASSIGNMENT = /^[A-Z_][A-Z0-9_]*={1,2}$/;
const LOOKS_LIKE_USER_DATA = /^\s*[#{]|[=:]/;

/** The decoded bytes when `buf` is whole-body base64 of something that is user data; else undefined. */
export function decodeWholeBodyBase64(buf: Buffer): Buffer | undefined {
  // Cheap rejection first: base64 is ASCII; most payloads contain `,`, `_`, `"` or newlines-with-`=`.
  const compact = buf.toString('latin1').replace(/[ \t\r\n]+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || SINGLE_ASSIGNMENT.test(compact)) return undefined;
  const decoded = Buffer.from(compact, 'base64');
  // Non-canonical encodings (stray bits in the last char) are not what a base64 encoder wrote.
  if (decoded.toString('base64') !== compact) return undefined;
  if (isGzip(decoded)) return decoded;
  if (!isPrintableText(decoded)) return undefined;
  return LOOKS_LIKE_USER_DATA.test(decoded.toString('utf8')) ? decoded : undefined;
}

/** cloud-init's type prefixes (handlers/__init__.py), longest first so `#cloud-config-archive` wins over `#cloud-config`. */
const FOREIGN_PREFIXES: ReadonlyArray<[string, string]> = [
  ['#cloud-config-archive', 'a cloud-init #cloud-config-archive document'],
  ['#cloud-config-jsonp', 'a cloud-init #cloud-config-jsonp document'],
  ['#cloud-config', 'a cloud-init #cloud-config document'],
  ['#cloud-boothook', 'a cloud-init #cloud-boothook script'],
  ['#part-handler', 'a cloud-init #part-handler'],
  ['#upstart-job', 'a cloud-init #upstart-job'],
  ['## template: jinja', 'a cloud-init jinja template'],
  ['#!', 'a script (#!)'],
];

/** Compression formats other than gzip (magic bytes from tiny-cloud): name them instead of parsing binary as a payload. */
const OTHER_COMPRESSION: ReadonlyArray<[Buffer, string]> = [
  [Buffer.from('fd377a585a00', 'hex'), 'xz'],
  [Buffer.from('28b52ffd', 'hex'), 'zstd'],
  [Buffer.from('04224d18', 'hex'), 'lz4'],
  [Buffer.from('894c5a', 'hex'), 'lzop'],
];

function refuseForeignFormats(content: Buffer): void {
  const hint = `Give cartridge-agent its own MIME part of type text/x-cartridge-payload, or make the whole user data the payload or its URL`;
  for (const [magic, name] of OTHER_COMPRESSION) {
    if (content.subarray(0, magic.length).equals(magic)) {
      throw new PayloadError(`user data is ${name}-compressed; only gzip is supported`);
    }
  }
  if (/^BZh[1-9]1AY&SY/.test(content.subarray(0, 10).toString('latin1'))) {
    throw new PayloadError('user data is bzip2-compressed; only gzip is supported');
  }
  const head = content.subarray(0, 64).toString('latin1').trimStart().toLowerCase();
  for (const [prefix, what] of FOREIGN_PREFIXES) {
    if (head.startsWith(prefix)) {
      throw new PayloadError(`user data is not for cartridge-agent: it is ${what}. ${hint}`, { userDataType: prefix });
    }
  }
}

function isHttpUrl(text: string): boolean {
  if (!/^https?:\/\/\S+$/i.test(text)) return false;
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

/** `#include` list, lone URL, or inline payload. `what` names the bytes in errors. */
export function classifyContent(content: Buffer, what: string): PayloadRef {
  const head = content.subarray(0, 64).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('#include')) return { kind: 'urls', urls: parseIncludeList(content.toString('utf8'), what) };
  const lines = content.toString('utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 1 && isHttpUrl(lines[0] as string)) return { kind: 'urls', urls: [lines[0] as string] };
  return { kind: 'inline', bytes: content };
}

export function parseIncludeList(text: string, what: string): string[] {
  const urls: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    let line = raw.trim();
    const lower = line.toLowerCase();
    if (lower.startsWith('#include-once')) line = line.slice('#include-once'.length).trim();
    else if (lower.startsWith('#include')) line = line.slice('#include'.length).trim();
    if (line === '' || line.startsWith('#')) return;
    if (!isHttpUrl(line)) {
      const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(line)?.[1];
      const why = scheme && !/^https?$/i.test(scheme) ? `scheme "${scheme}:" is not supported` : 'expected one http(s) URL per line';
      throw new PayloadError(`${what}: #include line ${i + 1} is not an http(s) URL (${why})`, { line: i + 1 });
    }
    urls.push(line);
  });
  if (urls.length === 0) throw new PayloadError(`${what}: #include list has no URL`);
  return urls;
}
