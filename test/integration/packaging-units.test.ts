/**
 * The systemd units as the real systemd 252 tools see them: `systemd-analyze verify` against
 * an image root baked by bake.sh (verify needs the ExecStart binaries and the standard
 * targets, so it runs with --root on that root), and the offline security exposure, parsed
 * from `systemd-analyze security`'s own output.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { RUN_TERMINAL_EXIT_CODES } from '../../agent/src/daemon/boot-retry';
import { requireCommands, requireFile } from '../helpers/env';
import { BAKE, UNITS, UNIT_SOURCES, bundleBuilt, makeImageRoot, runSh, tempDir, writeIn } from '../fixtures/packaging/image';

/** The most exposure systemd-analyze may report for each unit (issue 6: at most 3.0). */
const MAX_EXPOSURE = 3.0;

function analyze(args: string[]): { code: number | null; out: string } {
  // From an empty directory: verify also looks at unit files in the working directory.
  const { dir, cleanup } = tempDir('ca-analyze-');
  try {
    const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', cwd: dir, env: { ...process.env, SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' } });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    cleanup();
  }
}

/** "→ Overall exposure level for X.service: 2.5 OK 🙂" → 2.5 */
function parseExposure(output: string, unit: string): number {
  const m = new RegExp(`Overall exposure level for ${unit.replace(/\./g, '\\.')}: (\\d+(?:\\.\\d+)?)`).exec(output);
  assert.ok(m, `no exposure figure for ${unit} in:\n${output}`);
  return Number(m[1]);
}

describe('systemd-analyze verify', () => {
  it('prints nothing for the three units in a baked image root', (t) => {
    if (!requireCommands(t, 'systemd-analyze', 'systemctl', 'dash') || !requireFile(t, bundleBuilt(), 'no dist/cartridge-agent.js: run npm run build')) return;
    const { root, cleanup } = makeImageRoot({ systemdUnits: true });
    t.after(cleanup);
    const bake = runSh(BAKE, ['--root', root]);
    assert.equal(bake.code, 0, bake.err);
    for (const unit of UNITS) {
      const r = analyze(['verify', `--root=${root}`, unit]);
      assert.equal(r.out, '', `systemd-analyze verify ${unit}:\n${r.out}`);
      assert.equal(r.code, 0);
    }
  });

  it('control: a broken unit and a missing ExecStart binary are reported', (t) => {
    if (!requireCommands(t, 'systemd-analyze', 'systemctl', 'dash') || !requireFile(t, bundleBuilt(), 'no dist/cartridge-agent.js: run npm run build')) return;
    const { root, cleanup } = makeImageRoot({ systemdUnits: true, node: false });
    t.after(cleanup);
    assert.equal(runSh(BAKE, ['--root', root]).code, 0);
    const unitFile = path.join(root, 'lib/systemd/system/cartridge-agent-firewall.service');
    writeFileSync(unitFile, readFileSync(unitFile, 'utf8').replace('[Service]\n', '[Service]\nProtectSystm=strict\n'));
    rmSync(path.join(root, 'usr/lib/cartridge-agent/firewall-restore.sh'));
    const r = analyze(['verify', `--root=${root}`, 'cartridge-agent-firewall.service']);
    assert.match(r.out, /Unknown key 'ProtectSystm' in section \[Service\]/);
    assert.match(r.out, /\/usr\/lib\/cartridge-agent\/firewall-restore\.sh is not executable: No such file or directory/);
    assert.match(analyze(['verify', `--root=${root}`, 'cartridge-agent.service']).out, /\/usr\/bin\/node is not executable: No such file or directory/);
  });
});

describe('systemd-analyze security --offline=yes', () => {
  for (const unit of UNITS) {
    it(`${unit}: overall exposure at most ${MAX_EXPOSURE}`, (t) => {
      if (!requireCommands(t, 'systemd-analyze')) return;
      const r = analyze(['security', '--offline=yes', path.join(UNIT_SOURCES, unit)]);
      const exposure = parseExposure(r.out, unit);
      t.diagnostic(`${unit}: exposure ${exposure}`);
      assert.ok(exposure <= MAX_EXPOSURE, `${unit}: exposure ${exposure} > ${MAX_EXPOSURE}:\n${r.out}`);
    });
  }

  it('control: an unhardened unit scores far above the limit (the figure is really parsed)', (t) => {
    if (!requireCommands(t, 'systemd-analyze')) return;
    const { dir, cleanup } = tempDir('ca-unit-');
    t.after(cleanup);
    const unit = path.join(dir, 'plain.service');
    writeFileSync(unit, '[Service]\nExecStart=/bin/true\n');
    const exposure = parseExposure(analyze(['security', '--offline=yes', unit]).out, 'plain.service');
    assert.ok(exposure > 9, `an unhardened service should be ~9.6, got ${exposure}`);
  });
});

