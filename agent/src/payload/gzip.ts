import { gunzipSync } from 'node:zlib';
import { PayloadError } from '../errors';

export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/**
 * Gunzip with the output capped at `maxBytes`: zlib stops as soon as the cap is reached, so a
 * gzip bomb (a few KiB that expand to GiB) costs nothing and is a clear error.
 */
export function gunzipCapped(buf: Buffer, maxBytes: number, what: string, limitKey: string): Buffer {
  try {
    return gunzipSync(buf, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new PayloadError(`${what} is gzip-compressed and expands to more than ${maxBytes} bytes (${limitKey}); refusing it`, { limit: maxBytes });
    }
    throw new PayloadError(`${what} starts with the gzip magic bytes (1f 8b) but does not decompress: ${e.message}`);
  }
}
