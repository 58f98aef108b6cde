/**
 * The path of an HTTP request as the controller routes it (pure). Anything a well-behaved
 * client never sends — bad percent-encoding, control characters once decoded, an overlong or
 * unparsable target — is a BadRequestError naming what was wrong, which http.ts answers
 * with 400: a hostile path must never look like the controller's own failure (500).
 */

/** Longer than any real route (a payload path with its token is ~200 bytes). */
export const MAX_TARGET_BYTES = 2048;

export class BadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadRequestError';
  }
}

export interface RequestTarget {
  pathname: string;
  /** Decoded non-empty path segments. */
  parts: string[];
  query: URLSearchParams;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

export function parseRequestTarget(raw: string | undefined): RequestTarget {
  const text = raw ?? '/';
  if (text.length > MAX_TARGET_BYTES) throw new BadRequestError(`request path too long (${text.length} bytes, at most ${MAX_TARGET_BYTES})`);
  let url: URL;
  try {
    url = new URL(text, 'http://controller');
  } catch {
    throw new BadRequestError('the request target is not a valid URL path');
  }
  const parts = url.pathname.split('/').filter(Boolean).map((segment, i) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw new BadRequestError(`path segment ${i + 1} is not valid percent-encoding of UTF-8`);
    }
    if (CONTROL.test(decoded)) throw new BadRequestError(`path segment ${i + 1} contains a control character`);
    return decoded;
  });
  return { pathname: url.pathname, parts, query: url.searchParams };
}
