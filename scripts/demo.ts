/**
 * `npm run demo`: the whole loop on one machine, as a normal user. The controller stub starts
 * with its embedded MQTT broker; a member is registered; its personality file goes into a temp
 * image root; the bundled agent runs `once` (payload fetched and verified, env exported,
 * firewall planned — not applied, this is --root) and then `run` (health over MQTT); the
 * fleet table shows it ONLINE with health, then OFFLINE after a clean stop. Cleans up; exit 0.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startController } from '../controller-stub/src/serve';
import { renderFleetTable } from '../controller-stub/src/fleet-table';
import type { MembersResponse } from '../controller-stub/src/http';
import { payloadUrl, personalityContent } from '../controller-stub/src/userdata';
import { createLogger } from '../agent/src/log';
import { BUNDLE, makeImageRoot, runAgent } from './lib/fake-instance';

const CLUSTER = 'php.shop';
const MEMBER = 'php-member-1';

function section(title: string): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fleet(httpUrl: string): Promise<string> {
  const resp = (await (await fetch(`${httpUrl}/api/members`)).json()) as MembersResponse;
  return renderFleetTable(resp, Date.now());
}

async function run(args: string[]): Promise<number> {
  const r = await runAgent(args);
  process.stdout.write(r.out);
  if (r.err) process.stdout.write(r.err);
  if (r.code !== 0) process.stdout.write(`(exit code ${r.code})\n`);
  return r.code ?? 1;
}

async function demo(): Promise<number> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'cartridge-controller-'));
  const controller = await startController({
    stateDir,
    http: { host: '127.0.0.1', port: 0 },
    broker: { kind: 'embedded', host: '127.0.0.1', port: 0, auth: true },
    log: createLogger('warn', 2, 'cartridge-controller'),
  });
  const { info } = controller;
  let image: ReturnType<typeof makeImageRoot> | undefined;
  try {
    section('controller stub: payload server and embedded MQTT broker');
    process.stdout.write(`http ${info.httpUrl}   mqtt ${info.brokerUrl}\n`);

    const brokerPort = new URL(info.brokerUrl).port;
    const payload = [
      `APPLICATION_ID=shop,SERVICE_NAME=php,CLUSTER_ID=${CLUSTER},MEMBER_ID=${MEMBER},PORTS=80|443`,
      `MB_URLS=tcp://127.0.0.1:${brokerPort},MB_USERNAME=${MEMBER},MB_PASSWORD=demo-broker-secret`,
      'DB_URL=mysql://db:3306/shop?ssl=true',
    ].join(',');
    const reg = await controller.store.register(CLUSTER, MEMBER, payload, { ttlSeconds: 3600, singleUse: false });
    const personality = personalityContent(payloadUrl(info.publicUrl, MEMBER, reg.token));
    section(`registered ${CLUSTER}/${MEMBER}; personality file (token redacted here):`);
    process.stdout.write(personality.replace(/token=[^\s]+/, 'token=…') + '\n');

    image = makeImageRoot(personality.trim(), {
      payload: { publicKey: controller.keys.publicKeyBase64() },
      health: { protocolVersion: '3.1.1', intervalSeconds: 1 },
      readiness: { enabled: false },
    });
    // Under --root the agent reads /proc from the image root too (tests give it a fixed one);
    // the demo's instance is this machine, so its health shows this machine's load and memory.
    symlinkSync('/proc', image.at('/proc'));

    section(`cartridge-agent once --root ${image.root} (payload signature verified with the controller's key)`);
    const code = await run(['once', '--root', image.root, '--log-level', 'warn']);
    if (code !== 0) return code;
    section('/run/cartridge-agent/payload.env (systemd EnvironmentFile)');
    process.stdout.write(readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8'));
    section('firewall (under --root the agent only plans; as root on an instance it enforces)');
    await run(['firewall', 'plan', '--root', image.root, '--log-level', 'warn']);

    section('cartridge-agent run: health reports every second over MQTT');
    const agent = spawn(process.execPath, [BUNDLE, 'run', '--root', image.root, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (c) => resolve(c)));
    await sleep(4000);
    process.stdout.write(await fleet(info.httpUrl));
    await run(['status', '--root', image.root]);

    section('SIGTERM to the agent: offline on a clean stop');
    agent.kill('SIGTERM');
    process.stdout.write(`agent exited with ${await exited}\n`);
    await sleep(500);
    process.stdout.write(await fleet(info.httpUrl));
    return 0;
  } finally {
    await controller.stop();
    image?.remove();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

demo().then(
  (code) => {
    process.stdout.write(code === 0 ? '\ndemo finished; temp files removed\n' : `\ndemo failed (exit ${code})\n`);
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
