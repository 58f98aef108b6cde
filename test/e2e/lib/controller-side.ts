/**
 * The controller's side of the boot test, all inside the "client" network namespace of a
 * NetnsPair: a mosquitto broker (its own config), the controller stub (`cartridge-controller
 * serve` from the bundle, using that broker) and an MQTT observer that records every message
 * under the topic prefix, so the test sees what the controller sees. Each part can be stopped
 * and started again (boot 3: the controller is down while the instance reboots).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MembersResponse, MemberView } from '../../../controller-stub/src/http';
import { runCommand } from '../../../scripts/lib/fake-instance';
import type { NetnsPair } from '../../helpers/netns';
import { waitFor } from '../../helpers/wait';
export const CONTROLLER_BUNDLE = 'dist/cartridge-controller.js';
export const MQTT_PORT = 1883;
export const HTTP_PORT = 8088;

export interface ObservedMessage {
  at: number;
  topic: string;
  text: string;
  retain: boolean;
}

const OBSERVER = `
const mqtt = require('mqtt');
const c = mqtt.connect(process.argv[1], { reconnectPeriod: 300, clientId: 'e2e-observer-' + process.pid });
c.on('connect', () => c.subscribe('cartridge/#', { qos: 1 }));
c.on('message', (topic, payload, packet) => {
  process.stdout.write(JSON.stringify({ at: Date.now(), topic, text: payload.toString('utf8'), retain: packet.retain }) + '\\n');
});
c.on('error', () => {});
`;

/** A long-running process in a namespace, its output kept for error messages. */
function inNetns(ns: string, cmd: string, args: string[], onLine?: (line: string) => void): { child: ChildProcess; output: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  let partial = '';
  child.stdout?.on('data', (b: Buffer) => {
    text += b.toString();
    if (!onLine) return;
    partial += b.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l) onLine(l);
  });
  child.stderr?.on('data', (b: Buffer) => (text += b.toString()));
  return { child, output: () => text.slice(-4000) };
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}

export class ControllerSide {
  readonly messages: ObservedMessage[] = [];
  private broker?: ChildProcess;
  private serve?: ChildProcess;
  private observer?: ChildProcess;

  /** Namespace the controller runs in (the pair's client side). */
  readonly ns: string;
  /** Its address, as the instance reaches it. */
  readonly host: string;

  constructor(
    private readonly pair: NetnsPair,
    readonly workDir: string,
  ) {
    this.ns = pair.client;
    this.host = pair.clientV4;
  }

  get stateDir(): string {
    return path.join(this.workDir, 'controller-state');
  }
  get brokerUrl(): string {
    return `tcp://${this.host}:${MQTT_PORT}`;
  }
  get httpUrl(): string {
    return `http://${this.host}:${HTTP_PORT}`;
  }

  async start(): Promise<void> {
    await this.startBroker();
    await this.startServe();
    if (!this.observer) this.observer = inNetns(this.ns, process.execPath, ['-e', OBSERVER, `mqtt://${this.host}:${MQTT_PORT}`], (line) => this.messages.push(JSON.parse(line) as ObservedMessage)).child;
  }

  /** Controller and broker down (the observer stays, reconnecting, and sees what comes after). */
  async stopControllerAndBroker(): Promise<void> {
    await stopProcess(this.serve);
    await stopProcess(this.broker);
    this.serve = undefined;
    this.broker = undefined;
  }

  async stop(): Promise<void> {
    await stopProcess(this.observer);
    await this.stopControllerAndBroker();
  }

  private async startBroker(): Promise<void> {
    const conf = path.join(this.workDir, 'mosquitto.conf');
    writeFileSync(conf, [`listener ${MQTT_PORT} ${this.host}`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ''].join('\n'));
    const p = inNetns(this.ns, 'mosquitto', ['-c', conf]);
    this.broker = p.child;
    const listening = async () => (await this.pair.probeFrom(this.ns, [{ host: this.host, port: MQTT_PORT, proto: 'tcp' }], 500))[0] === 'open';
    await waitFor(`mosquitto in ${this.ns}`, listening, 10_000, () => p.output(), 100);
  }

  private async startServe(): Promise<void> {
    const p = inNetns(this.ns, process.execPath, [
      CONTROLLER_BUNDLE, 'serve', '--state', this.stateDir, '--http', `${this.host}:${HTTP_PORT}`,
      '--broker', `mqtt://${this.host}:${MQTT_PORT}`, '--log-level', 'warn',
    ]);
    this.serve = p.child;
    await waitFor('the controller stub to serve', () => p.output().includes('cartridge-controller serving'), 15_000, () => p.output(), 100);
  }

  /** `cartridge-controller register … --json` (the state dir is shared with the running serve). */
  async register(cluster: string, member: string, payloadFile: string): Promise<{ personality: string; userData: { plain: string }; publicKey: string }> {
    const r = await runCommand(process.execPath, [CONTROLLER_BUNDLE, 'register', '--state', this.stateDir, '--cluster', cluster, '--member', member, '--payload-file', payloadFile, '--public-url', this.httpUrl, '--json']);
    if (r.code !== 0) throw new Error(`register failed (${r.code}): ${r.err}`);
    return JSON.parse(r.out) as { personality: string; userData: { plain: string }; publicKey: string };
  }

  /** `cartridge-controller terminate` against the running serve (from inside its namespace). */
  async terminate(cluster: string, member: string): Promise<void> {
    const r = await runCommand('ip', ['netns', 'exec', this.ns, process.execPath, CONTROLLER_BUNDLE, 'terminate', '--state', this.stateDir, '--cluster', cluster, '--member', member, '--url', this.httpUrl]);
    if (r.code !== 0) throw new Error(`terminate failed (${r.code}): ${r.err}`);
  }

  /** The controller's view of one member (GET /api/members, from inside its namespace). */
  async member(cluster: string, member: string): Promise<MemberView | undefined> {
    const script = `fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(e.message); process.exit(1); })`;
    const r = await runCommand('ip', ['netns', 'exec', this.ns, process.execPath, '-e', script, `${this.httpUrl}/api/members`]);
    if (r.code !== 0) throw new Error(`GET /api/members failed: ${r.err}`);
    return (JSON.parse(r.out) as MembersResponse).members.find((m) => m.clusterId === cluster && m.memberId === member);
  }

  /** Messages recorded after `since` (epoch ms) whose topic ends with `suffix`, bodies parsed. */
  seen<T = Record<string, unknown>>(suffix: string, since = 0): Array<T & { at: number; retain: boolean }> {
    return this.messages
      .filter((m) => m.at >= since && m.topic.endsWith(suffix) && m.text !== '')
      .map((m) => ({ ...(JSON.parse(m.text) as T), at: m.at, retain: m.retain }));
  }
}
