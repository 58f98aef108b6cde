/**
 * `cartridge-controller serve | register | fleet | terminate | mosquitto-config`. Argument parsing and output only;
 * the work is in serve.ts, members.ts, userdata.ts and http.ts. Results go to stdout, logs
 * (JSON, redacted) and errors to stderr.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../agent/src/log';
import { DEFAULT_TOPIC_PREFIX } from '../../agent/src/protocol/mqtt';
import { VERSION } from '../../agent/src/protocol/version';
import { ControllerError, ControllerExit, describeError } from './errors';
import { renderFleetTable } from './fleet-table';
import type { MembersResponse } from './http';
import { ControllerKeys } from './keys';
import { payloadFromAssignments } from './member-payload';
import { MemberStore } from './members';
import { renderMosquittoConfig, writeMosquittoConfig } from './mosquitto-config';
import { CONTROLLER_MQTT_USER, readServeInfo, startController, type BrokerChoice } from './serve';
import { issueToken, newNonce } from './tokens';
import { mimeUserData, payloadUrl, personalityContent, plainUserData } from './userdata';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Resolves when the process is asked to stop (serve). */
  waitForStop(): Promise<string>;
}

export const EXIT_CODES = `Exit codes:
  0  success
  1  internal error
  2  usage error (bad flag, bad value, port in use)
  3  state dir unusable (keys, member store, lock)
  4  payload refused (the agent's parser rejects it, ids mismatch, personality over 1000 bytes)
  5  the running controller is unreachable or refused the request
  6  no such member`;

const STATE_HELP = `  --state DIR        controller state dir (keys, token secret, admin token, members.json);
                     default ./.cartridge-controller, or $CARTRIDGE_CONTROLLER_STATE`;

