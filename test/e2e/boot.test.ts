/**
 * The boot test: a Debian 12 image root (debootstrap, cached), the agent baked in with
 * agent/bootstrap/bake.sh, booted with real systemd under systemd-nspawn inside a network
 * namespace linked by a veth pair to a namespace running mosquitto and the controller stub.
 * Everything is checked from outside the container, as an operator would see it:
 *   boot 1  personality file → unit active after READY=1, exports seen by a dependent unit,
 *           firewall (IPv4 + IPv6), health at the controller; kill -9 → restart with a new
 *           session; poweroff → OFFLINE (clean shutdown) and ready-to-shutdown
 *   boot 2  NoCloud seed, same checks
 *   boot 3  boot 1's instance rebooted with the controller down: cached payload, firewall
 *           restored early and re-applied, READY=1, reports resume when the controller returns
 *   boot 4  boot 1's instance rebooted after `terminate`: the refusal is terminal, so the unit
 *           stops with exit 5, is not restarted, says why in STATUS=; the last good rules stay
 * Prints the time from unit start to READY=1 for each boot. Needs root; ~2 min to build the
 * image the first time on a machine, then under 2 min.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { hasCommand, requireCommands, requireFile, requireRoot } from '../helpers/env';
import { NetnsPair, targets } from '../helpers/netns';
import { waitFor } from '../helpers/wait';
import { Container } from './lib/container';
import type { MemberView } from '../../controller-stub/src/http';
import { ControllerSide } from './lib/controller-side';
import { ensureBaseImage } from './lib/image';
import {
  AGENT_UNIT, ALLOWED_PORT, APP_REPORT, APP_UNIT, BLOCKED_PORT, FIREWALL_UNIT, prepareInstance, writeNoCloudSeed, writePersonality,
} from './lib/instance';

const CLUSTER = 'e2e';
const WORK_BASE = '/var/tmp';

interface Status { state: string; session: number; cause?: string }
interface Event { type: string; session: number }

/** Values chosen to break naive quoting: quotes, $, backticks, backslashes, #, spaces, unicode. */
function payloadFor(member: string, brokerUrl: string): Record<string, string> {
  return {
    CLUSTER_ID: CLUSTER,
    MEMBER_ID: member,
    SERVICE_NAME: 'php',
    PORTS: String(ALLOWED_PORT),
    MB_URLS: brokerUrl,
    APP_GREETING: `it's "quoted" $HOME \`uname\` back\\slash #not-a-comment  two  spaces`,
    DB_URL: 'mysql://db:3306/shop?ssl=true&pool=5',
    CITY: 'Zürich',
  };
}

let pair: NetnsPair | undefined;
let controller: ControllerSide | undefined;
let workDir = '';
let base = '';
let ready = false;
const containers: Container[] = [];

const COMMANDS = ['debootstrap', 'systemd-nspawn', 'nsenter', 'ip', 'mosquitto', 'nft'];

function preconditions(t: TestContext): boolean {
  return (
    requireRoot(t) &&
    requireCommands(t, ...COMMANDS) &&
    requireFile(t, existsSync('dist/cartridge-agent.js') && existsSync('dist/cartridge-controller.js') ? 'dist' : null, 'needs the bundles (npm run build)') &&
    requireFile(t, ready ? 'ready' : null, 'the boot test setup failed (see the before hook)')
  );
}

