/**
 * Finding OUR part in MIME multipart user data. Ours is the part with Content-Type
 * text/x-cartridge-payload (PAYLOAD_PART_CONTENT_TYPE); every other part belongs to
 * cloud-init or someone else and is left alone. Exactly one part of ours must exist:
 * none is an error listing what was found, two is ambiguous and refused.
 *
 * - Nested multipart/* parts are searched too.
 * - Our part's body is transfer-decoded (base64, quoted-printable, …) and, when it starts with
 *   the gzip magic bytes, decompressed.
 * - A gzip-typed part (application/gzip and the other names cloud-init accepts) is
 *   decompressed; cloud-init re-sniffs such parts by content, and ours can only be recognised
 *   by its MIME type, so the content counts only when it is itself a MIME document holding
 *   our part. Only its head is inflated to find out (looksLikeMime looks at 4096 bytes).
 * - All inflating shares the decode's DecodeBudget, and the walk pauses after every part, so
 *   neither a fan-out of parts nor a stop request can outlast the budget.
 */
import { PayloadError } from '../errors';
import { PAYLOAD_PART_CONTENT_TYPE } from '../protocol/payload-http';
import { USER_DATA_BUDGET_KEY, type DecodeBudget } from './decode-budget';
import { gunzipBudgeted, gunzipIfWanted, isGzip } from './gzip';
import { decodeTransferEncoding, parseContentType, parseEntity, splitMultipart } from './mime';

const MAX_DEPTH = 4;
/** How far cloud-init (and looksLikeMime) looks for `mime-version:`. */
const MIME_SNIFF_BYTES = 4096;

/** cloud-init's list of gzip part types (user_data.py). */
const GZIP_TYPES = new Set([
  'application/gzip', 'application/x-gzip', 'application/gzip-compressed', 'application/gzipped',
  'application/x-compress', 'application/x-compressed', 'application/x-gunzip', 'application/x-gzip-compressed',
]);

/** cloud-init's rule: `mime-version:` anywhere in the first 4096 bytes, any case. */
export function looksLikeMime(buf: Buffer): boolean {
  return buf.subarray(0, MIME_SNIFF_BYTES).toString('latin1').toLowerCase().includes('mime-version:');
}

interface Search {
  ours: Buffer[];
  /** Types of the parts that were not ours, for the error message. */
  others: string[];
}

/** The decoded body of our one part (not yet classified as URL list / inline). */
export async function findOurPart(message: Buffer, maxBytes: number, budget: DecodeBudget): Promise<Buffer> {
  const search: Search = { ours: [], others: [] };
  await visit(message, 'MIME user data', maxBytes, budget, 0, search);
  if (search.ours.length === 0) {
    const found = search.others.length > 0 ? [...new Set(search.others)].join(', ') : 'no parts';
    throw new PayloadError(
      `MIME user data has no part of type ${PAYLOAD_PART_CONTENT_TYPE} (found: ${found}); it is not for cartridge-agent`,
      { partTypes: search.others },
    );
  }
  if (search.ours.length > 1) {
    throw new PayloadError(`MIME user data has ${search.ours.length} parts of type ${PAYLOAD_PART_CONTENT_TYPE}; expected exactly one`);
  }
  return search.ours[0] as Buffer;
}

function checkSize(buf: Buffer, max: number, where: string): void {
  if (buf.length > max) throw new PayloadError(`${where} is ${buf.length} bytes, more than the ${max} allowed by ${USER_DATA_BUDGET_KEY}`);
}

async function visit(entityBytes: Buffer, where: string, max: number, budget: DecodeBudget, depth: number, search: Search): Promise<void> {
  await budget.pause(where);
  if (depth > MAX_DEPTH) throw new PayloadError(`${where}: MIME parts nested more than ${MAX_DEPTH} deep`);
  const entity = parseEntity(entityBytes, where);
  const { type, params } = parseContentType(entity.headers.get('content-type'));
  if (type.startsWith('multipart/')) {
    const boundary = params.get('boundary');
    if (boundary === undefined) throw new PayloadError(`${where}: ${type} without a boundary parameter`);
    const parts = splitMultipart(entity.body, boundary, where);
    for (const [i, part] of parts.entries()) await visit(part, `${where} part ${i + 1}`, max, budget, depth + 1, search);
    return;
  }
  if (type !== PAYLOAD_PART_CONTENT_TYPE && !GZIP_TYPES.has(type)) {
    search.others.push(type);
    return;
  }
  const body = decodeTransferEncoding(entity.body, entity.headers.get('content-transfer-encoding'), where);
  checkSize(body, max, `${where} (decoded)`);
  if (type === PAYLOAD_PART_CONTENT_TYPE) {
    search.ours.push(isGzip(body) ? await gunzipBudgeted(body, budget, where) : body);
    return;
  }
  if (!isGzip(body)) throw new PayloadError(`${where}: typed ${type} but the body is not gzip data`);
  const inner = await gunzipIfWanted(body, budget, where, { headBytes: MIME_SNIFF_BYTES, wanted: looksLikeMime });
  if (inner) await visit(inner, `${where} (gunzipped)`, max, budget, depth + 1, search);
  else search.others.push(`${type} (not MIME inside)`);
}