export const HELP: Record<string, string> = {
  main: `Usage: cartridge-controller <command> [options]

Commands:
  serve       run the payload server and the fleet tracker (embedded MQTT broker by default)
  register    register a member and print its personality file and cloud-init user data
  fleet       show the members of the running controller
  terminate   revoke a member's token and credentials, clear its retained MQTT topics
  mosquitto-config   write mosquitto's password file, ACL and listener config for the members
  version     print the version
  help [CMD]  show help (also: <command> --help)

Run 'cartridge-controller <command> --help' for a command's options.

${EXIT_CODES}
`,
  serve: `Usage: cartridge-controller serve [options]

Serves GET /payload/<member>?token=…, GET /api/members, GET /metrics and the admin endpoint
POST /api/members/<cluster>/<member>/terminate, and tracks the fleet over MQTT. Stops cleanly on
SIGTERM or SIGINT.

Options:
${STATE_HELP}
  --http HOST:PORT   HTTP listen address (default 127.0.0.1:8080; port 0 picks a free one)
  --mqtt-port N      embedded broker port (default 1883; 0 picks a free one)
  --mqtt-host HOST   embedded broker listen address (default: the --http host)
  --mqtt-auth        embedded broker requires logins: members use their payload's
                     MB_USERNAME (= the member id) / MB_PASSWORD and may publish only their own topics
                     (and Stratos instance/status events naming themselves)
  --broker URL       use an external broker (mqtt:// or mqtts://, credentials in the URL or
                     --broker-password-file) instead of the embedded one
  --broker-password-file FILE   password for the external broker
  --broker-ca FILE   CA certificate(s) to verify an mqtts:// broker (PEM)
  --broker-cert FILE, --broker-key FILE   client certificate and key (PEM) for an mqtts:// broker
  --broker-protocol V   3.1.1 or 5 (default 5 with --share, else 3.1.1)
  --share GROUP      MQTT 5 $share group for health and events (external broker; replicas split load)
  --public-url URL   base URL agents reach this server at (default: the listen address)
  --topic-prefix P   MQTT topic prefix (default cartridge/v1)
  --log-level L      ${LOG_LEVELS.join(', ')} (default info)

The embedded broker (aedes) speaks MQTT 3.1.1 only: agents need health.protocolVersion "3.1.1".

${EXIT_CODES}
`,
  register: `Usage: cartridge-controller register --cluster C --member M (--payload-file F | --set K=V …) [options]

Stores the member and its payload (checked with the agent's own parser), issues a token and prints
the personality file content, cloud-init user data (plain and MIME multipart) and the public key
for the agent's payload.publicKey. Registering an existing member replaces its payload and token.

Options:
${STATE_HELP}
  --cluster C          cluster id (the agent's CLUSTER_ID)
  --member M           member id (the agent's MEMBER_ID; unique across clusters)
  --payload-file F     payload file (Stratos launch-params, dotenv or JSON)
  --set K=V            a payload key (repeatable; builds a JSON payload, adds CLUSTER_ID and MEMBER_ID)
  --allow-name NAME    a name the image's agent config allows (payload.allowNames; repeatable)
  --ttl SECONDS        token lifetime (default 604800 = 7 days)
  --single-use         the token works for one successful fetch only (the instance that used
                       it reboots with the instance credential issued with that fetch)
  --public-url URL     base URL agents reach the controller at (default: the running serve's)
  --cloud-config F     a #cloud-config file to include as a part of the MIME user data
  --json               print one JSON object instead of text

${EXIT_CODES}
`,
  fleet: `Usage: cartridge-controller fleet [--json] [--url URL] [--state DIR]

Options:
${STATE_HELP}
  --url URL    the controller's HTTP base URL (default: the running serve's, from the state dir)
  --json       print GET /api/members as JSON

${EXIT_CODES}
`,
  terminate: `Usage: cartridge-controller terminate --cluster C --member M [--url URL] [--state DIR]

Revokes the member's token and its instance credentials (its payload URL answers 403 from now
on) and clears its retained MQTT topics, through the running controller's admin endpoint (admin
token from the state dir).

Options:
${STATE_HELP}
  --url URL    the controller's HTTP base URL (default: the running serve's, from the state dir)

${EXIT_CODES}
`,
  'mosquitto-config': `Usage: cartridge-controller mosquitto-config --out DIR [options]

Writes, for an external mosquitto 2.x, the files that give members the same rule as the embedded
broker with --mqtt-auth: DIR/cartridge-mosquitto.conf (include it from mosquitto.conf), DIR/passwd
(every live member's MB_USERNAME = member id / MB_PASSWORD, and the controller users) and DIR/acl
(each member: write its own <prefix>/<cluster>/<member>/status|health|event, read its own status).
The listener sets use_username_as_clientid, so nobody can connect with another member's client id.
Run it again after register and terminate, then reload mosquitto (SIGHUP).

Options:
${STATE_HELP}
  --out DIR                 where to write the three files
  --listen HOST:PORT        the members' listener (default 0.0.0.0:1883)
  --controller-user NAME    a user that may read and write everything under the prefix (repeatable;
                            default ${CONTROLLER_MQTT_USER}); one per controller replica, since a
                            client id is its username
  --controller-password-file F   their password (without it: add them with mosquitto_passwd)
  --topic-prefix P          MQTT topic prefix (default cartridge/v1)
  --stratos-events          also let members publish Stratos' instance/status/* events; those
                            topics name no member, so a member could speak for another there

${EXIT_CODES}
`,
};

