/**
 * The whole boot work with the firewall enforced, for real: the bundled agent runs `once`
 * inside an "instance" network namespace, fetches its payload from a controller stand-in in a
 * "client" namespace over the veth link, exports it and applies the allowlist; then the client
 * probes ports over IPv4 and IPv6. The `firewall` commands (check, plan, apply, remove) are
 * exercised against the same kernel rules.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { requireCommands, requireRoot } from '../helpers/env';
import { startController } from '../helpers/instance-firewall';
import { NetnsPair, targets } from '../helpers/netns';
import { BUNDLE, makeImageRoot, runCommand, type ImageRoot } from '../../scripts/lib/fake-instance';

const CONTROLLER_PORT = 8000;
const PAYLOAD = (clientV6: string) => `SERVICE_NAME=php,PORTS=80|443,FIREWALL_ALLOW=tcp/8080 from ${clientV6}`;

let pair: NetnsPair | undefined;
let controller: ChildProcess | undefined;
let image: ImageRoot | undefined;

function agentInInstance(args: string[]) {
  return runCommand('ip', ['netns', 'exec', (pair as NetnsPair).instance, process.execPath, BUNDLE, ...args, '--root', (image as ImageRoot).root]);
}

before(async () => {
  if (process.getuid?.() !== 0) return;
  assert.ok(existsSync(BUNDLE), `${BUNDLE} missing: run 'npm run build' (npm test does)`);
  pair = NetnsPair.create();
  await pair.listen([22, 80, 443, 8080, 9000]);
  controller = await startController(pair, PAYLOAD(pair.clientV6), CONTROLLER_PORT);
  image = makeImageRoot(`http://${pair.clientV4}:${CONTROLLER_PORT}/payload/php.member-1?token=t`, {
    firewall: { mode: 'enforce' },
  });
});

after(() => {
  controller?.kill('SIGKILL');
  pair?.destroy();
  image?.remove();
});

test('once enforces the allowlist: allowed ports connect, others are dropped, IPv4 and IPv6', async (t) => {
  if (!requireRoot(t) || !requireCommands(t, 'ip', 'nft', 'iptables')) return;
  const p = pair as NetnsPair;

  const r = await agentInInstance(['once', '--json']);
  assert.equal(r.code, 0, r.err);
  const summary = JSON.parse(r.out);
  assert.equal(summary.firewall.mode, 'enforce');
  assert.equal(summary.firewall.backend, 'nft');
  assert.match(r.err, /controller still reachable after applying/);

  const seen = await p.probe([...targets('tcp', [22, 80, 443, 8080, 9000])]);
  assert.deepEqual(seen, {
    'tcp/22 ipv4': 'open', 'tcp/22 ipv6': 'open', // firewall.alwaysAllow: SSH is never locked out
    'tcp/80 ipv4': 'open', 'tcp/80 ipv6': 'open', // payload PORTS
    'tcp/443 ipv4': 'open', 'tcp/443 ipv6': 'open',
    'tcp/8080 ipv4': 'timeout', 'tcp/8080 ipv6': 'open', // FIREWALL_ALLOW from the client's IPv6 address only
    'tcp/9000 ipv4': 'timeout', 'tcp/9000 ipv6': 'timeout', // not allowed: dropped
  });
});

test('firewall check / plan / apply / remove against the same kernel rules', async (t) => {
  if (!requireRoot(t) || !requireCommands(t, 'ip', 'nft')) return;
  const p = pair as NetnsPair;

  const clean = await agentInInstance(['firewall', 'check']);
  assert.equal(clean.code, 0, clean.out + clean.err);
  assert.match(clean.out, /in force, no drift/);

  await p.exec(p.instance, 'nft', ['delete', 'table', 'inet', 'cartridge_agent']);
  const drifted = await agentInInstance(['firewall', 'check']);
  assert.equal(drifted.code, 9, drifted.out + drifted.err);
  assert.match(drifted.out, /DRIFT/);

  const plan = await agentInInstance(['firewall', 'plan']);
  assert.equal(plan.code, 0, plan.err);
  assert.match(plan.out, /table inet cartridge_agent/);
  assert.match(plan.out, /tcp dport 8080 .*comment "cartridge-agent: payload FIREWALL_ALLOW"/);

  const applied = await agentInInstance(['firewall', 'apply']);
  assert.equal(applied.code, 0, applied.err);
  assert.equal((await agentInInstance(['firewall', 'check'])).code, 0);
  assert.equal((await p.probe(targets('tcp', [9000])))['tcp/9000 ipv4'], 'timeout');

  const removed = await agentInInstance(['firewall', 'remove']);
  assert.equal(removed.code, 0, removed.err);
  assert.deepEqual(await p.probe(targets('tcp', [9000])), { 'tcp/9000 ipv4': 'open', 'tcp/9000 ipv6': 'open' });
});
