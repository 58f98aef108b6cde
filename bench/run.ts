/**
 * `npm run bench`: every benchmark in turn (each prints its own table and targets); exits
 * non-zero when any target is missed. The firewall bench needs root and says so otherwise.
 */
import { spawnSync } from 'node:child_process';

const BENCHES = ['bench/once.ts', 'bench/firewall.ts', 'bench/daemon.ts'];
const outcomes: Array<{ file: string; ok: boolean; status: string }> = [];
for (const file of BENCHES) {
  console.log(`\n== ${file}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  outcomes.push({ file, ok: r.status === 0, status: String(r.status ?? r.signal) });
}
console.log('\n== summary');
for (const o of outcomes) console.log(`${o.file}: ${o.ok ? 'targets met' : `targets MISSED or not measured (exit ${o.status})`}`);
process.exitCode = outcomes.every((o) => o.ok) ? 0 : 1;