const COMMON = { state: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
export const OPTIONS = {
  serve: {
    ...COMMON, http: { type: 'string' }, 'mqtt-port': { type: 'string' }, 'mqtt-host': { type: 'string' }, 'mqtt-auth': { type: 'boolean' },
    broker: { type: 'string' }, 'broker-password-file': { type: 'string' }, share: { type: 'string' }, 'public-url': { type: 'string' },
    'broker-ca': { type: 'string' }, 'broker-cert': { type: 'string' }, 'broker-key': { type: 'string' }, 'broker-protocol': { type: 'string' },
    'topic-prefix': { type: 'string' }, 'log-level': { type: 'string' },
  },
  register: {
    ...COMMON, cluster: { type: 'string' }, member: { type: 'string' }, 'payload-file': { type: 'string' }, set: { type: 'string', multiple: true },
    'allow-name': { type: 'string', multiple: true }, ttl: { type: 'string' }, 'single-use': { type: 'boolean' }, 'public-url': { type: 'string' },
    'cloud-config': { type: 'string' }, json: { type: 'boolean' },
  },
  fleet: { ...COMMON, url: { type: 'string' }, json: { type: 'boolean' } },
  terminate: { ...COMMON, url: { type: 'string' }, cluster: { type: 'string' }, member: { type: 'string' } },
  'mosquitto-config': {
    ...COMMON, out: { type: 'string' }, listen: { type: 'string' }, 'controller-user': { type: 'string', multiple: true },
    'controller-password-file': { type: 'string' }, 'topic-prefix': { type: 'string' }, 'stratos-events': { type: 'boolean' },
  },
} satisfies Record<string, ParseArgsConfig['options']>;
type Command = keyof typeof OPTIONS;

function usage(message: string): ControllerError {
  return new ControllerError(message, ControllerExit.USAGE);
}

function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw usage(`--${name} is required`);
  return v;
}

