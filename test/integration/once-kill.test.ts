/**
 * SIGKILL the real `once` (the bundle) at random moments while it fetches and writes a large
 * payload: afterwards every export file is absent, the complete old version or the complete
 * new one — never torn — and the next `once` finishes normally.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { renderEnvFile, renderJson, renderShFile } from '../../agent/src/export/render';
import { BUNDLE, makeImageRoot, startPayloadServer, type ImageRoot, type PayloadServer } from '../../scripts/lib/fake-instance';

const KILLS = 40;

/** Two versions of a payload big enough that writing takes a while (~1 MB of exports). */
function payload(version: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (let i = 0; i < 2000; i++) vars.set(`KEY_${i}`, `${version}-${i}-${'x'.repeat(200)}`);
  return vars;
}
const VERSIONS = [payload('old'), payload('new')];
const asDotenv = (vars: Map<string, string>) => [...vars].map(([k, v]) => `${k}=${v}`).join('\n') + '\n';

const FILES: Array<[string, (v: ReadonlyMap<string, string>) => string]> = [
  ['/run/cartridge-agent/payload.env', renderEnvFile],
  ['/etc/profile.d/cartridge-agent.sh', renderShFile],
  ['/run/cartridge-agent/payload.json', renderJson],
];

let servers: PayloadServer[];
let image: ImageRoot;
before(async () => {
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  servers = await Promise.all(VERSIONS.map((v) => startPayloadServer(asDotenv(v))));
  image = makeImageRoot(servers[0]!.url, { export: { launchParamsFile: null } });
});
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  image.remove();
});

function onceKilledAfter(delayMs: number): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, 'once', '--root', image.root, '--log-level', 'silent'], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('finished');
      else reject(new Error(`once failed with exit code ${code}`));
    });
  });
}

test('killing once at random moments never leaves a torn export file', async (t) => {
  const expected = FILES.map(([file, render]) => [file, VERSIONS.map(render)] as const);
  let killed = 0;
  for (let i = 0; i < KILLS; i++) {
    // Alternate the payload so a kill can land between old and new.
    writeFileSync(image.at('/etc/cartridge-agent/payload-url'), servers[i % 2]!.url + '\n');
    if ((await onceKilledAfter(60 + Math.random() * 260)) === 'killed') killed++;
    for (const [file, complete] of expected) {
      if (!existsSync(image.at(file))) continue;
      const text = readFileSync(image.at(file), 'utf8');
      assert.ok(complete.includes(text), `${file} is torn after kill ${i} (${text.length} bytes)`);
    }
  }
  t.diagnostic(`${killed} of ${KILLS} runs killed before they finished`);
  assert.ok(killed >= KILLS / 4, `only ${killed} of ${KILLS} runs were killed before finishing; the test proves little`);
  assert.equal(await onceKilledAfter(30_000), 'finished', 'once must recover after the kills');
});
