/**
 * Boot bench (root; `node --import tsx bench/boot.ts`, part of `npm run bench`): the agent side
 * by side with Debian's cloud-init doing the same job — 20 variables into a profile.d file —
 * in booted Debian 12 containers (systemd-nspawn, real systemd 252, Debian's Node 18), against
 * a bare boot of the same base image. Images: bench/lib/boot-images.ts; one boot and what is
 * read from it: bench/lib/boot-probe.ts; the arithmetic: bench/lib/boot-report.ts.
 *
 * BENCH_BOOT_RUNS rounds (default 5) of bare, agent, cloud-init, interleaved, after
 * BENCH_BOOT_WARMUP (default 1) rounds that are not counted (page cache). Every boot is the
 * first boot of a fresh copy. Targets (docs/testing.md): agent unit start → READY=1 ≤ 120 ms
 * median; launch → variables in place, delta over bare, ≤ 1/5 of cloud-init's (stretch 1/10).
 * Exits 1 when a target is missed, 2 when it cannot run here, 3 when a boot went wrong (an
 * image did not build, a unit failed, a file is missing or wrong). BENCH_KEEP=1 keeps the work dir.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hasCommand } from '../test/helpers/env';
import { KINDS, prepareImages, prepareInstanceRoot, type ImageKind } from './lib/boot-images';
import { measureBoot } from './lib/boot-probe';
import { agentPhases, agentTimeline, bootTargets, cloudInitStages, sideBySide, signed, type BootSample, type Row } from './lib/boot-report';

const RUNS = Number(process.env.BENCH_BOOT_RUNS ?? 5);
const WARMUP = Number(process.env.BENCH_BOOT_WARMUP ?? 1);
const COMMANDS = ['debootstrap', 'systemd-nspawn', 'nsenter', 'ip', 'dash'];
const BUNDLE = 'dist/cartridge-agent.js';

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(0) : '—';
}

const NAME_WIDTH = 70;

function printRows(title: string, rows: Row[]): void {
  console.log(`${title.padEnd(NAME_WIDTH + 3)}median   [per run]`);
  for (const r of rows) {
    const name = r.name.length > NAME_WIDTH ? `${r.name.slice(0, NAME_WIDTH - 1)}…` : r.name;
    console.log(`  ${name.padEnd(NAME_WIDTH)} ${fmt(r.median).padStart(6)}   [${r.runs.map(fmt).join(' ')}]`);
  }
}

/** The version of a package installed in an image root (its dpkg database). */
function packageVersion(root: string, pkg: string): string {
  const r = spawnSync('dpkg-query', [`--admindir=${path.join(root, 'var/lib/dpkg')}`, '-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'not installed';
}

function machine(loadAtStart: number[]): string {
  const osRelease = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? 'unknown OS';
  return `${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${osRelease}, kernel ${os.release()}, load average ${loadAtStart.map((l) => l.toFixed(1)).join(' ')} at the start, ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench/boot.ts needs root (debootstrap, systemd-nspawn, network namespaces)');
    process.exit(2);
  }
  const missing = COMMANDS.filter((c) => !hasCommand(c));
  if (missing.length > 0 || !existsSync(BUNDLE)) {
    console.error(`bench/boot.ts cannot run here: ${missing.length > 0 ? `missing ${missing.join(', ')}` : `no ${BUNDLE} (npm run build)`}`);
    process.exit(2);
  }
  const loadAtStart = os.loadavg();
  const workDir = mkdtempSync('/var/tmp/cartridge-bench-boot-');
  const samples: BootSample[] = [];
  try {
    const images = prepareImages(workDir, (line) => console.log(`boot bench: ${line}`));
    const started = Date.now();
    for (let round = 1 - WARMUP; round <= RUNS; round++) {
      for (const kind of KINDS) {
        const root = path.join(workDir, `instance-${kind}`);
        prepareInstanceRoot(kind, images[kind], root, `bench-${kind}-${round + WARMUP}`);
        const sample = await measureBoot(kind, root, round, path.join(workDir, `${kind}.console.log`));
        rmSync(root, { recursive: true, force: true });
        if (round >= 1) samples.push(sample);
      }
    }
    report(samples, images, Date.now() - started, loadAtStart);
  } finally {
    if (process.env.BENCH_KEEP) console.log(`boot bench: work dir kept: ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

function report(samples: BootSample[], images: Record<ImageKind, string>, elapsedMs: number, loadAtStart: number[]): void {
  console.log(`boot bench: Debian 12 containers under systemd-nspawn, ${RUNS} boots per image interleaved (bare, agent, cloud-init) after ${WARMUP} warm-up round(s), ${Math.round(elapsedMs / 1000)} s`);
  console.log(`  machine: ${machine(loadAtStart)}, ${new Date().toISOString().slice(0, 10)}`);
  console.log(`  images: systemd ${packageVersion(images.bare, 'systemd')}, nodejs ${packageVersion(images.agent, 'nodejs')}, cloud-init ${packageVersion(images['cloud-init'], 'cloud-init')}`);
  console.log('  both get the same 20 variables from a NoCloud seed (/var/lib/cloud/seed/nocloud): the agent as an inline dotenv payload (no controller),');
  console.log('  cloud-init as #cloud-config write_files; the agent also enforces its firewall (bake.sh default config). Every boot is a first boot.');
  const r = sideBySide(samples);
  console.log('');
  printRows('launch → …, ms', r.launch);
  console.log('');
  console.log('delta over the bare boot (launch → multi-user.target) of the same round, ms');
  console.log(`  ${''.padEnd(36)} ${'agent'.padStart(8)} ${'cloud-init'.padStart(11)}  agent/cloud-init`);
  for (const [name, d] of [['variables in place (profile.d file)', r.varsDelta], ['effect complete (READY=1 / runcmd)', r.effectDelta]] as const) {
    console.log(`  ${name.padEnd(36)} ${signed(d.agent.median).padStart(8)} ${signed(d.cloudInit.median).padStart(11)}  ${(d.agent.median / d.cloudInit.median).toFixed(2).padStart(8)}`);
    console.log(`    per run: agent [${d.agent.runs.map(signed).join(' ')}]  cloud-init [${d.cloudInit.runs.map(signed).join(' ')}]`);
  }
  const agentBoots = samples.filter((s) => s.kind === 'agent');
  console.log('');
  printRows('agent phases (its journal and unit timestamps), ms', agentPhases(agentBoots));
  console.log('');
  printRows('agent log lines, ms after its unit start (first occurrence)', agentTimeline(agentBoots));
  console.log('');
  printRows('cloud-init stages, ms', cloudInitStages(samples.filter((s) => s.kind === 'cloud-init')));
  console.log('');
  const outcomes = bootTargets(r);
  console.log('boot targets:');
  for (const o of outcomes) console.log(`  ${o.met ? 'met   ' : o.stretch ? 'missed' : 'MISSED'}  ${o.name}: ${o.detail}`);
  if (outcomes.some((o) => !o.met && !o.stretch)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 3;
});
