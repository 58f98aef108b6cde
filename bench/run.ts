/**
 * `npm run bench`: every benchmark in turn (each prints its own table and targets); exits
 * non-zero when any target is missed. The firewall bench needs root and says so otherwise.
 */
import { spawnSync } from 'node:child_process';

const BENCHES = ['bench/once.ts', 'bench/firewall.ts', 'bench/daemon.ts'];
let failed = false;
for (const file of BENCHES) {
  console.log(`\n== ${file}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed = true;
    console.log(`(${file} exited ${r.status})`);
  }
}
process.exitCode = failed ? 1 : 0;
