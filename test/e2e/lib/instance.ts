/**
 * One instance of the boot test: a private copy of the cached Debian image with the agent baked
 * in by agent/bootstrap/bake.sh (as an image baker would), plus a small app unit that consumes
 * the agent's exports the way a real service does (EnvironmentFile=) and listens on an allowed
 * and a blocked port so the firewall can be probed from outside.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BAKE, BUNDLE, runSh, writeIn } from '../../fixtures/packaging/image';
import { copyImage } from './image';

export const AGENT_UNIT = 'cartridge-agent.service';
export const FIREWALL_UNIT = 'cartridge-agent-firewall.service';
export const APP_UNIT = 'e2e-app.service';
export const ALLOWED_PORT = 8080;
export const BLOCKED_PORT = 9090;
/** Where the app writes the environment it was started with, once both ports listen. */
export const APP_REPORT = '/run/e2e-app/report.json';

const APP_JS = `
const net = require('net');
const fs = require('fs');
let pending = 2;
for (const port of [${ALLOWED_PORT}, ${BLOCKED_PORT}]) {
  net.createServer((s) => { s.on('error', () => {}); s.end('hello\\n'); }).listen({ port, host: '::', ipv6Only: false }, () => {
    if (--pending === 0) fs.writeFileSync('${APP_REPORT}', JSON.stringify({ env: process.env }));
  });
}
`;

const APP_UNIT_TEXT = `[Unit]
Description=e2e app: reads the agent's exports, listens on an allowed and a blocked port
Wants=${AGENT_UNIT}
After=${AGENT_UNIT}

[Service]
EnvironmentFile=/run/cartridge-agent/payload.env
RuntimeDirectory=e2e-app
ExecStart=/usr/bin/node /opt/e2e-app/app.js

[Install]
WantedBy=multi-user.target
`;

/**
 * Bake the agent into the image root `root` with agent/bootstrap/bake.sh: with `config` as its
 * agent.json (written to `workDir` first), or bake.sh's default config when null.
 */
export function bakeAgent(root: string, config: Record<string, unknown> | null, workDir: string): void {
  const args = ['--root', root, '--bundle', BUNDLE];
  if (config !== null) {
    const configFile = path.join(workDir, `agent-${path.basename(root)}.json`);
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    args.push('--config', configFile);
  }
  const bake = runSh(BAKE, args);
  if (bake.code !== 0) throw new Error(`bake.sh failed (exit ${bake.code}):\n${bake.out}${bake.err}`);
}

/** Copy the base image to `root`, bake the agent in with `config`, add the app unit. */
export function prepareInstance(base: string, root: string, config: Record<string, unknown>, workDir: string): void {
  copyImage(base, root);
  bakeAgent(root, config, workDir);

  writeIn(root, '/opt/e2e-app/app.js', APP_JS);
  writeIn(root, `/etc/systemd/system/${APP_UNIT}`, APP_UNIT_TEXT);
  const wants = path.join(root, 'etc/systemd/system/multi-user.target.wants');
  mkdirSync(wants, { recursive: true });
  symlinkSync(`/etc/systemd/system/${APP_UNIT}`, path.join(wants, APP_UNIT));
  // No console login prompt needed; keeps the console log to what matters.
  symlinkSync('/dev/null', path.join(root, 'etc/systemd/system/console-getty.service'));
}

/** Rackspace style: the personality file, injected into the image before the first boot. */
export function writePersonality(root: string, content: string): void {
  writeIn(root, '/etc/cartridge-agent/payload-url', content, 0o600);
}

/** cloud-init style: a NoCloud seed directory in the image. */
export function writeNoCloudSeed(root: string, userData: string, instanceId: string): void {
  writeIn(root, '/var/lib/cloud/seed/nocloud/user-data', userData);
  writeIn(root, '/var/lib/cloud/seed/nocloud/meta-data', `instance-id: ${instanceId}\nlocal-hostname: ${instanceId}\n`);
}
