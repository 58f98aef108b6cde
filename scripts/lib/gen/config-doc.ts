/**
 * From the one description of agent.json (CONFIG_RULE's specs in agent/src/config.ts): the
 * list of keys with type, default and description, the JSON Schema, and docs/config.md's
 * markdown tables. Pure.
 */
import { CONFIG_RULE, ENV_OVERRIDES, ROOT_DEFAULTS } from '../../../agent/src/config';
import type { Spec } from '../../../agent/src/config-schema';
import { mdPlain } from './roff';

export interface KeyDoc {
  /** Dotted key, e.g. "sources.ec2.baseUrl". */
  key: string;
  spec: Spec;
  default: unknown;
  description: string;
  /** The default under --root DIR, when it differs. */
  rootDefault?: unknown;
  /** Environment variables overriding the key. */
  env: string[];
}

/** Every key of agent.json, in the description's order. */
export function configKeys(spec: Spec = CONFIG_RULE.spec, prefix = ''): KeyDoc[] {
  if (spec.kind !== 'object') throw new Error(`${prefix || 'the top level'} is not an object`);
  return Object.entries(spec.fields).flatMap(([name, field]): KeyDoc[] => {
    const key = prefix ? `${prefix}.${name}` : name;
    if (field.kind === 'object') return configKeys(field, key);
    if (field.kind !== 'optional') throw new Error(`${key}: every key needs a default and a description (optional(rule, default, description))`);
    const root = ROOT_DEFAULTS.find((d) => `${d.section}.${d.key}` === key);
    return [{
      key,
      spec: field.of,
      default: field.default,
      description: field.description,
      ...(root ? { rootDefault: root.value } : {}),
      env: ENV_OVERRIDES.filter((o) => o.key.join('.') === key).map((o) => o.env),
    }];
  });
}

/** What a value must be, in words (markdown): "integer 0–3600", "array of absolute path, non-empty". */
export function typeText(spec: Spec): string {
  switch (spec.kind) {
    case 'string':
      return spec.label ?? (spec.nonEmpty ? 'non-empty string' : 'string');
    case 'integer':
      return `integer ${spec.min}–${spec.max}`;
    case 'boolean':
      return 'boolean';
    case 'enum':
      return spec.values.map((v) => `\`"${v}"\``).join(', ');
    case 'nullable':
      return `${typeText(spec.of)} or \`null\``;
    case 'array': {
      const extra = [spec.unique ? 'unique' : '', spec.nonEmpty ? 'non-empty' : ''].filter(Boolean);
      const of = spec.of.kind === 'enum' ? `(${typeText(spec.of)})` : typeText(spec.of);
      return `array of ${of}${extra.length ? `; ${extra.join(', ')}` : ''}`;
    }
    default:
      throw new Error(`no type text for a ${spec.kind}`);
  }
}

export const json = (v: unknown): string => JSON.stringify(v);

/** JSON Schema (draft-07) of one value. */
function schemaOf(spec: Spec): Record<string, unknown> {
  switch (spec.kind) {
    case 'string': {
      if (spec.pattern?.flags) throw new Error(`pattern ${spec.pattern} has flags; JSON Schema patterns have none`);
      return { type: 'string', ...(spec.nonEmpty ? { minLength: 1 } : {}), ...(spec.pattern ? { pattern: spec.pattern.source } : {}) };
    }
    case 'integer':
      return { type: 'integer', minimum: spec.min, maximum: spec.max };
    case 'boolean':
      return { type: 'boolean' };
    case 'enum':
      return { type: 'string', enum: [...spec.values] };
    case 'nullable': {
      const inner = schemaOf(spec.of);
      return { ...inner, type: [inner.type, 'null'], ...(Array.isArray(inner.enum) ? { enum: [...inner.enum, null] } : {}) };
    }
    case 'array':
      return { type: 'array', items: schemaOf(spec.of), ...(spec.unique ? { uniqueItems: true } : {}), ...(spec.nonEmpty ? { minItems: 1 } : {}) };
    case 'optional': {
      return { ...schemaOf(spec.of), default: spec.default, description: mdPlain(spec.description), markdownDescription: spec.description };
    }
    case 'object':
      return {
        type: 'object',
        properties: Object.fromEntries(Object.entries(spec.fields).map(([k, f]) => [k, schemaOf(f)])),
        additionalProperties: false,
      };
  }
}

/** The JSON Schema of agent.json. Draft-07: the draft editors (VS Code, JetBrains IDEs, yaml/json language servers) support fully. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'cartridge-agent configuration (/etc/cartridge-agent/agent.json)',
    description: 'Generated from agent/src/config.ts by scripts/gen-docs.ts. Every key is optional; unknown keys are refused. ' +
      'The agent also checks what a schema cannot say: payload.fetch.backoffCapMs >= backoffBaseMs.',
    ...schemaOf(CONFIG_RULE.spec),
  };
}

const cell = (md: string): string => md.replace(/\|/g, '\\|');

/** A markdown table of the keys under the given top-level sections. */
export function keyTable(sections: readonly string[]): string {
  const keys = configKeys().filter((k) => sections.includes(k.key.split('.')[0] as string));
  if (keys.length === 0) throw new Error(`no config keys under ${sections.join(', ')}`);
  const rows = keys.map((k) => {
    const def = `\`${json(k.default)}\`${'rootDefault' in k ? ` (\`${json(k.rootDefault)}\` under \`--root DIR\`)` : ''}`;
    const env = k.env.length ? ` (environment: ${k.env.map((e) => `\`${e}\``).join(', ')})` : '';
    return `| \`${k.key}\` | ${cell(typeText(k.spec))} | ${cell(def)} | ${cell(k.description + env)} |`;
  });
  return ['| key | type | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function envTable(): string {
  const rows = ENV_OVERRIDES.map((o) => `| \`${o.env}\` | \`${o.key.join('.')}\` | ${cell(o.syntax)} |`);
  return ['| variable | config key | value |', '|---|---|---|', ...rows].join('\n');
}

const MARK = /<!-- generated by scripts\/gen-docs\.ts: (.+?) -->\n[\s\S]*?<!-- end generated -->/g;

/**
 * docs/config.md with each generated block replaced: `<!-- generated by scripts/gen-docs.ts:
 * keys sources payload -->` … `<!-- end generated -->` (or `env`). The prose around them stays.
 */
export function regenerateConfigDoc(md: string): string {
  let found = 0;
  const out = md.replace(MARK, (_all, what: string) => {
    found += 1;
    const [kind, ...args] = what.trim().split(/\s+/);
    const body = kind === 'keys' ? keyTable(args) : kind === 'env' ? envTable() : null;
    if (body === null) throw new Error(`docs/config.md: unknown generated block "${what}"`);
    return `<!-- generated by scripts/gen-docs.ts: ${what} -->\n${body}\n<!-- end generated -->`;
  });
  if (found === 0) throw new Error('docs/config.md has no generated blocks');
  const covered = new Set([...md.matchAll(MARK)].flatMap((m) => (m[1] as string).trim().split(/\s+/).slice(1)));
  const missing = [...new Set(configKeys().map((k) => k.key.split('.')[0] as string))].filter((s) => !covered.has(s));
  if (missing.length) throw new Error(`docs/config.md has no key table for ${missing.join(', ')}`);
  return out;
}
