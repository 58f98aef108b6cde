/**
 * dotenv: `NAME=VALUE` lines. What is accepted, exactly:
 *  - blank lines and lines starting with `#` (after indentation) are skipped;
 *  - `export NAME=VALUE` is the same as `NAME=VALUE`; spaces around `=` are allowed;
 *  - 'single quotes': literal, nothing is special, may span lines;
 *  - "double quotes": escapes \n \r \t \" \\ \$ \` and nothing else (an unknown escape is an
 *    error, so a Windows path is not silently changed); may span lines. `$` is never
 *    expanded: there is no interpolation, `\$` exists only so files written for shells work;
 *  - after a closing quote only whitespace and a `# comment` may follow;
 *  - unquoted: trimmed; ` #` (whitespace then `#`) starts a comment; a `#` inside a word and
 *    quotes inside the value are literal;
 *  - any other line is an error naming its line number;
 *  - CRLF line endings are read as LF (inside quoted values too).
 * Errors name the line and the key, never the value.
 */
import { PayloadError } from '../errors';

const ASSIGNMENT = /^[ \t]*(?:export[ \t]+)?([^\s=#]+)[ \t]*=[ \t]*/;
const DOUBLE_QUOTE_ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\', $: '$', '`': '`' };

export function parseDotenv(text: string): Array<[string, string]> {
  const src = text.replace(/\r\n/g, '\n');
  const entries: Array<[string, string]> = [];
  let pos = 0;
  let line = 1;
  while (pos < src.length) {
    const eol = src.indexOf('\n', pos);
    const lineEnd = eol < 0 ? src.length : eol;
    const current = src.slice(pos, lineEnd);
    const trimmed = current.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      [pos, line] = [lineEnd + 1, line + 1];
      continue;
    }
    const m = ASSIGNMENT.exec(current);
    if (!m) throw new PayloadError(`dotenv line ${line}: expected NAME=VALUE (optionally after "export ")`, { line });
    const name = m[1] as string;
    const valueStart = pos + m[0].length;
    const quote = src[valueStart];
    if (quote === '"' || quote === "'") {
      const { value, end, endLine } = readQuoted(src, valueStart, quote, name, line);
      const restEnd = src.indexOf('\n', end);
      const rest = src.slice(end, restEnd < 0 ? src.length : restEnd);
      if (!/^[ \t]*(#.*)?$/.test(rest)) {
        throw new PayloadError(`dotenv line ${endLine}: unexpected text after the closing quote of ${name}`, { line: endLine, key: name });
      }
      entries.push([name, value]);
      [pos, line] = [restEnd < 0 ? src.length : restEnd + 1, endLine + 1];
      continue;
    }
    const raw = src.slice(valueStart, lineEnd);
    const comment = raw.search(/[ \t]#/);
    entries.push([name, (comment < 0 ? raw : raw.slice(0, comment)).trim()]);
    [pos, line] = [lineEnd + 1, line + 1];
  }
  return entries;
}

function readQuoted(src: string, start: number, quote: string, name: string, line: number): { value: string; end: number; endLine: number } {
  let value = '';
  let endLine = line;
  for (let i = start + 1; i < src.length; i++) {
    const c = src[i] as string;
    if (c === quote) return { value, end: i + 1, endLine };
    if (c === '\n') endLine++;
    if (c === '\\' && quote === '"') {
      const next = src[i + 1];
      const replacement = next === undefined ? undefined : DOUBLE_QUOTE_ESCAPES[next];
      if (replacement === undefined) {
        throw new PayloadError(
          `dotenv line ${endLine}: unknown escape in the double-quoted value of ${name} (allowed: \\n \\r \\t \\" \\\\ \\$ \\\`; use single quotes for literal backslashes)`,
          { line: endLine, key: name },
        );
      }
      value += replacement;
      i++;
      continue;
    }
    value += c;
  }
  throw new PayloadError(`dotenv line ${line}: the ${quote === '"' ? 'double' : 'single'} quote opening the value of ${name} is never closed`, { line, key: name });
}
