#!/usr/bin/env node
// Bundles the agent into one CommonJS file (dist/cartridge-agent.js) so an image needs only
// `node` (>= 18, Debian 12's nodejs) and this file.
import { build } from 'esbuild';
import { readFileSync, chmodSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const outfile = 'dist/cartridge-agent.js';

await build({
  entryPoints: ['agent/src/bin.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  minify: false,
  sourcemap: false,
  legalComments: 'none',
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
console.log(`built ${outfile} (cartridge-agent ${pkg.version})`);
