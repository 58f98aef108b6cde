/**
 * `npm run bench`: every benchmark in turn (each prints its own table and targets); exits
 * non-zero when any target is missed. The firewall and boot benches need root and say so otherwise.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

// Every bench measures the agent on Debian 12's Node 18 too (test/helpers/runtimes.ts finds
// it): prepare it once here unless CARTRIDGE_TEST_NODE18 already points at one.
if (!process.env.CARTRIDGE_TEST_NODE18) {
  try {
    process.env.CARTRIDGE_TEST_NODE18 = execFileSync('scripts/debian-node18.sh', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').at(-1);
  } catch (err) {
    console.log(`note: scripts/debian-node18.sh failed, Debian's Node 18 will not be measured: ${(err as { stderr?: string }).stderr?.trim().split('\n').at(-1) ?? (err as Error).message}`);
  }
}

const BENCHES = ['bench/once.ts', 'bench/firewall.ts', 'bench/early-firewall.ts', 'bench/daemon.ts', 'bench/boot.ts'];
/** The lines a bench marks a missed target with. */
const MISSED = /MISSED|OVER TARGET|NOT MEASURED|NOT WORKING/;

/** Run one bench with its output shown as it comes; resolves with its exit and the lines naming a miss. */
function runBench(file: string): Promise<{ status: string; missed: string[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const missed: string[] = [];
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      console.log(line);
      if (MISSED.test(line)) missed.push(line.trim());
    });
    child.once('close', (code, signal) => resolve({ status: String(code ?? signal), missed }));
  });
}

async function main(): Promise<void> {
  const outcomes: Array<{ file: string; status: string; missed: string[] }> = [];
  for (const file of BENCHES) {
    console.log(`\n== ${file}`);
    outcomes.push({ file, ...(await runBench(file)) });
  }
  console.log('\n== summary');
  for (const o of outcomes) {
    console.log(`${o.file}: ${o.status === '0' ? 'targets met' : `targets MISSED or not measured (exit ${o.status})`}`);
    for (const line of o.missed) console.log(`  ${line}`);
  }
  process.exitCode = outcomes.every((o) => o.status === '0') ? 0 : 1;
}

void main();