/** A reboot loses the kernel's rules: clear what an earlier boot left in the shared namespace. */
function resetKernelFirewall(ns: string): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'flush', 'ruleset'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nft flush ruleset in ${ns}: ${r.stderr}`);
}

async function boot(root: string, name: string): Promise<Container> {
  resetKernelFirewall((pair as NetnsPair).instance);
  const c = await Container.boot({ root, netns: (pair as NetnsPair).instance, logFile: path.join(workDir, `${name}.console.log`) });
  containers.push(c);
  return c;
}

/** Unit start → READY=1 (Type=notify: active is entered on READY=1), in ms. */
async function waitAgentReady(c: Container): Promise<{ ms: number; props: Record<string, string> }> {
  const props = await c.waitUnit(
    AGENT_UNIT,
    ['ActiveState', 'SubState', 'Result', 'InactiveExitTimestampMonotonic', 'ActiveEnterTimestampMonotonic', 'MainPID', 'NRestarts', 'StatusText'],
    (p) => p.ActiveState === 'active' || p.ActiveState === 'failed',
    120_000,
  );
  assert.equal(props.ActiveState, 'active', `${AGENT_UNIT} failed: ${JSON.stringify(props)}\n${await c.journal(AGENT_UNIT)}`);
  const ms = (Number(props.ActiveEnterTimestampMonotonic) - Number(props.InactiveExitTimestampMonotonic)) / 1000;
  return { ms, props };
}

interface AgentStatus { source: { name: string } | null; payload: { via: string } | null; firewall: { mode: string } | null }

/** `cartridge-agent status --json` inside the container (the wrapper bake.sh installs). */
async function agentStatus(c: Container): Promise<AgentStatus> {
  return JSON.parse(await c.sh('cartridge-agent status --json')) as AgentStatus;
}

async function checkAgentStatus(c: Container, source: string, via: string): Promise<void> {
  const st = await agentStatus(c);
  assert.deepEqual(
    { source: st.source?.name, via: st.payload?.via, firewall: st.firewall?.mode },
    { source, via, firewall: 'enforce' },
    `cartridge-agent status: ${JSON.stringify(st)}`,
  );
}

/** The dependent unit saw exactly the payload's values through EnvironmentFile=. */
async function checkExports(c: Container, payload: Record<string, string>): Promise<void> {
  let text = '';
  const written = async () => {
    const r = await c.exec('cat', [APP_REPORT]);
    text = r.code === 0 ? r.out : '';
    return text !== '';
  };
  await waitFor(`${APP_UNIT} to write ${APP_REPORT}`, written, 60_000, () => '', 250).catch(async (err: Error) =>
    assert.fail(`${err.message}:\n${await c.journal(APP_UNIT)}`),
  );
  const env = (JSON.parse(text) as { env: Record<string, string> }).env;
  for (const [k, v] of Object.entries(payload)) assert.equal(env[k], v, `${APP_UNIT} saw ${k}=${JSON.stringify(env[k])}, the payload has ${JSON.stringify(v)}`);
}

/** From the controller's namespace: the allowed port answers, the blocked one is dropped (not refused). */
async function checkFirewall(): Promise<void> {
  const p = pair as NetnsPair;
  const seen = await p.probe(targets('tcp', [ALLOWED_PORT, BLOCKED_PORT]), 1_000);
  assert.deepEqual(seen, {
    [`tcp/${ALLOWED_PORT} ipv4`]: 'open',
    [`tcp/${ALLOWED_PORT} ipv6`]: 'open',
    [`tcp/${BLOCKED_PORT} ipv4`]: 'timeout',
    [`tcp/${BLOCKED_PORT} ipv6`]: 'timeout',
  });
}

/** Health reports for `member` arrive at the controller after `since`, and it lists the member ONLINE. */
async function checkHealthArrives(member: string, since: number): Promise<Status> {
  const ctl = controller as ControllerSide;
  await waitFor(`two health reports from ${member} since ${new Date(since).toISOString()}`, () => ctl.seen(`/${member}/health`, since).length >= 2, 30_000);
  const births = ctl.seen<Status>(`/${member}/status`).filter((s) => s.state === 'online');
  assert.ok(births.length > 0, 'no birth (online status) seen');
  // The controller (re)subscribes on its own schedule: wait for its view to include a report.
  const view = await controllerView(member, (v) => v.state === 'ONLINE' && v.fleet?.firewall != null);
  assert.match(view.fleet?.firewall ?? '', /enforce/, `controller's firewall view: ${view.fleet?.firewall}`);
  return births[births.length - 1] as Status;
}

/** poweroff inside: a clean stop of the agent, seen by the controller as OFFLINE + ready-to-shutdown. */
async function checkPoweroff(c: Container, member: string, session: number): Promise<void> {
  const ctl = controller as ControllerSide;
  const since = Date.now();
  assert.equal(await c.poweroff(), 0, 'the container did not power off cleanly');
  await waitFor('an offline status after poweroff', () => ctl.seen<Status>(`/${member}/status`, since).some((s) => s.state === 'offline'), 10_000);
  const offline = ctl.seen<Status>(`/${member}/status`, since).find((s) => s.state === 'offline') as Status;
  assert.equal(offline.cause, 'shutdown', `offline after poweroff was not a clean shutdown: ${JSON.stringify(offline)}`);
  assert.equal(offline.session, session, 'offline carries the session of the last birth');
  assert.ok(ctl.seen<Event>(`/${member}/event`, since).some((e) => e.type === 'ready-to-shutdown'), 'no ready-to-shutdown event');
  await controllerView(member, (v) => v.state === 'OFFLINE');
}

