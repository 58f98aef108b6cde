/**
 * `serve`: the HTTP server and the FleetTracker, with an embedded aedes broker (default) or an
 * external one. Writes <state>/serve.json (URLs, pid) so `register`, `fleet` and `terminate`
 * find the running controller without flags; removed on stop.
 */
import { timingSafeEqual } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { readFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../agent/src/io/staged-write';
import type { Logger } from '../../agent/src/log';
import { DEFAULT_TOPIC_PREFIX } from '../../agent/src/protocol/mqtt';
import { ControllerError, ControllerExit, describeError } from './errors';
import { EmbeddedBroker, FleetTracker, type BrokerLogin } from './fleet';
import { ControllerHttp } from './http';
import { ControllerKeys } from './keys';
import { memberCredentials } from './member-payload';
import { MemberStore } from './members';

export const SERVE_INFO_FILE = 'serve.json';
/** The tracker's username on the embedded broker when --mqtt-auth is on (its password: the admin token). */
export const CONTROLLER_MQTT_USER = 'cartridge-controller';

export type BrokerChoice =
  | { kind: 'embedded'; host: string; port: number; auth: boolean }
  | {
      kind: 'external';
      url: string;
      username?: string;
      password?: string;
      /** PEM text for an mqtts:// broker: CA to verify it, client certificate and key. */
      tls?: { ca?: string; cert?: string; key?: string };
      /** Default: 5 with a shareGroup, else 3.1.1 (FleetTracker). */
      protocolVersion?: 4 | 5;
    };

export interface ServeOptions {
  stateDir: string;
  http: { host: string; port: number };
  broker: BrokerChoice;
  shareGroup?: string;
  /** Base URL agents reach the payload server at; default: derived from the listen address. */
  publicUrl?: string;
  topicPrefix?: string;
  log: Logger;
}

export interface ServeInfo {
  pid: number;
  httpUrl: string;
  publicUrl: string;
  brokerUrl: string;
  /** The embedded aedes speaks MQTT 3.1.1 only: agents need health.protocolVersion "3.1.1". */
  embeddedBroker: boolean;
  startedAt: string;
}

export interface RunningController {
  info: ServeInfo;
  store: MemberStore;
  keys: ControllerKeys;
  http: ControllerHttp;
  tracker: FleetTracker;
  stop(): Promise<void>;
}

/** A wildcard listen address is not where agents can reach us: pick this host's first external IPv4. */
export function defaultPublicUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  if (url.hostname !== '0.0.0.0' && url.hostname !== '[::]') return httpUrl;
  const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
  url.hostname = external?.address ?? '127.0.0.1';
  return url.toString().replace(/\/$/, '');
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startController(opts: ServeOptions): Promise<RunningController> {
  const topicPrefix = opts.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
  const keys = await ControllerKeys.loadOrCreate(opts.stateDir);
  const store = new MemberStore(opts.stateDir, keys.tokenSecret);
  store.list(); // a corrupt store is an error now, not at the first request

  const cleanups: Array<() => Promise<void>> = [];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    let brokerUrl: string;
    let trackerAuth: { username?: string; password?: string } = {};
    if (opts.broker.kind === 'embedded') {
      const auth = opts.broker.auth;
      // Members log in with their payload's MB_USERNAME (= member id, for the ACL) and MB_PASSWORD,
      // as the member of the cluster they were registered in; a terminated member cannot log in again.
      const authenticate = (username: string, password: string): BrokerLogin | null => {
        if (username === CONTROLLER_MQTT_USER) return same(password, keys.adminToken) ? { role: 'superuser' } : null;
        const m = store.get(username);
        const creds = m && m.terminatedAt === null ? memberCredentials(m) : null;
        const ok = m !== undefined && creds !== null && creds.username === username && same(password, creds.password);
        return ok ? { role: 'member', clusterId: m.clusterId, memberId: m.memberId } : null;
      };
      const broker = await EmbeddedBroker.start({
        host: opts.broker.host,
        port: opts.broker.port,
        // Stratos events are allowed as docs/daemon.md tells agents to send them: the embedded
        // broker reads each one, so a member can send them only about itself (member-acl.ts).
        ...(auth ? { authenticate, acl: { topicPrefix, stratosEvents: true } } : {}),
      });
      cleanups.push(() => broker.close());
      brokerUrl = broker.url.replace('//0.0.0.0:', '//127.0.0.1:');
      if (auth) trackerAuth = { username: CONTROLLER_MQTT_USER, password: keys.adminToken };
    } else {
      brokerUrl = opts.broker.url;
      trackerAuth = { username: opts.broker.username, password: opts.broker.password };
    }

    const tracker = new FleetTracker({
      brokerUrl,
      ...trackerAuth,
      topicPrefix,
      // aedes has no $share: the group only makes sense on an external broker.
      shareGroup: opts.broker.kind === 'external' ? opts.shareGroup : undefined,
      ...(opts.broker.kind === 'external' && opts.broker.protocolVersion ? { protocolVersion: opts.broker.protocolVersion } : {}),
      ...(opts.broker.kind === 'external' && opts.broker.tls ? { mqttOptions: { ...opts.broker.tls, rejectUnauthorized: true } } : {}),
      // An external broker may replay retained statuses only to exact subscriptions (RabbitMQ
      // 3.10): ask for each registered member's, so a restart gets the whole fleet. aedes replays
      // them to the wildcard.
      ...(opts.broker.kind === 'external' ? { snapshotMembers: () => store.list().filter((m) => m.terminatedAt === null) } : {}),
      log: opts.log.child({ component: 'fleet' }),
    });
    await tracker.start();
    cleanups.push(() => tracker.stop());

    const http = new ControllerHttp({ store, keys, fleet: tracker, log: opts.log.child({ component: 'http' }) });
    const httpUrl = await http.listen(opts.http.host, opts.http.port);
    cleanups.push(() => http.close());

    const info: ServeInfo = {
      pid: process.pid,
      httpUrl,
      publicUrl: opts.publicUrl ?? defaultPublicUrl(httpUrl),
      brokerUrl: opts.broker.kind === 'external' ? redactBrokerUrl(brokerUrl) : brokerUrl,
      embeddedBroker: opts.broker.kind === 'embedded',
      startedAt: new Date().toISOString(),
    };
    const infoFile = path.join(opts.stateDir, SERVE_INFO_FILE);
    await writeFileAtomic(infoFile, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600, stage: 'controller info' });
    cleanups.push(async () => unlinkSync(infoFile));

    let stopping: Promise<void> | null = null;
    return { info, store, keys, http, tracker, stop: () => (stopping ??= undo()) };
  } catch (err) {
    await undo();
    if (err instanceof ControllerError) throw err;
    const hint = /EADDRINUSE/.test(describeError(err)) && opts.broker.kind === 'embedded'
      ? ' (another broker, e.g. mosquitto, may own the port: pick another --mqtt-port, or use it with --broker mqtt://HOST:PORT)'
      : '';
    throw new ControllerError(`cannot start the controller: ${describeError(err)}${hint}`, ControllerExit.USAGE);
  }
}

function redactBrokerUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/** The running controller's serve.json, or null when none is running for this state dir. */
export function readServeInfo(stateDir: string): ServeInfo | null {
  let info: ServeInfo;
  try {
    info = JSON.parse(readFileSync(path.join(stateDir, SERVE_INFO_FILE), 'utf8')) as ServeInfo;
  } catch {
    return null;
  }
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return null; // a killed serve left it behind
  }
  return typeof info.httpUrl === 'string' ? info : null;
}