function intFlag(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw usage(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function parseHostPort(text: string, flag = '--http'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw usage(`${flag} must be HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), got ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port > 65535) throw usage(`${flag} port ${port} is not a TCP port`);
  return { host: (m[1] ?? m[2]) as string, port };
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw usage(`${flag} ${file}: ${describeError(err)}`);
  }
}

function stateDirOf(values: Record<string, unknown>): string {
  return path.resolve((values.state as string | undefined) ?? process.env.CARTRIDGE_CONTROLLER_STATE ?? '.cartridge-controller');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  // As cartridge-agent: no command, help and --help print the help on stdout and exit 0.
  if (command === undefined || command === '--help' || command === '-h') {
    io.out(HELP.main as string);
    return ControllerExit.OK;
  }
  if (command === 'version' || command === '--version') {
    io.out(`cartridge-controller ${VERSION}\n`);
    return ControllerExit.OK;
  }
  if (command === 'help') {
    const topic = rest[0];
    if (topic !== undefined && !(topic in OPTIONS)) {
      io.err(`cartridge-controller: help: unknown command ${JSON.stringify(topic)}; commands: ${Object.keys(OPTIONS).join(', ')}\n`);
      return ControllerExit.USAGE;
    }
    io.out(HELP[topic ?? 'main'] as string);
    return ControllerExit.OK;
  }
  try {
    if (!(command in OPTIONS)) throw usage(`unknown command ${JSON.stringify(command)}; commands: ${Object.keys(OPTIONS).join(', ')}, version, help`);
    const cmd = command as Command;
    let values: Record<string, unknown>;
    try {
      ({ values } = parseArgs({ args: rest, options: OPTIONS[cmd], strict: true, allowPositionals: false }));
    } catch (err) {
      throw usage(`${cmd}: ${describeError(err)}`);
    }
    if (values.help) {
      io.out(HELP[cmd] as string);
      return ControllerExit.OK;
    }
    if (cmd === 'serve') return await serve(values, io);
    if (cmd === 'register') return await register(values, io);
    if (cmd === 'fleet') return await fleet(values, io);
    if (cmd === 'mosquitto-config') return await mosquittoConfig(values, io);
    return await terminate(values, io);
  } catch (err) {
    if (err instanceof ControllerError) {
      io.err(`cartridge-controller: ${err.message}\n`);
      return err.exitCode;
    }
    io.err(`cartridge-controller: internal error: ${describeError(err)}\n`);
    return ControllerExit.INTERNAL;
  }
}

/** --broker-ca / --broker-cert / --broker-key: PEM files for an mqtts:// broker, read now (a bad path is a usage error). */
function externalBrokerTls(values: Record<string, unknown>, url: URL): { tls?: { ca?: string; cert?: string; key?: string } } {
  const file = (flag: string): string | undefined => (values[flag] === undefined ? undefined : readText(values[flag] as string, `--${flag}`));
  const [ca, cert, key] = [file('broker-ca'), file('broker-cert'), file('broker-key')];
  if (ca === undefined && cert === undefined && key === undefined) return {};
  if (url.protocol !== 'mqtts:') throw usage('--broker-ca, --broker-cert and --broker-key need an mqtts:// --broker');
  if ((cert === undefined) !== (key === undefined)) throw usage('--broker-cert and --broker-key go together');
  return { tls: { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined && key !== undefined ? { cert, key } : {}) } };
}

function externalBrokerProtocol(values: Record<string, unknown>): { protocolVersion?: 4 | 5 } {
  const v = values['broker-protocol'] as string | undefined;
  if (v === undefined) return {};
  if (v === '3.1.1') return { protocolVersion: 4 };
  if (v === '5') return { protocolVersion: 5 };
  throw usage(`--broker-protocol must be 3.1.1 or 5, got ${JSON.stringify(v)}`);
}

async function serve(values: Record<string, unknown>, io: CliIo): Promise<number> {
  const level = (values['log-level'] as string | undefined) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const httpAddr = parseHostPort((values.http as string | undefined) ?? '127.0.0.1:8080');
  let broker: BrokerChoice;
  if (values.broker !== undefined) {
    if (values['mqtt-port'] !== undefined || values['mqtt-auth']) throw usage('--broker (external) and --mqtt-port/--mqtt-auth (embedded) exclude each other');
    let url: URL;
    try {
      url = new URL(values.broker as string);
    } catch {
      throw usage(`--broker ${JSON.stringify(values.broker)} is not a URL`);
    }
    if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') throw usage('--broker must be an mqtt:// or mqtts:// URL');
    const username = url.username ? decodeURIComponent(url.username) : undefined;
    let password = url.password ? decodeURIComponent(url.password) : undefined;
    if (values['broker-password-file'] !== undefined) password = readText(values['broker-password-file'] as string, '--broker-password-file').trim();
    url.username = '';
    url.password = '';
    broker = { kind: 'external', url: url.toString().replace(/\/$/, ''), username, password, ...externalBrokerTls(values, url), ...externalBrokerProtocol(values) };
  } else {
    for (const flag of ['broker-ca', 'broker-cert', 'broker-key', 'broker-protocol']) if (values[flag] !== undefined) throw usage(`--${flag} needs --broker (an external broker)`);
    if (values.share !== undefined) throw usage('--share needs --broker: the embedded broker has no shared subscriptions');
    broker = { kind: 'embedded', host: (values['mqtt-host'] as string | undefined) ?? httpAddr.host, port: intFlag(values['mqtt-port'] as string | undefined, 'mqtt-port', 1883, 0, 65535), auth: values['mqtt-auth'] === true };
  }
  const running = await startController({
    stateDir: stateDirOf(values),
    http: httpAddr,
    broker,
    shareGroup: values.share as string | undefined,
    publicUrl: values['public-url'] as string | undefined,
    topicPrefix: values['topic-prefix'] as string | undefined,
    log: createLogger(level as LogLevel, 2, 'cartridge-controller'),
  });
  const { info } = running;
  io.out(
    `cartridge-controller serving\n  http:       ${info.httpUrl}\n  public url: ${info.publicUrl}\n` +
      `  mqtt:       ${info.brokerUrl}${info.embeddedBroker ? ' (embedded, MQTT 3.1.1)' : ''}\n  public key: ${running.keys.publicKeyBase64()}\n`,
  );
  const signal = await io.waitForStop();
  io.err(`cartridge-controller: ${signal}: stopping\n`);
  await running.stop();
  return ControllerExit.OK;
}

async function register(values: Record<string, unknown>, io: CliIo): Promise<number> {
  const clusterId = required(values, 'cluster');
  const memberId = required(values, 'member');
  const file = values['payload-file'] as string | undefined;
  const sets = (values.set as string[] | undefined) ?? [];
  if ((file === undefined) === (sets.length === 0)) throw usage('give the payload with either --payload-file F or --set K=V (not both)');
  const stateDir = stateDirOf(values);
  const publicUrl = (values['public-url'] as string | undefined) ?? readServeInfo(stateDir)?.publicUrl;
  if (!publicUrl) throw usage('--public-url is required when no controller is serving from this state dir (the URL agents reach the controller at)');
  const cloudConfig = values['cloud-config'] === undefined ? undefined : readText(values['cloud-config'] as string, '--cloud-config');

  const text = file !== undefined ? readText(file, '--payload-file') : payloadFromAssignments(sets, clusterId, memberId);
  const keys = await ControllerKeys.loadOrCreate(stateDir);
  const store = new MemberStore(stateDir, keys.tokenSecret);
  const ttlSeconds = intFlag(values.ttl as string | undefined, 'ttl', 7 * 86_400, 1, 10 * 365 * 86_400);
  // A token of the final length (same member id, same-width expiry and nonce) checks the
  // 1000-byte limit BEFORE anything is stored.
  const expiresAtS = Math.floor(Date.now() / 1000) + ttlSeconds;
  personalityContent(payloadUrl(publicUrl, memberId, issueToken(Buffer.alloc(32), { memberId, expiresAtS, nonce: newNonce() })));
  const reg = await store.register(clusterId, memberId, text, { ttlSeconds, singleUse: values['single-use'] === true, allowNames: (values['allow-name'] as string[] | undefined) ?? [] });
  const url = payloadUrl(publicUrl, memberId, reg.token);
  const personality = personalityContent(url);
  const result = {
    clusterId,
    memberId,
    replaced: reg.replaced,
    format: reg.record.format,
    tokenExpiresAt: new Date(reg.record.token.expiresAtS * 1000).toISOString(),
    singleUse: reg.record.token.singleUse,
    payloadUrl: url,
    personality,
    userData: { plain: plainUserData(url), mime: mimeUserData(url, cloudConfig === undefined ? {} : { cloudConfig }) },
    publicKey: keys.publicKeyBase64(),
  };
  if (values.json) {
    io.out(`${JSON.stringify(result, null, 2)}\n`);
    return ControllerExit.OK;
  }
  const embedded = readServeInfo(stateDir)?.embeddedBroker === true;
  const agentConfig = { payload: { publicKey: result.publicKey }, ...(embedded ? { health: { protocolVersion: '3.1.1' } } : {}) };
  io.out(
    `${reg.replaced ? 'Re-registered (earlier tokens no longer work)' : 'Registered'} ${clusterId}/${memberId}: ${result.format} payload; ` +
      `token expires ${result.tokenExpiresAt}${result.singleUse ? ', single use' : ''}\n\n` +
      `# Personality file content (e.g. /etc/cartridge-agent/payload-url; ${Buffer.byteLength(personality)} of 1000 bytes):\n${personality}\n` +
      `# cloud-init user data, plain:\n${result.userData.plain}\n` +
      `# cloud-init user data, MIME multipart:\n${result.userData.mime}\n` +
      `# Agent config (agent.json) so the agent accepts only payloads signed by this controller:\n${JSON.stringify(agentConfig)}\n`,
  );
  return ControllerExit.OK;
}

function controllerUrl(values: Record<string, unknown>): string {
  const given = values.url as string | undefined;
  if (given) return given.replace(/\/+$/, '');
  const info = readServeInfo(stateDirOf(values));
  if (!info) throw new ControllerError(`no controller is serving from ${stateDirOf(values)}; start 'cartridge-controller serve' or pass --url`, ControllerExit.UNREACHABLE);
  return info.httpUrl;
}

async function request(url: string, init: RequestInit): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new ControllerError(`cannot reach the controller at ${new URL(url).origin}: ${describeError(cause ?? err)}`, ControllerExit.UNREACHABLE);
  }
}

