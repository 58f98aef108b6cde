/**
 * `npm run bench`: every benchmark in turn (each prints its own table and targets); exits
 * non-zero when any target is missed. The firewall bench needs root and says so otherwise.
 */
import { execFileSync, spawnSync } from 'node:child_process';

// Every bench measures the agent on Debian 12's Node 18 too (test/helpers/runtimes.ts finds
// it): prepare it once here unless CARTRIDGE_TEST_NODE18 already points at one.
if (!process.env.CARTRIDGE_TEST_NODE18) {
  try {
    process.env.CARTRIDGE_TEST_NODE18 = execFileSync('scripts/debian-node18.sh', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').at(-1);
  } catch (err) {
    console.log(`note: scripts/debian-node18.sh failed, Debian's Node 18 will not be measured: ${(err as { stderr?: string }).stderr?.trim().split('\n').at(-1) ?? (err as Error).message}`);
  }
}

const BENCHES = ['bench/once.ts', 'bench/firewall.ts', 'bench/early-firewall.ts', 'bench/daemon.ts'];
const outcomes: Array<{ file: string; ok: boolean; status: string }> = [];
for (const file of BENCHES) {
  console.log(`\n== ${file}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  outcomes.push({ file, ok: r.status === 0, status: String(r.status ?? r.signal) });
}
console.log('\n== summary');
for (const o of outcomes) console.log(`${o.file}: ${o.ok ? 'targets met' : `targets MISSED or not measured (exit ${o.status})`}`);
process.exitCode = outcomes.every((o) => o.ok) ? 0 : 1;
