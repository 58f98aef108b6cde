/**
 * A tiny validator for agent.json: every rule knows the dotted key it checks, so an invalid
 * config is an error naming the key — never a silent default. Unknown keys are refused too
 * (a typo must not silently fall back to a default).
 */
import { ConfigError } from './errors';

export type Rule<T> = (value: unknown, key: string) => T;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

export const str =
  (opts: { nonEmpty?: boolean; pattern?: RegExp; hint?: string } = {}): Rule<string> =>
  (v, key) => {
    if (typeof v !== 'string') throw new ConfigError(key, `expected a string, got ${describe(v)}`);
    if (opts.nonEmpty && v.length === 0) throw new ConfigError(key, 'must not be empty');
    if (opts.pattern && !opts.pattern.test(v)) {
      throw new ConfigError(key, `${opts.hint ?? `must match ${opts.pattern}`}, got ${describe(v)}`);
    }
    return v;
  };

export const absPath = (): Rule<string> => str({ pattern: /^\//, hint: 'must be an absolute path' });

export const httpUrl = (): Rule<string> => (v, key) => {
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
  return s.replace(/\/+$/, '');
};

export const int =
  (min: number, max: number): Rule<number> =>
  (v, key) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(key, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
    }
    return v;
  };

export const bool = (): Rule<boolean> => (v, key) => {
  if (typeof v !== 'boolean') throw new ConfigError(key, `expected true or false, got ${describe(v)}`);
  return v;
};

export const oneOf =
  <T extends string>(choices: readonly T[]): Rule<T> =>
  (v, key) => {
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      throw new ConfigError(key, `expected one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  };

export const nullable =
  <T>(rule: Rule<T>): Rule<T | null> =>
  (v, key) =>
    v === null ? null : rule(v, key);

export const arrayOf =
  <T>(rule: Rule<T>, opts: { unique?: boolean; nonEmpty?: boolean } = {}): Rule<T[]> =>
  (v, key) => {
    if (!Array.isArray(v)) throw new ConfigError(key, `expected an array, got ${describe(v)}`);
    if (opts.nonEmpty && v.length === 0) throw new ConfigError(key, 'must not be empty');
    const out = v.map((item, i) => rule(item, `${key}[${i}]`));
    if (opts.unique) {
      const seen = new Set<unknown>();
      out.forEach((item, i) => {
        if (seen.has(item)) throw new ConfigError(`${key}[${i}]`, `duplicate entry ${describe(item)}`);
        seen.add(item);
      });
    }
    return out;
  };

type Shape = Record<string, Rule<unknown>>;
type Parsed<S extends Shape> = { [K in keyof S]: S[K] extends Rule<infer T> ? T : never };

/** A missing key takes `fallback`; a present one must pass `rule`. */
export const optional = <T>(rule: Rule<T>, fallback: T): Rule<T> =>
  acceptsUndefined((v, key) => (v === undefined ? fallback : rule(v, key)));

/**
 * An object: each key is checked by its rule (wrap it in `optional` to give a default), an
 * unknown key is an error naming it. A missing object is treated as `{}`, so nested defaults
 * apply.
 */
export const object = <S extends Shape>(shape: S): Rule<Parsed<S>> =>
  acceptsUndefined((v, key) => {
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
    for (const [k, rule] of Object.entries(shape)) {
      const child = key ? `${key}.${k}` : k;
      if (record[k] === undefined && !isOptionalOrObject(rule)) {
        throw new ConfigError(child, 'is required');
      }
      out[k] = rule(record[k], child);
    }
    return out as Parsed<S>;
  });

// Rules built by `optional` and `object` accept undefined; others do not.
const ACCEPTS_UNDEFINED = new WeakSet<Rule<unknown>>();
function acceptsUndefined<T>(rule: Rule<T>): Rule<T> {
  ACCEPTS_UNDEFINED.add(rule as Rule<unknown>);
  return rule;
}
function isOptionalOrObject(rule: Rule<unknown>): boolean {
  return ACCEPTS_UNDEFINED.has(rule);
}
