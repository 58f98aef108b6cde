/**
 * UTF-8 checks that report WHERE the bytes go wrong. TextDecoder's fatal mode only says
 * "invalid", and a payload author needs the byte offset to find a stray Latin-1 byte.
 */

/** Offset of the first byte that does not start a valid UTF-8 sequence, or -1 if all is valid. */
export function findInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i] as number;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return i;
    for (let k = 1; k <= need; k++) {
      const c = buf[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return -1;
}

/** Strict UTF-8 decode; `undefined` when the bytes are not UTF-8. A leading BOM is dropped. */
export function decodeUtf8(buf: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return undefined;
  }
}

/** C0 controls other than tab, LF, CR, and DEL: what binary data has and text does not. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** Valid UTF-8 without control characters: what a human-written payload or URL list looks like. */
export function isPrintableText(buf: Uint8Array): boolean {
  const text = decodeUtf8(buf);
  return text !== undefined && !CONTROL.test(text);
}
