/**
 * Generates, from the one description of agent.json (agent/src/config.ts) and the programs'
 * command tables and help texts (agent/src/cli.ts, controller-stub/src/cli.ts):
 * docs/config.md's key tables, the JSON Schema, the man pages and the bash completions.
 * The outputs are committed; test/unit/gen-docs.test.ts fails when one is out of date.
 *
 * Usage: node --import tsx scripts/gen-docs.ts [--check]   (npm run docs)
 *   --check   write nothing; list the stale files and exit 1 if there are any
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { COMMANDS, COMMAND_TABLE, COMMON_OPTIONS, type OptionValue } from '../agent/src/cli';
import { LOG_LEVELS } from '../agent/src/log';
import { OPTIONS as CONTROLLER_OPTIONS } from '../controller-stub/src/cli';
import { configJsonSchema, regenerateConfigDoc } from './lib/gen/config-doc';
import { bashCompletion, type ValueKind } from './lib/gen/completion';
import { agentManPage, configManPage, controllerManPage } from './lib/gen/man-pages';

export const REPO = path.resolve(import.meta.dirname, '..');
const read = (rel: string): string => readFileSync(path.join(REPO, rel), 'utf8');

const agentValue = (v: OptionValue): ValueKind => (v === 'log-level' ? LOG_LEVELS : v);

/** What a controller option's value is, from its name (parseArgs only knows "string"). */
function controllerValue(name: string, type: string): ValueKind {
  if (type === 'boolean') return null;
  if (name === 'log-level') return LOG_LEVELS;
  if (name === 'state' || name === 'out') return 'dir';
  if (/-file$|^cloud-config$/.test(name)) return 'file';
  return 'word';
}

function agentCompletion(): string {
  return bashCompletion({
    program: 'cartridge-agent',
    source: 'agent/src/cli.ts',
    topOptions: ['--help', '--version'],
    commands: COMMANDS.map((name) => {
      const t = COMMAND_TABLE[name];
      const common = name === 'version' || name === 'help' ? { '--help': null } : COMMON_OPTIONS;
      const options = Object.fromEntries(Object.entries({ ...t.options, ...common }).map(([o, v]) => [o, agentValue(v)]));
      return { name, options, ...(t.actions ? { actions: t.actions } : {}) };
    }),
  });
}

function controllerCompletion(): string {
  const commands = Object.entries(CONTROLLER_OPTIONS).map(([name, opts]) => ({
    name,
    options: Object.fromEntries(Object.entries(opts).map(([o, d]) => [`--${o}`, controllerValue(o, d.type)])),
  }));
  return bashCompletion({
    program: 'cartridge-controller',
    source: 'controller-stub/src/cli.ts',
    topOptions: ['--help', '--version'],
    commands: [...commands, { name: 'version', options: {} }, { name: 'help', actions: Object.keys(CONTROLLER_OPTIONS), options: {} }],
  });
}

/** Every generated file: repository-relative path → content. */
export function generatedFiles(): Record<string, string> {
  const version = (JSON.parse(read('package.json')) as { version: string }).version;
  return {
    'docs/config.md': regenerateConfigDoc(read('docs/config.md')),
    'packaging/generated/agent.schema.json': `${JSON.stringify(configJsonSchema(), null, 2)}\n`,
    'packaging/generated/man/cartridge-agent.1': agentManPage(version, read('docs/cli.md')),
    'packaging/generated/man/cartridge-controller.1': controllerManPage(version),
    'packaging/generated/man/agent.json.5': configManPage(version, read('agent/bootstrap/agent.json')),
    'packaging/generated/completion/cartridge-agent': agentCompletion(),
    'packaging/generated/completion/cartridge-controller': controllerCompletion(),
  };
}

/** The generated files whose committed content differs. */
export function staleFiles(files = generatedFiles()): string[] {
  return Object.entries(files).filter(([rel, content]) => {
    try {
      return read(rel) !== content;
    } catch {
      return true;
    }
  }).map(([rel]) => rel);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(REPO, 'scripts/gen-docs.ts')) {
  const check = process.argv.includes('--check');
  const files = generatedFiles();
  const stale = staleFiles(files);
  if (check) {
    for (const rel of stale) console.error(`gen-docs: ${rel} is out of date: run npm run docs`);
    process.exit(stale.length ? 1 : 0);
  }
  for (const rel of stale) {
    mkdirSync(path.dirname(path.join(REPO, rel)), { recursive: true });
    writeFileSync(path.join(REPO, rel), files[rel] as string);
    console.log(`gen-docs: wrote ${rel}`);
  }
  if (stale.length === 0) console.log('gen-docs: everything up to date');
}
