/**
 * The small part of MIME (RFC 2045/2046) that cloud-init style user data uses: header
 * blocks, Content-Type parameters, multipart bodies and transfer encodings. Works on Buffers
 * through latin1 strings (one char per byte), so binary parts survive untouched.
 */
import { PayloadError } from '../errors';

export interface MimeEntity {
  /** Lower-cased header names; folded lines joined. */
  headers: Map<string, string>;
  body: Buffer;
}

export interface ContentType {
  /** Lower-cased `type/subtype`; `text/plain` when the header is absent (RFC 2045 default). */
  type: string;
  params: Map<string, string>;
}

const HEADER_LINE = /^([!-9;-~]+):[ \t]*(.*)$/;
/**
 * The mbox envelope line (`From nobody Mon Jan  1 00:00:00 2024`) that Python's email module
 * writes first with unixfrom=True and skips when it reads an entity (feedparser, so
 * cloud-init): it is not a header.
 */
const UNIX_FROM = /^From [^\r\n]*(?:\r?\n|$)/;

/** Split a header block from its body. `where` names the entity in errors (e.g. "MIME part 2"). */
export function parseEntity(buf: Buffer, where: string): MimeEntity {
  const text = buf.toString('latin1').replace(UNIX_FROM, '');
  const end = /\r?\n\r?\n/.exec(text);
  // A part may start with its blank line (no headers at all): then everything is body.
  const startsBlank = /^\r?\n/.exec(text);
  const headerText = startsBlank ? '' : end ? text.slice(0, end.index) : text;
  const bodyStart = startsBlank ? startsBlank[0].length : end ? end.index + end[0].length : text.length;
  const headers = new Map<string, string>();
  let last: string | undefined;
  headerText.split(/\r?\n/).forEach((line, i) => {
    if (line === '') return;
    if (/^[ \t]/.test(line) && last !== undefined) {
      headers.set(last, `${headers.get(last) ?? ''} ${line.trim()}`);
      return;
    }
    const m = HEADER_LINE.exec(line);
    if (!m) throw new PayloadError(`${where}: header line ${i + 1} is not "Name: value"`);
    last = (m[1] as string).toLowerCase();
    headers.set(last, (m[2] as string).trim());
  });
  return { headers, body: Buffer.from(text.slice(bodyStart), 'latin1') };
}

/** `multipart/mixed; boundary="abc"` → { type, params }. Quoted parameter values may hold `;`. */
export function parseContentType(value: string | undefined): ContentType {
  const params = new Map<string, string>();
  if (value === undefined || value.trim() === '') return { type: 'text/plain', params };
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const paramRe = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g;
  for (const m of value.slice(Math.max(semi, 0)).matchAll(paramRe)) {
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    params.set((m[1] as string).toLowerCase(), raw);
  }
  return { type, params };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Body parts of a multipart body. The line break before a delimiter belongs to the delimiter
 * (RFC 2046 §5.1.1), so part bodies are exact. The preamble and epilogue are dropped; a missing
 * close delimiter is tolerated as Python's email package (and so cloud-init) does.
 */
export function splitMultipart(body: Buffer, boundary: string, where: string): Buffer[] {
  if (boundary === '' || boundary.length > 70) {
    throw new PayloadError(`${where}: multipart boundary must be 1-70 characters (RFC 2046)`);
  }
  const text = body.toString('latin1');
  const delimiter = new RegExp(`(?:^|\\r?\\n)--${escapeRegExp(boundary)}(--)?[ \\t]*(?:\\r?\\n|$)`, 'g');
  const marks = [...text.matchAll(delimiter)];
  if (marks.length === 0) throw new PayloadError(`${where}: multipart body has no "--${boundary}" boundary line`);
  const parts: Buffer[] = [];
  for (let i = 0; i < marks.length; i++) {
    const mark = marks[i] as RegExpMatchArray;
    if (mark[1] === '--') break; // close delimiter: the rest is epilogue
    const start = (mark.index as number) + mark[0].length;
    const next = marks[i + 1];
    const end = next ? (next.index as number) : text.length;
    parts.push(Buffer.from(text.slice(start, end), 'latin1'));
  }
  return parts;
}

function decodeQuotedPrintable(text: string): Buffer {
  const noSoftBreaks = text.replace(/=[ \t]*\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < noSoftBreaks.length; i++) {
    const c = noSoftBreaks.charCodeAt(i);
    const hex = noSoftBreaks.slice(i + 1, i + 3);
    if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** Undo Content-Transfer-Encoding. Unknown encodings are an error rather than garbage. */
export function decodeTransferEncoding(body: Buffer, encoding: string | undefined, where: string): Buffer {
  const cte = (encoding ?? '7bit').trim().toLowerCase();
  switch (cte) {
    case '7bit':
    case '8bit':
    case 'binary':
      return body;
    case 'base64': {
      const compact = body.toString('latin1').replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) {
        throw new PayloadError(`${where}: Content-Transfer-Encoding is base64 but the body is not valid base64`);
      }
      return Buffer.from(compact, 'base64');
    }
    case 'quoted-printable':
      return decodeQuotedPrintable(body.toString('latin1'));
    default:
      throw new PayloadError(`${where}: unsupported Content-Transfer-Encoding "${cte}" (use base64, quoted-printable, 7bit, 8bit or binary)`);
  }
}
