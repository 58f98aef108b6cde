#!/usr/bin/env node
// Bundles the agent into one CommonJS file (dist/cartridge-agent.js) so an image needs only
// `node` (>= 18, Debian 12's nodejs) and this file. The file is a small loader
// (packaging/code-cache-loader.cjs) with the bundled agent embedded as a string, so V8 can
// reuse compiled code between boots (see the loader).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import Module from 'node:module';
import path from 'node:path';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const outfile = 'dist/cartridge-agent.js';

/**
 * The agent uses axios' http adapter only. axios' fetch adapter and its FormData probe touch
 * Node's lazy `fetch`/`FormData` globals when loaded, which loads undici on every start; swap
 * them for stubs (packaging/stubs/) so `once` stays inside its start-time budget.
 */
const axiosHttpOnly = {
  name: 'axios-http-only',
  setup(b) {
    const stubs = {
      'adapters/fetch.js': 'axios-fetch-adapter.mjs',
      'env/classes/FormData.js': 'axios-env-formdata.mjs',
    };
    b.onResolve({ filter: /(fetch|FormData)\.js$/ }, (args) => {
      const resolved = path.resolve(args.resolveDir, args.path);
      if (!resolved.includes('/node_modules/axios/lib/')) return undefined;
      const key = Object.keys(stubs).find((k) => resolved.endsWith(`/lib/${k}`));
      return key ? { path: new URL(`./stubs/${stubs[key]}`, import.meta.url).pathname } : undefined;
    });
    // utils.js reads the global FormData at load time (same undici cost); the agent never
    // sends form bodies, so it may as well not exist. Fail the build if axios changes shape.
    b.onLoad({ filter: /node_modules\/axios\/lib\/utils\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const probe = "typeof G.FormData !== 'undefined' ? G.FormData : undefined";
      if (!source.includes(probe)) throw new Error(`axios-http-only: expected \`${probe}\` in ${args.path}; update packaging/build.mjs`);
      return { contents: source.replace(probe, 'undefined'), loader: 'js' };
    });
  },
};

const result = await build({
  entryPoints: ['agent/src/bin.ts'],
  outfile,
  write: false,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  // Startup time is a target (npm run bench): minified code parses faster. Identifiers are
  // kept: then esbuild names each lazily evaluated module by its path (`__esm({"agent/src/…"`,
  // `__commonJS({"node_modules/mqtt/…"`), which stack traces, CPU profiles and the load test
  // (test/integration/bundle-lazy-load.test.ts) read; it costs ~275 KB of source and, with the
  // code cache, no measurable start time (docs/daemon.md "Start-up").
  ...(process.env.NO_MINIFY ? {} : { minifyWhitespace: true, minifySyntax: true }),
  keepNames: true,
  // axios pulls in form-data (and its 200 KB mime-db) for multipart uploads, which the agent
  // never sends; a stub that throws keeps ~12 ms and ~1 MB off every start.
  alias: {
    'form-data': './packaging/stubs/form-data.cjs',
    'thread-stream': './packaging/stubs/thread-stream.cjs',
    ws: './packaging/stubs/not-bundled.cjs',
    socks: './packaging/stubs/not-bundled.cjs',
    'worker-timers': './packaging/stubs/not-bundled.cjs',
  },
  plugins: [axiosHttpOnly],
  sourcemap: false,
  legalComments: 'none',
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
// Wrapped here, not in the loader: the loader compiles the literal as it is (see the loader).
const agentCode = Module.wrap(result.outputFiles[0].text.replace(/^#!.*\n/, ''));
const codeId = `${pkg.version}-${createHash('sha256').update(agentCode).digest('hex').slice(0, 12)}`;
const loader = readFileSync(new URL('./code-cache-loader.cjs', import.meta.url), 'utf8');
for (const placeholder of ["'@@AGENT_CODE@@'", "'@@AGENT_CODE_ID@@'"]) {
  if (!loader.includes(placeholder)) throw new Error(`code-cache-loader.cjs lost its ${placeholder} placeholder`);
}
const bundled = loader
  .replace("'@@AGENT_CODE@@'", () => JSON.stringify(agentCode))
  .replace("'@@AGENT_CODE_ID@@'", () => JSON.stringify(codeId));
mkdirSync(path.dirname(outfile), { recursive: true });
writeFileSync(outfile, `#!/usr/bin/env node\n${bundled}`);
chmodSync(outfile, 0o755);
console.log(`built ${outfile} (cartridge-agent ${pkg.version})`);

// The controller stub (tests, demos, small fleets): one plain bundle; it may require Node 20.
await build({
  entryPoints: ['controller-stub/src/bin.ts'],
  outfile: 'dist/cartridge-controller.js',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  alias: { 'thread-stream': './packaging/stubs/thread-stream.cjs' },
  define: { __AGENT_VERSION__: JSON.stringify(pkg.version) },
  legalComments: 'none',
  logLevel: 'warning',
});
chmodSync('dist/cartridge-controller.js', 0o755);
console.log('built dist/cartridge-controller.js');
