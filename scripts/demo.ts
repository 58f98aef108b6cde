/**
 * `npm run demo`: a controller stand-in serves a sample Stratos payload, a temp image root
 * gets a personality file pointing at it, and the bundled agent runs `once --root` against
 * it. Shows the pointer, the payload fetched and the exported files; cleans up; exit 0.
 * (The full controller-stub demo with MQTT health replaces this once it lands.)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { makeImageRoot, runAgent, SAMPLE_PAYLOAD, startPayloadServer } from './lib/fake-instance';

function section(title: string): void {
  process.stdout.write(`\n\x1b[1m== ${title}\x1b[0m\n`);
}

async function demo(): Promise<number> {
  const server = await startPayloadServer(SAMPLE_PAYLOAD);
  const image = makeImageRoot(server.url, { payload: { fetch: { deadlineSeconds: 2 } } });
  try {
    section('controller stand-in serving the payload (Stratos launch-params)');
    process.stdout.write(`${SAMPLE_PAYLOAD}\n`);
    section(`personality file in the image root: ${image.at('/etc/cartridge-agent/payload-url')}`);
    process.stdout.write(readFileSync(image.at('/etc/cartridge-agent/payload-url'), 'utf8'));

    section(`cartridge-agent discover --root ${image.root}`);
    await run(['discover', '--root', image.root, '--log-level', 'warn']);

    section(`cartridge-agent once --root ${image.root}`);
    const code = await run(['once', '--root', image.root, '--log-level', 'warn']);
    if (code !== 0) return code;

    section('/run/cartridge-agent/payload.env (systemd EnvironmentFile)');
    process.stdout.write(readFileSync(image.at('/run/cartridge-agent/payload.env'), 'utf8'));
    section('/etc/profile.d/cartridge-agent.sh, sourced by a real sh');
    const sh = spawnSync('sh', ['-c', `. '${image.at('/etc/profile.d/cartridge-agent.sh')}' && echo "SERVICE_NAME=$SERVICE_NAME PORTS=$PORTS DB_URL=$DB_URL"`], { encoding: 'utf8' });
    process.stdout.write(sh.stdout + sh.stderr);

    section(`cartridge-agent firewall plan --root ${image.root} (under --root: plan only)`);
    await run(['firewall', 'plan', '--root', image.root, '--log-level', 'warn']);

    section('controller unreachable on the next boot: the cached payload is used, loudly');
    await server.close();
    await run(['once', '--root', image.root, '--log-level', 'warn']);
    return 0;
  } finally {
    await server.close().catch(() => undefined);
    image.remove();
  }
}

async function run(args: string[]): Promise<number> {
  const r = await runAgent(args);
  process.stdout.write(r.out);
  if (r.err) process.stdout.write(r.err);
  if (r.code !== 0) process.stdout.write(`(exit code ${r.code})\n`);
  return r.code ?? 1;
}

demo().then(
  (code) => {
    process.stdout.write(code === 0 ? '\ndemo finished; temp image root removed\n' : `\ndemo failed (exit ${code})\n`);
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
