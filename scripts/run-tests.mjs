#!/usr/bin/env node
// Runs the test suites with node:test (TypeScript through tsx).
// Usage: run-tests.mjs [unit|integration|e2e ...] (default: all three).
// unit + integration run two files at a time; e2e (booting an image under systemd-nspawn)
// runs afterwards on its own, so the boots and the timing-sensitive suites never share the CPU.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const requested = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration', 'e2e'];
const unknown = requested.filter((s) => !['unit', 'integration', 'e2e'].includes(s));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; suites: unit, integration, e2e`);
  process.exit(2);
}

function filesOf(suites) {
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.test.ts')) files.push(p);
    }
  };
  for (const s of suites) walk(join('test', s));
  return files;
}

function run(files, concurrency) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, '--test-timeout=180000', ...files],
    { stdio: 'inherit' },
  );
  return r.status ?? 1;
}

const batches = [
  { files: filesOf(requested.filter((s) => s !== 'e2e')), concurrency: 2 },
  { files: filesOf(requested.filter((s) => s === 'e2e')), concurrency: 1 },
].filter((b) => b.files.length > 0);
if (batches.length === 0) {
  console.error(`no test files found in ${requested.join(', ')}`);
  process.exit(1);
}
let status = 0;
for (const b of batches) status = run(b.files, b.concurrency) || status;
process.exit(status);