/** The controller's view of `member` (GET /api/members) once `ok` accepts it; the last one in the error. */
async function controllerView(member: string, ok: (v: MemberView) => boolean): Promise<MemberView> {
  const ctl = controller as ControllerSide;
  let view: MemberView | undefined;
  const accepted = async () => (view = await ctl.member(CLUSTER, member)) !== undefined && ok(view);
  await waitFor(`the controller's view of ${member}`, accepted, 15_000, () => JSON.stringify(view), 200);
  return view as MemberView;
}

describe('boot test: the baked image under real systemd (systemd-nspawn)', { concurrency: 1 }, () => {
  const rackspace = { member: 'e2e-rackspace', root: '', container: undefined as Container | undefined, session: 0, payload: {} as Record<string, string> };

  before(async () => {
    // Without these each test skips (or fails under CI) with the reason, in preconditions().
    if (process.getuid?.() !== 0 || !COMMANDS.every(hasCommand)) return;
    workDir = mkdtempSync(path.join(WORK_BASE, 'cartridge-e2e-'));
    base = ensureBaseImage((line) => process.stderr.write(`e2e: ${line}\n`));
    pair = NetnsPair.create();
    controller = new ControllerSide(pair, workDir);
    await controller.start();
    ready = true;
  }, { timeout: 600_000 });

  after(async () => {
    for (const c of containers) await c.destroy();
    await controller?.stop();
    pair?.destroy();
    // CARTRIDGE_E2E_KEEP=1 keeps the roots and console logs for a look after a failure.
    if (workDir && !process.env.CARTRIDGE_E2E_KEEP) rmSync(workDir, { recursive: true, force: true });
    else if (workDir) process.stderr.write(`e2e: work dir kept: ${workDir}\n`);
  });

  async function registered(member: string): Promise<{ payload: Record<string, string>; reg: Awaited<ReturnType<ControllerSide['register']>> }> {
    const ctl = controller as ControllerSide;
    const payload = payloadFor(member, ctl.brokerUrl);
    const file = path.join(workDir, `${member}.payload.json`);
    writeFileSync(file, JSON.stringify(payload));
    return { payload, reg: await ctl.register(CLUSTER, member, file) };
  }

  function agentConfig(publicKey: string): Record<string, unknown> {
    return {
      sources: { scanDevices: false, waitSeconds: 30 },
      payload: { publicKey, fetch: { deadlineSeconds: 8 } },
      health: { intervalSeconds: 2 },
      readiness: { intervalMs: 250, timeoutSeconds: 60 },
    };
  }

  test('boot 1, Rackspace style (personality file): active after READY=1, exports, firewall, health', { timeout: 300_000 }, async (t) => {
    if (!preconditions(t)) return;
    const { payload, reg } = await registered(rackspace.member);
    rackspace.payload = payload;
    rackspace.root = path.join(workDir, 'rackspace-root');
    prepareInstance(base, rackspace.root, agentConfig(reg.publicKey), workDir);
    writePersonality(rackspace.root, reg.personality);

    const since = Date.now();
    const c = await boot(rackspace.root, 'rackspace');
    rackspace.container = c;
    const { ms } = await waitAgentReady(c);
    t.diagnostic(`boot 1: ${AGENT_UNIT} start → READY=1 in ${ms.toFixed(0)} ms`);
    process.stderr.write(`e2e: boot 1 (personality): unit start → READY=1 in ${ms.toFixed(0)} ms\n`);
    const fw = await c.unitProperties(FIREWALL_UNIT, ['ActiveState', 'Result']);
    assert.deepEqual(fw, { ActiveState: 'active', Result: 'success' }, `${FIREWALL_UNIT}: ${await c.journal(FIREWALL_UNIT)}`);
    assert.match(await c.journal(FIREWALL_UNIT), /nothing recorded \(first boot\?\); the baseline ruleset is in force/, 'first boot: the early firewall unit puts the baseline in force');
    // From the record bake.sh made, in sh: no Node before the network.
    assert.doesNotMatch(await c.journal(FIREWALL_UNIT), /handing over/, `first boot: the early unit needs no Node:\n${await c.journal(FIREWALL_UNIT)}`);
    await checkAgentStatus(c, 'personality', 'fetched');
    // The agent runs under its sandbox, W+X memory denied (seccomp filter mode 2 in force).
    const sandbox = await c.unitProperties(AGENT_UNIT, ['MemoryDenyWriteExecute', 'MainPID']);
    assert.equal(sandbox.MemoryDenyWriteExecute, 'yes');
    assert.match(await c.sh(`grep '^Seccomp:' /proc/${sandbox.MainPID}/status`), /Seccomp:\s+2/);
    await checkExports(c, payload);
    await checkFirewall();
    rackspace.session = (await checkHealthArrives(rackspace.member, since)).session;
  });

  test('kill -9 of the agent inside the container: systemd restarts it; offline then online with a new session', { timeout: 120_000 }, async (t) => {
    if (!preconditions(t)) return;
    const c = rackspace.container;
    assert.ok(c, 'boot 1 did not leave a running container');
    const ctl = controller as ControllerSide;
    const before = await c.unitProperties(AGENT_UNIT, ['MainPID', 'NRestarts']);
    // (kill -9 0 would kill this test's own process group)
    assert.ok(Number(before.MainPID) > 1, `${AGENT_UNIT} has no main process: ${JSON.stringify(before)}`);
    const since = Date.now();
    await c.sh(`kill -9 ${before.MainPID}`);
    const after = await c.waitUnit(AGENT_UNIT, ['ActiveState', 'MainPID', 'NRestarts'], (p) => p.ActiveState === 'active' && p.MainPID !== before.MainPID && p.MainPID !== '0', 60_000);
    assert.equal(Number(after.NRestarts), Number(before.NRestarts) + 1, 'systemd counted one restart');
    await waitFor(
      'online with a new session',
      () => ctl.seen<Status>(`/${rackspace.member}/status`, since).some((s) => s.state === 'online' && s.session !== rackspace.session),
      30_000,
      () => `statuses since the kill: ${JSON.stringify(ctl.seen(`/${rackspace.member}/status`, since))}`,
    );
    const statuses = ctl.seen<Status>(`/${rackspace.member}/status`, since);
    const offline = statuses.findIndex((s) => s.state === 'offline' && s.session === rackspace.session);
    const online = statuses.findIndex((s) => s.state === 'online' && s.session !== rackspace.session);
    assert.ok(offline >= 0, `the old session's will (offline) was not seen: ${JSON.stringify(statuses)}`);
    assert.equal(statuses[offline]?.cause, 'lwt');
    assert.ok(online > offline, 'online with the new session came after the offline');
    rackspace.session = (statuses[online] as Status).session;
    await controllerView(rackspace.member, (v) => v.state === 'ONLINE');
  });

  test('poweroff after boot 1: the member goes OFFLINE with a clean shutdown and ready-to-shutdown', { timeout: 120_000 }, async (t) => {
    if (!preconditions(t)) return;
    assert.ok(rackspace.container, 'boot 1 did not leave a running container');
    await checkPoweroff(rackspace.container, rackspace.member, rackspace.session);
  });

  test('boot 2, cloud-init style (NoCloud seed): active after READY=1, exports, firewall, health, poweroff', { timeout: 300_000 }, async (t) => {
    if (!preconditions(t)) return;
    const member = 'e2e-nocloud';
    const { payload, reg } = await registered(member);
    const root = path.join(workDir, 'nocloud-root');
    prepareInstance(base, root, agentConfig(reg.publicKey), workDir);
    writeNoCloudSeed(root, reg.userData.plain, 'i-e2e-nocloud');

    const since = Date.now();
    const c = await boot(root, 'nocloud');
    const { ms } = await waitAgentReady(c);
    t.diagnostic(`boot 2: ${AGENT_UNIT} start → READY=1 in ${ms.toFixed(0)} ms`);
    process.stderr.write(`e2e: boot 2 (NoCloud): unit start → READY=1 in ${ms.toFixed(0)} ms\n`);
    await checkAgentStatus(c, 'nocloud', 'fetched');
    await checkExports(c, payload);
    await checkFirewall();
    const birth = await checkHealthArrives(member, since);
    await checkPoweroff(c, member, birth.session);
  });

  test('boot 3, controller down: cached payload, firewall restored and re-applied, READY=1, reports resume', { timeout: 300_000 }, async (t) => {
    if (!preconditions(t)) return;
    assert.ok(rackspace.root, 'boot 1 did not run');
    const ctl = controller as ControllerSide;
    await ctl.stopControllerAndBroker();

    const c = await boot(rackspace.root, 'rackspace-reboot');
    const { ms } = await waitAgentReady(c);
    t.diagnostic(`boot 3: ${AGENT_UNIT} start → READY=1 in ${ms.toFixed(0)} ms (controller down)`);
    process.stderr.write(`e2e: boot 3 (controller down): unit start → READY=1 in ${ms.toFixed(0)} ms\n`);
    assert.match(await c.journal(FIREWALL_UNIT), /firewall: restored the recorded ruleset: /, `the early firewall unit restored the recorded rules:\n${await c.journal(FIREWALL_UNIT)}`);
    assert.doesNotMatch(await c.journal(FIREWALL_UNIT), /handing over/, `a reboot: the early unit restores from the agent's record, without Node:\n${await c.journal(FIREWALL_UNIT)}`);
    await checkAgentStatus(c, 'personality', 'cache');
    assert.match(await c.journal(AGENT_UNIT, 300), /CONTROLLER UNREACHABLE: using the cached payload/, 'the agent says why it used the cache');
    await checkExports(c, rackspace.payload);
    await checkFirewall();

    const back = Date.now();
    await ctl.start();
    const birth = await checkHealthArrives(rackspace.member, back);
    await checkPoweroff(c, rackspace.member, birth.session);
  });

  test('boot 4, member terminated: a terminal refusal stops the unit without a restart loop, fail closed', { timeout: 300_000 }, async (t) => {
    if (!preconditions(t)) return;
    assert.ok(rackspace.root, 'boot 1 did not run');
    await (controller as ControllerSide).terminate(CLUSTER, rackspace.member);
    const c = await boot(rackspace.root, 'rackspace-terminated');
    const props = ['ActiveState', 'Result', 'NRestarts', 'StatusText', 'ExecMainStatus'];
    const stopped = await c.waitUnit(AGENT_UNIT, props, (p) => p.ActiveState === 'failed' || p.ActiveState === 'active', 120_000);
    assert.equal(stopped.ActiveState, 'failed', `${JSON.stringify(stopped)}\n${await c.journal(AGENT_UNIT)}`);
    assert.equal(stopped.ExecMainStatus, '5', 'exit 5: the controller refused');
    assert.match(stopped.StatusText ?? '', /^stopped, not restarted \(exit 5\): the controller refused \(revoked\): /, 'STATUS= says why it stopped');
    // RestartSec=2s: three periods later it is still stopped, never restarted.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const later = await c.unitProperties(AGENT_UNIT, props);
    assert.deepEqual([later.ActiveState, later.NRestarts], ['failed', '0'], `not restarted: ${JSON.stringify(later)}`);
    assert.match(await c.journal(AGENT_UNIT, 100), /stopped, not restarted \(exit 5\): the controller refused \(revoked\): .*the server says/, 'the journal says why it stopped, with the controller\'s own words');
    // journald got each line's priority: `-p err` shows the errors (JSON and message line), no info.
    const errors = await c.journal(AGENT_UNIT, 100, 'err');
    assert.match(errors, /"level":"error".*stopped, not restarted \(exit 5\)/, `journalctl -p err:\n${errors}`);
    assert.match(errors, /^cartridge-agent: cannot fetch the payload/m, 'the message line is an error too');
    assert.doesNotMatch(errors, /"level":"info"|discovering payload pointer/, 'no info line at priority err');
    assert.match(await c.journal(AGENT_UNIT, 100), /"level":"info".*discovering payload pointer/, 'the info lines are in the journal (at their priority)');
    // The early unit restored the last good rules, and the failed boot left them in force: the
    // allowed port is let through (refused: the app that would listen needs the exports), the
    // other is dropped.
    const seen = await (pair as NetnsPair).probe(targets('tcp', [ALLOWED_PORT, BLOCKED_PORT]), 1_000);
    assert.deepEqual(seen, {
      [`tcp/${ALLOWED_PORT} ipv4`]: 'refused',
      [`tcp/${ALLOWED_PORT} ipv6`]: 'refused',
      [`tcp/${BLOCKED_PORT} ipv4`]: 'timeout',
      [`tcp/${BLOCKED_PORT} ipv6`]: 'timeout',
    });
    assert.equal(await c.poweroff(), 0, 'the container did not power off cleanly');
  });
});
