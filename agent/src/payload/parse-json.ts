/**
 * JSON payload: one object whose values are all strings. JSON.parse alone is not enough: it
 * keeps the LAST of duplicate keys silently, reorders integer-like keys, and its error
 * messages quote the input (which may hold secrets). So the syntax is checked with
 * JSON.parse, errors are reduced to line and column, and the entries are read in document
 * order from the string tokens, which keeps duplicates for validation to refuse.
 */
import { PayloadError } from '../errors';

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

// eslint-disable-next-line no-control-regex -- JSON strings may not hold raw control characters
const TOKEN = /\s+|"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}[\]:,]/y;

/** V8 gives no position for a bad token ("Unexpected token …" quotes the input instead): find it. */
function firstLexicalError(text: string): number | undefined {
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex;
    if (!TOKEN.test(text)) return at;
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

export function parseJsonPayload(text: string): Array<[string, string]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const pos = /position (\d+)/.exec((err as Error).message)?.[1] ?? firstLexicalError(text);
    const where = pos !== undefined ? ` at ${lineAndColumn(text, Number(pos))}` : '';
    throw new PayloadError(`JSON payload is not valid JSON${where}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new PayloadError(`JSON payload must be an object of strings, not ${describe(parsed)}`);
  }
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') {
      throw new PayloadError(
        `JSON payload key ${JSON.stringify(key)} has ${describe(value)} value; every value must be a string — quote it, e.g. ${JSON.stringify(key)}: "…"`,
        { key },
      );
    }
  }
  // Now it is known to be a flat object of strings: its string tokens alternate key, value.
  const tokens = [...text.matchAll(/"(?:[^"\\]|\\.)*"/g)].map((m) => JSON.parse(m[0]) as string);
  const entries: Array<[string, string]> = [];
  for (let i = 0; i + 1 < tokens.length; i += 2) entries.push([tokens[i] as string, tokens[i + 1] as string]);
  return entries;
}
