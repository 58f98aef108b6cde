/**
 * Stratos `launch-params`: one line of `KEY=VALUE` pairs joined by `,`, no escaping
 * (autoscaler BasicPayloadData + addToPayload). Stratos' own parsers split on every `,` and
 * `=` and so cut values that contain them; ours keeps such values whole:
 *
 *  - a pair's name ends at its FIRST `=`; everything after it, `=` included, is value;
 *  - a `,` ends the value only when it is directly followed by `NAME=` with NAME a valid
 *    payload name (^[A-Z_][A-Z0-9_]*$). Any other `,` is part of the value, so
 *    `MB_URLS=tcp://a:1883,tcp://b:1883` and `OPTS=-Xmx1g,-Dx=y` survive. A value that
 *    itself contains `,NAME=` cannot be written in this format: use dotenv or JSON;
 *  - an empty value stays "" (Stratos turns it, and "null", into None; we keep both as text);
 *  - one trailing line break is ignored; any other line break is an error.
 */
import { PayloadError } from '../errors';

const PAIR_START = /,(?=[A-Z_][A-Z0-9_]*=)/g;

export function parseLaunchParams(text: string): Array<[string, string]> {
  // Blank text holds no pairs, whatever its line breaks (the caller decides if empty is allowed).
  if (text.trim() === '') return [];
  const line = text.replace(/\r?\n$/, '');
  const newline = line.search(/[\r\n]/);
  if (newline >= 0) {
    throw new PayloadError(`launch-params: line break at position ${newline + 1}; this format is one line (use dotenv for several lines)`, { position: newline + 1 });
  }
  const entries: Array<[string, string]> = [];
  let start = 0;
  const cuts = [...line.matchAll(PAIR_START)].map((m) => m.index as number);
  for (const end of [...cuts, line.length]) {
    const pair = line.slice(start, end);
    const eq = pair.indexOf('=');
    if (eq < 0) {
      // Only the first pair can lack `=`: later pairs start at `,NAME=` by construction.
      throw new PayloadError(`launch-params: position ${start + 1}: expected NAME=VALUE, found no "="`, { position: start + 1 });
    }
    entries.push([pair.slice(0, eq), pair.slice(eq + 1)]);
    start = end + 1;
  }
  return entries;
}