describe('cartridge-controller.service (the controller machine, not the image)', () => {
  const UNIT = 'cartridge-controller.service';
  it('systemd-analyze verify prints nothing', (t) => {
    if (!requireCommands(t, 'systemd-analyze', 'systemctl')) return;
    const { root, cleanup } = makeImageRoot({ systemdUnits: true });
    t.after(cleanup);
    writeIn(root, `/etc/systemd/system/${UNIT}`, readFileSync(path.join(UNIT_SOURCES, UNIT), 'utf8'));
    writeIn(root, '/usr/lib/cartridge-controller/cartridge-controller.js', '');
    const r = analyze(['verify', `--root=${root}`, UNIT]);
    assert.equal(r.out, '', `systemd-analyze verify ${UNIT}:\n${r.out}`);
    assert.equal(r.code, 0);
  });

  it(`overall exposure at most ${MAX_EXPOSURE}, with a user of its own and no capabilities`, (t) => {
    if (!requireCommands(t, 'systemd-analyze')) return;
    const file = path.join(UNIT_SOURCES, UNIT);
    const exposure = parseExposure(analyze(['security', '--offline=yes', file]).out, UNIT);
    t.diagnostic(`${UNIT}: exposure ${exposure}`);
    assert.ok(exposure <= MAX_EXPOSURE, `${UNIT}: exposure ${exposure} > ${MAX_EXPOSURE}`);
    const text = readFileSync(file, 'utf8');
    for (const line of ['DynamicUser=yes', 'CapabilityBoundingSet=\n', 'StateDirectory=cartridge-controller', 'serve --state ${STATE_DIRECTORY} $CARTRIDGE_CONTROLLER_OPTS']) {
      assert.ok(text.includes(line), `${UNIT} has ${JSON.stringify(line)}`);
    }
  });
});

describe('unit contracts other parts rely on', () => {
  const agent = readFileSync(path.join(UNIT_SOURCES, 'cartridge-agent.service'), 'utf8');
  const lines = agent.split('\n');
  const has = (line: string) => assert.ok(lines.includes(line), `cartridge-agent.service lacks "${line}"`);

  it('notify, watchdog, restarts, preserved runtime dir, code cache, node flags on the ExecStart line', () => {
    has('Type=notify');
    has('NotifyAccess=all'); // systemd-notify is a child process (agent/src/systemd/notify.ts)
    has('RuntimeDirectoryPreserve=yes'); // dependent units read /run/cartridge-agent/payload.env
    has('Environment=CARTRIDGE_AGENT_CODE_CACHE=%C/cartridge-agent');
    has('CacheDirectory=cartridge-agent');
    has('Restart=on-failure');
    has('StartLimitIntervalSec=0');
    // Terminal exits of `run` are not restarted every 2 s forever (the daemon's own list).
    has(`RestartPreventExitStatus=${RUN_TERMINAL_EXIT_CODES.join(' ')}`);
    // The bench reads the node flags from this line.
    has('ExecStart=/usr/bin/node --max-semi-space-size=1 --jitless --no-expose-wasm /usr/lib/cartridge-agent/cartridge-agent.js run');
    has('Environment=MALLOC_MMAP_THRESHOLD_=131072');
    // node runs --jitless, so no W+X memory is needed: denied (hooks inherit it; docs/packaging.md).
    has('MemoryDenyWriteExecute=yes');
    assert.match(agent, /^ExecStart=\/usr\/bin\/node [^\n]*--jitless/m, 'MemoryDenyWriteExecute needs node without its JIT');
    const watchdog = /^WatchdogSec=(\d+)s$/m.exec(agent);
    assert.ok(watchdog && Number(watchdog[1]) >= 20, 'WatchdogSec must leave the agent room (it pings at half)');
    // systemd must not kill a start that is still within the agent's own default deadlines.
    const startTimeout = /^TimeoutStartSec=(\d+)min$/m.exec(agent);
    const defaults = parseConfig({});
    const needed = defaults.sources.waitSeconds + defaults.payload.fetch.deadlineSeconds + defaults.firewall.guard.timeoutMs / 1000;
    assert.ok(startTimeout && Number(startTimeout[1]) * 60 >= needed + 30, `TimeoutStartSec must exceed ${needed} s of default waiting`);
  });

  it('the firewall restore runs before the network on every boot', () => {
    const fw = readFileSync(path.join(UNIT_SOURCES, 'cartridge-agent-firewall.service'), 'utf8').split('\n');
    for (const line of ['DefaultDependencies=no', 'Before=network-pre.target shutdown.target', 'Wants=network-pre.target', 'WantedBy=sysinit.target',
      'ExecStart=/usr/lib/cartridge-agent/firewall-restore.sh', 'RemainAfterExit=yes', 'MemoryDenyWriteExecute=yes']) {
      assert.ok(fw.includes(line), `cartridge-agent-firewall.service lacks "${line}"`);
    }
    // The early restore costs no Node start (the script hands over to the agent only when it must).
    assert.ok(!fw.some((l) => /^ExecStart.*node/.test(l)), 'the early unit must not start Node');
    // Nothing the agent does not need sits in front of it: a local pointer needs no network-online.
    assert.ok(!lines.some((l) => /^(After|Wants|Requires)=.*network-online\.target/.test(l)), 'the agent must not wait for network-online.target');
    assert.ok(lines.some((l) => l.startsWith('After=') && l.split(/[= ]/).includes('network.target')), 'After=network.target: the offline report at shutdown needs the network');
    assert.ok(lines.some((l) => l.startsWith('After=') && l.includes('cartridge-agent-firewall.service') && l.includes('cartridge-agent-seed.service')));
  });
});
