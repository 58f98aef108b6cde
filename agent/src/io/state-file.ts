/**
 * Reads of the agent's own JSON state files (payload.json, status.json, firewall.json, cache
 * entries, the credential). Another process, a crash or an operator may have left anything
 * there, so every read is checked: absent is `null`, anything else that is not what the
 * caller's `check` accepts is a StateFileError naming the file and what is wrong — never a
 * TypeError from deep inside the caller.
 */
import { readFile } from 'node:fs/promises';
import { StateFileError } from '../errors';

/** Returns the problem with a parsed value, or null when it is fit to use. */
export type StateCheck = (value: unknown) => string | null;

/** `what` names the file's role in messages, e.g. "the exported payload". */
export async function readStateFile<T>(file: string, what: string, check: StateCheck): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateFileError(file, `cannot read ${what}: ${(err as Error).message}`);
  }
  return parseStateText<T>(text, file, what, check);
}

/** The pure half of readStateFile, for text already read. */
export function parseStateText<T>(text: string, file: string, what: string, check: StateCheck): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(file, `${what} is damaged: not valid JSON (${(err as Error).message})`);
  }
  const problem = check(value);
  if (problem !== null) throw new StateFileError(file, `${what} is damaged: ${problem}`);
  return value as T;
}

type FieldType = 'string' | 'number' | 'boolean' | 'object' | 'string|null' | 'object|null' | 'array';

/**
 * A StateCheck for a JSON object with the given field types (extra fields allowed). Enough
 * for every state file the agent writes; anything finer goes into the caller's own check.
 */
export function objectWith(fields: Record<string, FieldType>): StateCheck {
  return (value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
    const o = value as Record<string, unknown>;
    for (const [name, type] of Object.entries(fields)) {
      const v = o[name];
      const ok = type.split('|').some((t) => {
        if (t === 'null') return v === null;
        if (t === 'array') return Array.isArray(v);
        if (t === 'object') return v !== null && typeof v === 'object' && !Array.isArray(v);
        return typeof v === t;
      });
      if (!ok) return `field "${name}" should be ${type.replace('|', ' or ')}, is ${v === undefined ? 'missing' : JSON.stringify(v)?.slice(0, 40)}`;
    }
    return null;
  };
}

/** A StateCheck for an object whose every value is a string (the exported payload). */
export const stringRecord: StateCheck = (value) => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') return `the value of "${k}" is not a string`;
  return null;
};
