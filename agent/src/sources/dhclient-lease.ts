/**
 * ISC dhclient lease files (dhclient.leases(5)): `lease { … }` blocks appended over time, so
 * the last complete block is the current lease. Parsed with a real tokenizer, because quoted
 * strings may hold any of `{ } ; #` (`filename "http://boot/${netX}";`,
 * `option domain-search "a;b";`), and lease6 files nest blocks (`ia-na … { iaaddr … { } }`).
 * Pure: text in, data out.
 */
import { isIPv4 } from 'node:net';

export type DhclientToken = { kind: 'word' | 'string'; text: string } | { kind: '{' | '}' | ';' };

export interface DhclientStatement {
  /** Words and strings before the `;` or the block: `['option', 'dhcp-server-identifier', '10.1.1.1']`. */
  words: string[];
  /** The statements inside `{ … }`, or null for a plain `…;` statement. */
  block: DhclientStatement[] | null;
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b' };

/**
 * Tokens of a lease file: words, quoted strings (backslash escapes decoded, as dhclient's own
 * lexer does: \n \t \r \b, octal \ooo, hex \xHH, anything else stands for itself), and the
 * punctuation `{ } ;`. `#` starts a comment to the end of the line, outside strings only.
 * An unterminated string ends the input: a file cut short mid-write yields its complete part.
 */
export function tokenizeDhclient(text: string): DhclientToken[] {
  const tokens: DhclientToken[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol + 1;
    } else if (c === '{' || c === '}' || c === ';') {
      tokens.push({ kind: c });
      i++;
    } else if (c === '"') {
      const s = readString(text, i + 1);
      if (!s) break;
      tokens.push({ kind: 'string', text: s.value });
      i = s.end;
    } else {
      const start = i;
      while (i < text.length && !/[\s{};"#]/.test(text[i] as string)) i++;
      tokens.push({ kind: 'word', text: text.slice(start, i) });
    }
  }
  return tokens;
}

/** The string starting after an opening quote at `from`: its value and the index after the closing quote, or null if unterminated. */
function readString(text: string, from: number): { value: string; end: number } | null {
  let value = '';
  let i = from;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"') return { value, end: i + 1 };
    if (c !== '\\') {
      value += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === undefined) return null;
    const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
    const hex = next === 'x' ? /^[0-9A-Fa-f]{1,2}/.exec(text.slice(i + 2, i + 4)) : null;
    if (octal) {
      value += String.fromCharCode(parseInt(octal[0], 8) & 0xff);
      i += 1 + octal[0].length;
    } else if (hex) {
      value += String.fromCharCode(parseInt(hex[0], 16));
      i += 2 + hex[0].length;
    } else {
      value += SIMPLE_ESCAPES[next] ?? next;
      i += 2;
    }
  }
  return null;
}

/**
 * Statements of a token list, blocks nested. A block or statement the input ends inside (a
 * file cut short) is dropped; a stray `}` at the top level is skipped.
 */
export function parseDhclientStatements(tokens: readonly DhclientToken[]): DhclientStatement[] {
  const top: DhclientStatement[] = [];
  // Open blocks, innermost last; each holds the list its statements go into.
  const stack: { words: string[]; body: DhclientStatement[] }[] = [];
  let words: string[] = [];
  for (const t of tokens) {
    const into = stack.length ? (stack[stack.length - 1] as { body: DhclientStatement[] }).body : top;
    if (t.kind === 'word' || t.kind === 'string') {
      words.push(t.text);
    } else if (t.kind === ';') {
      if (words.length) into.push({ words, block: null });
      words = [];
    } else if (t.kind === '{') {
      stack.push({ words, body: [] });
      words = [];
    } else {
      const open = stack.pop();
      words = [];
      if (!open) continue;
      const parent = stack.length ? (stack[stack.length - 1] as { body: DhclientStatement[] }).body : top;
      parent.push({ words: open.words, block: open.body });
    }
  }
  return top;
}

/** dhclient lease file: the server identifier of the last complete lease that has one, or null. */
export function parseDhclientLeases(text: string): string | null {
  let last: string | null = null;
  for (const st of parseDhclientStatements(tokenizeDhclient(text))) {
    if (st.words.length !== 1 || st.words[0] !== 'lease' || !st.block) continue;
    for (const inner of st.block) {
      const [kw, name, value, ...rest] = inner.words;
      if (kw === 'option' && name === 'dhcp-server-identifier' && value && rest.length === 0 && isIPv4(value)) last = value;
    }
  }
  return last;
}

/** Does this text look like a dhclient lease file (a top-level `lease` or `lease6` block)? */
export function looksLikeDhclient(text: string): boolean {
  return parseDhclientStatements(tokenizeDhclient(text)).some((st) => st.block && /^lease6?$/.test(st.words[0] ?? ''));
}