async function fleet(values: Record<string, unknown>, io: CliIo): Promise<number> {
  const { status, text } = await request(`${controllerUrl(values)}/api/members`, {});
  if (status !== 200) throw new ControllerError(`GET /api/members answered ${status}: ${text.trim()}`, ControllerExit.UNREACHABLE);
  const resp = JSON.parse(text) as MembersResponse;
  io.out(values.json ? `${JSON.stringify(resp, null, 2)}\n` : renderFleetTable(resp, Date.now()));
  return ControllerExit.OK;
}

async function terminate(values: Record<string, unknown>, io: CliIo): Promise<number> {
  const clusterId = required(values, 'cluster');
  const memberId = required(values, 'member');
  const keys = await ControllerKeys.loadOrCreate(stateDirOf(values));
  const endpoint = `${controllerUrl(values)}/api/members/${encodeURIComponent(clusterId)}/${encodeURIComponent(memberId)}/terminate`;
  const { status, text } = await request(endpoint, { method: 'POST', headers: { authorization: `Bearer ${keys.adminToken}` } });
  let body: { error?: string; retainedCleared?: boolean } = {};
  try {
    body = JSON.parse(text);
  } catch {
    // a plain-text refusal (401)
  }
  if (status === 404) throw new ControllerError(body.error ?? `no member ${clusterId}/${memberId}`, ControllerExit.NOT_FOUND);
  if (status === 502) throw new ControllerError(`token revoked, but ${body.error ?? 'clearing the retained topics failed'}`, ControllerExit.UNREACHABLE);
  if (status !== 200) throw new ControllerError(`terminate answered ${status}: ${(body.error ?? text).trim()}`, ControllerExit.UNREACHABLE);
  io.out(`terminated ${clusterId}/${memberId}: token revoked${body.retainedCleared ? ', retained topics cleared' : ''}\n`);
  return ControllerExit.OK;
}

