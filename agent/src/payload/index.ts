/**
 * The payload stage: user data → pointer, fetch, parse, validate. `buildPayload` is the pure
 * core the rest of the agent uses once it holds the payload bytes.
 */
import { createHash } from 'node:crypto';
import { PayloadError } from '../errors';
import { parsePayload, type PayloadFormatOption } from './parse';
import type { Payload } from './types';
import { validateEntries } from './validate';

export interface BuildPayloadOptions {
  format: PayloadFormatOption;
  allowNames: readonly string[];
  maxKeys: number;
  maxBytes: number;
  /** payload.allowEmpty: accept a payload with no variables (default: refuse it). */
  allowEmpty?: boolean;
  /** Where the bytes came from, for errors: a redacted URL, a seed file, "the cached payload …". */
  source?: string;
}

export function payloadDigest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function buildPayload(bytes: Buffer, opts: BuildPayloadOptions): Payload {
  if (bytes.length > opts.maxBytes) {
    throw new PayloadError(`payload is ${bytes.length} bytes, more than the ${opts.maxBytes} allowed by payload.maxBytes`, { size: bytes.length, limit: opts.maxBytes });
  }
  const { format, entries } = parsePayload(bytes, opts.format);
  if (entries.length === 0 && !opts.allowEmpty) refuseEmpty(bytes, opts.source ?? 'the payload source');
  const vars = validateEntries(entries, { allowNames: opts.allowNames, maxKeys: opts.maxKeys });
  return { vars, format, digest: payloadDigest(bytes) };
}

/**
 * An empty body or one without a single variable is far more often a controller bug (a
 * truncated store, a template that rendered nothing) than an intent: exporting it would
 * wipe every variable the instance runs with. Refused unless payload.allowEmpty says otherwise.
 */
function refuseEmpty(bytes: Buffer, source: string): never {
  const what = bytes.length === 0 ? 'is empty (0 bytes)' : `has no variables (${bytes.length} bytes that hold no NAME=VALUE)`;
  throw new PayloadError(
    `the payload from ${source} ${what}; refused, so the last good payload and exports stay as they are. Set payload.allowEmpty to true to accept an empty payload`,
    { size: bytes.length, setting: 'payload.allowEmpty' },
  );
}

export { decodeUserData, type UserDataLimits } from './userdata';
export { parsePayload, detectFormat, type PayloadFormatOption, type ParsedPayload } from './parse';
export {
  validateEntries, classifyName, NAME_PATTERN, SHELL_SPECIAL_NAMES, SHELL_SPECIAL_PREFIXES, DANGEROUS_NAMES, DANGEROUS_PREFIXES,
} from './validate';
export { backoffDelayMs, parseRetryAfterMs } from './backoff';
export { loadPublicKey, verifySignature } from './signature';
export { fetchPayload, type FetchPayloadOptions, type FetchedPayload } from './fetch';
