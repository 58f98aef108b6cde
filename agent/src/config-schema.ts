/**
 * A tiny validator for agent.json: every rule knows the dotted key it checks, so an invalid
 * config is an error naming the key — never a silent default. Unknown keys are refused too
 * (a typo must not silently fall back to a default).
 *
 * Each rule also carries its `spec`: plain data saying what it accepts (type, range, allowed
 * values, default, description). That is the one description of agent.json: the JSON Schema,
 * docs/config.md's key tables and agent.json(5) are generated from it (scripts/gen-docs.ts),
 * so they cannot drift from what the validator does.
 */
import { ConfigError } from './errors';

export type Spec =
  /** `label`: what the docs call such a string ("absolute path"); `pattern` must have no flags (JSON Schema has none). */
  | { kind: 'string'; nonEmpty?: boolean; pattern?: RegExp; label?: string }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'boolean' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'nullable'; of: Spec }
  | { kind: 'array'; of: Spec; unique?: boolean; nonEmpty?: boolean }
  | { kind: 'optional'; of: Spec; default: unknown; description: string }
  | { kind: 'object'; fields: Readonly<Record<string, Spec>> };

export interface Rule<T> {
  (value: unknown, key: string): T;
  readonly spec: Spec;
}

function rule<T>(spec: Spec, check: (value: unknown, key: string) => T): Rule<T> {
  return Object.assign(check, { spec });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

export const str = (opts: { nonEmpty?: boolean; pattern?: RegExp; hint?: string; label?: string } = {}): Rule<string> =>
  rule({ kind: 'string', nonEmpty: opts.nonEmpty, pattern: opts.pattern, label: opts.label }, (v, key) => {
    if (typeof v !== 'string') throw new ConfigError(key, `expected a string, got ${describe(v)}`);
    if (opts.nonEmpty && v.length === 0) throw new ConfigError(key, 'must not be empty');
    if (opts.pattern && !opts.pattern.test(v)) {
      throw new ConfigError(key, `${opts.hint ?? `must match ${opts.pattern}`}, got ${describe(v)}`);
    }
    return v;
  });

export const absPath = (): Rule<string> => str({ pattern: /^\//, hint: 'must be an absolute path', label: 'absolute path' });

/** The schema's approximation of "new URL() parses it": scheme, a host, no blanks. */
const HTTP_URL = /^https?:\/\/[^\s/?#]+([/?#]\S*)?$/;

export const httpUrl = (): Rule<string> =>
  rule({ kind: 'string', pattern: HTTP_URL, label: 'http(s) URL' }, (v, key) => {
    const s = str({ nonEmpty: true })(v, key);
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new ConfigError(key, `not a valid URL: ${describe(s)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(key, `must be an http(s) URL, got ${describe(s)}`);
    }
    if (!HTTP_URL.test(s)) throw new ConfigError(key, `must be an http(s) URL with a host and no blanks, got ${describe(s)}`);
    return s.replace(/\/+$/, '');
  });

export const int = (min: number, max: number): Rule<number> =>
  rule({ kind: 'integer', min, max }, (v, key) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(key, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
    }
    return v;
  });

export const bool = (): Rule<boolean> =>
  rule({ kind: 'boolean' }, (v, key) => {
    if (typeof v !== 'boolean') throw new ConfigError(key, `expected true or false, got ${describe(v)}`);
    return v;
  });

export const oneOf = <T extends string>(choices: readonly T[]): Rule<T> =>
  rule({ kind: 'enum', values: choices }, (v, key) => {
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      throw new ConfigError(key, `expected one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  });

export const nullable = <T>(inner: Rule<T>): Rule<T | null> =>
  rule({ kind: 'nullable', of: inner.spec }, (v, key) => (v === null ? null : inner(v, key)));

export const arrayOf = <T>(item: Rule<T>, opts: { unique?: boolean; nonEmpty?: boolean } = {}): Rule<T[]> =>
  rule({ kind: 'array', of: item.spec, unique: opts.unique, nonEmpty: opts.nonEmpty }, (v, key) => {
    if (!Array.isArray(v)) throw new ConfigError(key, `expected an array, got ${describe(v)}`);
    if (opts.nonEmpty && v.length === 0) throw new ConfigError(key, 'must not be empty');
    const out = v.map((x, i) => item(x, `${key}[${i}]`));
    if (opts.unique) {
      const seen = new Set<unknown>();
      out.forEach((x, i) => {
        if (seen.has(x)) throw new ConfigError(`${key}[${i}]`, `duplicate entry ${describe(x)}`);
        seen.add(x);
      });
    }
    return out;
  });

type Shape = Record<string, Rule<unknown>>;
type Parsed<S extends Shape> = { [K in keyof S]: S[K] extends Rule<infer T> ? T : never };

/** A missing key takes `fallback`; a present one must pass `inner`. Every key says what it is for. */
export const optional = <T>(inner: Rule<T>, fallback: T, description: string): Rule<T> =>
  rule({ kind: 'optional', of: inner.spec, default: fallback, description }, (v, key) => (v === undefined ? fallback : inner(v, key)));

/**
 * An object: each key is checked by its rule (wrap it in `optional` to give a default), an
 * unknown key is an error naming it. A missing object is treated as `{}`, so nested defaults
 * apply.
 */
export const object = <S extends Shape>(shape: S): Rule<Parsed<S>> =>
  rule({ kind: 'object', fields: Object.fromEntries(Object.entries(shape).map(([k, r]) => [k, r.spec])) }, (v, key) => {
    const input = v === undefined ? {} : v;
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new ConfigError(key || '(top level)', `expected an object, got ${describe(input)}`);
    }
    const record = input as Record<string, unknown>;
    for (const k of Object.keys(record)) {
      if (!(k in shape)) {
        const known = Object.keys(shape).join(', ');
        throw new ConfigError(key ? `${key}.${k}` : k, `unknown key (known keys here: ${known})`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, r] of Object.entries(shape)) {
      const child = key ? `${key}.${k}` : k;
      if (record[k] === undefined && r.spec.kind !== 'optional' && r.spec.kind !== 'object') {
        throw new ConfigError(child, 'is required');
      }
      out[k] = r(record[k], child);
    }
    return out as Parsed<S>;
  });