async function mosquittoConfig(values: Record<string, unknown>, io: CliIo): Promise<number> {
  const out = path.resolve(required(values, 'out'));
  const listen = parseHostPort((values.listen as string | undefined) ?? '0.0.0.0:1883', '--listen');
  const passwordFile = values['controller-password-file'] as string | undefined;
  const controllerPassword = passwordFile === undefined ? null : readText(passwordFile, '--controller-password-file').replace(/\r?\n$/, '');
  if (controllerPassword === '') throw usage(`--controller-password-file ${passwordFile} is empty`);
  const stateDir = stateDirOf(values);
  const keys = await ControllerKeys.loadOrCreate(stateDir);
  const cfg = renderMosquittoConfig({
    members: new MemberStore(stateDir, keys.tokenSecret).list(),
    rules: { topicPrefix: (values['topic-prefix'] as string | undefined) ?? DEFAULT_TOPIC_PREFIX, stratosEvents: values['stratos-events'] === true },
    controllerUsers: (values['controller-user'] as string[] | undefined) ?? [CONTROLLER_MQTT_USER],
    controllerPassword,
    listen,
    dir: out,
  });
  const files = await writeMosquittoConfig(out, cfg);
  for (const s of cfg.skipped) io.err(`cartridge-controller: member ${s.memberId} left out (it cannot log in): ${s.why}\n`);
  io.out(
    `wrote ${files.join(', ')}\n${cfg.members.length} member(s): ${cfg.members.join(', ') || '(none)'}\n` +
      `Include ${files[2]} from mosquitto.conf (make passwd and acl readable by the mosquitto user), then reload mosquitto.\n`,
  );
  return ControllerExit.OK;
}
