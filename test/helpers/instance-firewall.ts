/**
 * An image root whose agent runs inside a NetnsPair's instance namespace, for the early-boot
 * firewall tests (firewall restore, the baseline): the bundle run through `ip netns exec` as
 * the early unit runs it, reboots played as fresh namespaces plus an emptied /run (the state dir
 * survives), and our rules read back from the kernel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { firewallOps } from '../../agent/src/firewall/apply';
import type { AppliedFirewall } from '../../agent/src/firewall/state';
import type { Backend } from '../../agent/src/firewall/types';
import { BUNDLE, makeImageRoot, runCommand, type ImageRoot, type RunResult } from '../../scripts/lib/fake-instance';
import { NetnsPair } from './netns';

export const STATE_FILE = '/var/lib/cartridge-agent/firewall.json';

/** An image whose agent enforces with `backend` (plus `firewall` config), with the payload as `once` would have exported it. */
export function imageFor(backend: Backend | 'auto', payload: Record<string, string>, firewall: Record<string, unknown> = {}): ImageRoot {
  const image = makeImageRoot(null, { firewall: { mode: 'enforce', backend, guard: { enabled: false }, ...firewall } });
  mkdirSync(image.at('/run/cartridge-agent'), { recursive: true });
  writeFileSync(image.at('/run/cartridge-agent/payload.json'), JSON.stringify(payload));
  return image;
}

/** The bundled agent inside the instance namespace, as the early-boot unit runs it. */
export function agentIn(pair: NetnsPair, image: ImageRoot, args: string[], opts: { node?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return runCommand('ip', ['netns', 'exec', pair.instance, opts.node ?? process.execPath, BUNDLE, ...args, '--root', image.root], 30_000, opts.env);
}

/** The instance (and the client beside it) comes up: a fresh network stack with listeners. */
export async function boot(ports: number[]): Promise<NetnsPair> {
  const pair = NetnsPair.create();
  await pair.listen(ports);
  return pair;
}

/** A reboot: a fresh network stack (empty ruleset) and an empty /run; the state dir survives. */
export async function reboot(pair: NetnsPair, image: ImageRoot, ports: number[]): Promise<NetnsPair> {
  pair.destroy();
  rmSync(image.at('/run'), { recursive: true, force: true });
  return boot(ports);
}

/** Our rules as the kernel reports them (null: none). */
export async function ours(pair: NetnsPair, backend: Backend): Promise<string | null> {
  return (await firewallOps(backend, pair.runner)).readBack();
}

export function record(image: ImageRoot): AppliedFirewall {
  return JSON.parse(readFileSync(image.at(STATE_FILE), 'utf8')) as AppliedFirewall;
}

/** A payload server (the controller stand-in) inside the client namespace: `body` at /payload/*, 404 elsewhere. */
const CONTROLLER = `
const http = require('http');
const [body, port] = [process.argv[1], Number(process.argv[2])];
http.createServer((req, res) => {
  if (!req.url.startsWith('/payload/')) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
}).listen(port, '::', () => console.log('ready'));
`;

/** Start the controller stand-in in `pair.client` on `port`; resolves once it listens. Kill the returned process when done. */
export async function startController(pair: NetnsPair, body: string, port: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', pair.client, process.execPath, '-e', CONTROLLER, body, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`controller exited (${code})`)));
  });
  return child;
}

export const RESTORE_SH = 'agent/bootstrap/firewall-restore.sh';
export const RESTORE_FILE = '/var/lib/cartridge-agent/firewall.restore';
export const BASELINE_RESTORE_FILE = '/var/lib/cartridge-agent/firewall-baseline.restore';
export const RULES_DIR = '/var/lib/cartridge-agent/firewall-rules';

/**
 * The early unit's sh restore inside the instance namespace, under `shell` (dash, bash). It may
 * hand over to the agent only when `handover` is set (the test's Node and bundle); otherwise
 * the Node it would hand over to does not exist, so a hand-over shows as a failure.
 */
export function restoreShIn(pair: NetnsPair, image: ImageRoot, shell: string, opts: { handover?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const node = opts.handover ? process.execPath : '/nonexistent/node';
  return runCommand('ip', ['netns', 'exec', pair.instance, shell, RESTORE_SH, '--root', image.root, '--node', node, '--bundle', BUNDLE], 30_000, opts.env);
}

/** What bake.sh does for the image: record the baseline and the early restore's decision. */
export async function bakeBaseline(image: ImageRoot): Promise<void> {
  const r = await runCommand(process.execPath, [BUNDLE, 'firewall', 'baseline', '--write', '--root', image.root]);
  if (r.code !== 0) throw new Error(`firewall baseline --write failed (exit ${r.code}): ${r.out}${r.err}`);
}

/** A manifest's key=value lines. */
export function manifest(image: ImageRoot, file: string): Record<string, string> {
  const lines = readFileSync(image.at(file), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}
