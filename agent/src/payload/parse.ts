/**
 * Payload bytes → ordered entries. Pure. Three formats (DESIGN.md): Stratos launch-params,
 * dotenv, JSON object of strings. Errors say where (line, position, byte offset) and which key,
 * never a value: values are often passwords and tokens.
 *
 * `auto` picks the format from the shape of the text:
 *  - JSON when the first non-whitespace character is `{`;
 *  - dotenv when there is more than one non-empty line, or the first non-empty line starts with
 *    `#` or `export `;
 *  - otherwise launch-params (one line).
 */
import { PayloadError } from '../errors';
import type { PayloadFormat } from './types';
import { parseDotenv } from './parse-dotenv';
import { parseJsonPayload } from './parse-json';
import { parseLaunchParams } from './parse-launch-params';
import { decodeUtf8, findInvalidUtf8 } from './utf8';

export type PayloadFormatOption = 'auto' | PayloadFormat;
export type PayloadEntries = Array<[string, string]>;

export interface ParsedPayload {
  format: PayloadFormat;
  entries: PayloadEntries;
}

export function parsePayload(bytes: Buffer, format: PayloadFormatOption): ParsedPayload {
  const text = decodeUtf8(bytes);
  if (text === undefined) {
    throw new PayloadError(`payload is not valid UTF-8 (first bad byte at offset ${findInvalidUtf8(bytes)})`, { offset: findInvalidUtf8(bytes) });
  }
  const chosen = format === 'auto' ? detectFormat(text) : format;
  switch (chosen) {
    case 'json':
      return { format: chosen, entries: parseJsonPayload(text) };
    case 'dotenv':
      return { format: chosen, entries: parseDotenv(text) };
    case 'launch-params':
      return { format: chosen, entries: parseLaunchParams(text) };
  }
}

export function detectFormat(text: string): PayloadFormat {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) return 'json';
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const first = (lines[0] ?? '').trimStart();
  if (lines.length > 1 || first.startsWith('#') || /^export[ \t]/.test(first)) return 'dotenv';
  return 'launch-params';
}
