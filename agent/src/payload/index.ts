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
}

export function payloadDigest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function buildPayload(bytes: Buffer, opts: BuildPayloadOptions): Payload {
  if (bytes.length > opts.maxBytes) {
    throw new PayloadError(`payload is ${bytes.length} bytes, more than the ${opts.maxBytes} allowed by payload.maxBytes`, { size: bytes.length, limit: opts.maxBytes });
  }
  const { format, entries } = parsePayload(bytes, opts.format);
  const vars = validateEntries(entries, { allowNames: opts.allowNames, maxKeys: opts.maxKeys });
  return { vars, format, digest: payloadDigest(bytes) };
}

export { decodeUserData, type UserDataLimits } from './userdata';
export { parsePayload, detectFormat, type PayloadFormatOption, type ParsedPayload } from './parse';
export {
  validateEntries, classifyName, NAME_PATTERN, SHELL_SPECIAL_NAMES, SHELL_SPECIAL_PREFIXES, DANGEROUS_NAMES, DANGEROUS_PREFIXES,
} from './validate';
export { backoffDelayMs, parseRetryAfterMs } from './backoff';
export { loadPublicKey, verifySignature } from './signature';
export { fetchPayload, type FetchPayloadOptions, type FetchedPayload } from './fetch';
