/**
 * One measured boot of the boot bench: a fresh instance root booted with systemd-nspawn in a
 * network namespace of its own (only loopback: no traffic leaves the machine), waited for until
 * systemd says the boot is finished, then read from outside:
 *   - unit timestamps (systemctl show … *TimestampMonotonic: CLOCK_MONOTONIC, shared with the host);
 *   - the ctime of the profile.d file and of cloud-init's runcmd marker (stat %.9Z: the moment
 *     the file got its final name — the agent renames a staged file into place — or its last
 *     write/chmod; CLOCK_REALTIME, converted with the realtime − monotonic offset taken at launch);
 *   - the agent's JSON log lines from its journal (their own `time`, converted the same way).
 * Launch is the moment systemd-nspawn is spawned (process.hrtime: CLOCK_MONOTONIC too).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Container } from '../../test/e2e/lib/container';
import { EFFECT_MARKER, PROFILE_FILE, VARIABLES, type ImageKind } from './boot-images';
import { AGENT_UNIT, CLOUD_INIT_UNITS, FIREWALL_UNIT, type BootSample, type LogLine, type UnitTimes } from './boot-report';

const BOOT_TIMEOUT_MS = 180_000;
const POLL_MS = 250;

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

function netns(cmd: 'add' | 'del', name: string): void {
  const r = spawnSync('ip', ['netns', cmd, name], { encoding: 'utf8' });
  if (r.status !== 0 && cmd === 'add') throw new Error(`ip netns add ${name} failed: ${r.stderr}`);
}

/** `systemctl show` of several units: Id → properties. */
async function showUnits(c: Container, units: string[], props: string[]): Promise<Map<string, Record<string, string>>> {
  const out = await c.sh(`systemctl show ${units.join(' ')} -p Id ${props.map((p) => `-p ${p}`).join(' ')}`);
  const byId = new Map<string, Record<string, string>>();
  for (const block of out.split('\n\n')) {
    const p: Record<string, string> = {};
    for (const line of block.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) p[line.slice(0, eq)] = line.slice(eq + 1);
    }
    if (p.Id) byId.set(p.Id, p);
  }
  return byId;
}

/** Poll the manager until the boot transaction is done (FinishTimestampMonotonic set). */
async function waitBootFinished(c: Container): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  while (Date.now() < deadline) {
    // Early in boot systemctl may not reach PID 1 yet: keep polling.
    const r = await c.exec('systemctl', ['show', '-p', 'FinishTimestampMonotonic', '--value']);
    if (r.code === 0 && Number(r.out.trim()) > 0) return;
    await sleep(POLL_MS);
  }
  throw new Error(`the container's boot did not finish within ${BOOT_TIMEOUT_MS / 1000} s (systemctl list-jobs:\n${(await c.exec('systemctl', ['list-jobs'])).out})`);
}

/** ctimes (µs, CLOCK_REALTIME) of in-container files; a missing file is absent from the map. */
async function ctimes(c: Container, files: string[]): Promise<Map<string, number>> {
  const r = await c.exec('stat', ['-c', '%n %.9Z', ...files]);
  const out = new Map<string, number>();
  for (const line of r.out.split('\n')) {
    const [name, t] = line.split(' ');
    if (name && t) out.set(name, Math.round(Number(t) * 1e6));
  }
  return out;
}

async function agentLog(c: Container, realToMono: (us: number) => number): Promise<LogLine[]> {
  const out = await c.sh(`journalctl -u ${AGENT_UNIT} -o json --no-pager --output-fields=MESSAGE`);
  const lines: LogLine[] = [];
  for (const entry of out.split('\n').filter(Boolean)) {
    const message = (JSON.parse(entry) as { MESSAGE?: unknown }).MESSAGE;
    if (typeof message !== 'string' || !message.startsWith('{')) continue; // systemd's own lines
    try {
      const rec = JSON.parse(message) as { msg?: string; time?: string };
      if (typeof rec.msg === 'string' && typeof rec.time === 'string') lines.push({ msg: rec.msg, us: realToMono(Date.parse(rec.time) * 1000) });
    } catch {
      // a line that is not one of the agent's records
    }
  }
  return lines;
}

/** The boot work did its job: the profile.d file holds exactly the variables (sourced by sh). */
async function checkVariables(c: Container, file: string): Promise<void> {
  const out = await c.sh(`. ${file} && printf '%s\\n' ${VARIABLES.map(([k]) => `"${k}=$${k}"`).join(' ')}`);
  const expected = VARIABLES.map(([k, v]) => `${k}=${v}`).join('\n');
  if (out.trim() !== expected) throw new Error(`${file} does not hold the bench's variables:\n${out}`);
}

async function unitFailure(c: Container, units: string[], byId: Map<string, Record<string, string>>): Promise<string | null> {
  for (const u of units) {
    const p = byId.get(u);
    if (p?.ActiveState !== 'active') return `${u} is ${p?.ActiveState ?? 'missing'} (${p?.Result ?? ''}):\n${await c.journal(u, 40)}`;
  }
  return null;
}

/** Boot `root` (an instance of `kind`) once and measure it; the container is powered off after. */
export async function measureBoot(kind: ImageKind, root: string, round: number, logFile: string): Promise<BootSample> {
  const ns = `ca-bench-${randomBytes(3).toString('hex')}`;
  netns('add', ns);
  let c: Container | undefined;
  try {
    const offset = Date.now() * 1000 - monoUs(); // realtime − monotonic, µs
    const launch = monoUs();
    c = await Container.boot({ root, netns: ns, logFile });
    await waitBootFinished(c);
    const realToMono = (us: number) => us - offset;

    const watched = kind === 'agent' ? [AGENT_UNIT, FIREWALL_UNIT] : kind === 'cloud-init' ? CLOUD_INIT_UNITS : [];
    const byId = await showUnits(c, ['multi-user.target', ...watched], ['ActiveState', 'Result', 'InactiveExitTimestampMonotonic', 'ActiveEnterTimestampMonotonic']);
    const failed = await unitFailure(c, ['multi-user.target', ...watched], byId);
    if (failed) throw new Error(`${kind} boot ${round}: ${failed}`);
    const units: Record<string, UnitTimes> = {};
    for (const [id, p] of byId) units[id] = { start: Number(p.InactiveExitTimestampMonotonic), active: Number(p.ActiveEnterTimestampMonotonic) };

    const sample: BootSample = { kind, round, launch, multiUser: units['multi-user.target']?.active ?? NaN, units, log: [] };
    if (kind !== 'bare') {
      const file = PROFILE_FILE[kind];
      const times = await ctimes(c, [file, EFFECT_MARKER]);
      if (!times.has(file)) throw new Error(`${kind} boot ${round}: ${file} was not written`);
      await checkVariables(c, file);
      sample.varsInPlace = realToMono(times.get(file) as number);
      if (kind === 'agent') {
        sample.effect = units[AGENT_UNIT]?.active;
        sample.log = await agentLog(c, realToMono);
      } else {
        const marker = times.get(EFFECT_MARKER);
        if (marker === undefined) throw new Error(`cloud-init boot ${round}: runcmd did not touch ${EFFECT_MARKER}:\n${await c.journal('cloud-final.service', 40)}`);
        sample.effect = realToMono(marker);
      }
    }
    return sample;
  } finally {
    if (c) await c.poweroff().catch(async () => c?.destroy());
    netns('del', ns);
  }
}
