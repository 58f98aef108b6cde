/**
 * EmbeddedBroker: aedes on a TCP port, so `cartridge-controller serve` needs no external
 * service. aedes 1.x speaks MQTT 3.1.1 only (it refuses protocolVersion 5 at CONNECT) and
 * has no `$share`: agents pointed at it must set health.protocolVersion "3.1.1", and the
 * FleetTracker uses plain subscriptions (no shareGroup). Scaling out means an external broker.
 *
 * Optional access control, the same rule as the mosquitto ACL in the docs
 * (`pattern write <prefix>/+/%u/#`, `pattern read <prefix>/+/%u/status`): with `authenticate`
 * set, every client must log in; with `acl` set too, a member (any user not in
 * acl.superusers) may publish, its last will included, only under
 * `<prefix>/<cluster>/<its username>/` and subscribe only to its own status topics.
 */
import net from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';

export interface EmbeddedBrokerOptions {
  port: number;
  host?: string;
  /** username, password → allowed? Without it anyone may connect. */
  authenticate?: (username: string, password: string) => boolean;
  acl?: { topicPrefix: string; superusers: string[] };
}

/** Pure: may `username` (a member) publish to / subscribe to `topic`? */
export function memberMayPublish(prefix: string, username: string, topic: string): boolean {
  if (!topic.startsWith(`${prefix}/`)) return false;
  const parts = topic.slice(prefix.length + 1).split('/');
  return parts.length === 3 && parts[0] !== '' && parts[1] === username && ['status', 'health', 'event'].includes(parts[2] ?? '');
}

export function memberMaySubscribe(prefix: string, username: string, filter: string): boolean {
  if (!filter.startsWith(`${prefix}/`)) return false;
  const parts = filter.slice(prefix.length + 1).split('/');
  // `+` for the cluster is allowed (an agent may not know it is read), the member must be itself.
  return parts.length === 3 && parts[0] !== '' && parts[0] !== '#' && parts[1] === username && parts[2] === 'status';
}

export class EmbeddedBroker {
  private readonly usernames = new WeakMap<Client, string>();

  private constructor(
    private readonly aedes: Aedes,
    private readonly server: net.Server,
    private readonly host: string,
    readonly port: number,
  ) {}

  static async start(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error(`EmbeddedBroker: port ${opts.port} is not a TCP port (0-65535)`);
    const aedes = await Aedes.createBroker();
    const server = net.createServer(aedes.handle);
    const host = opts.host ?? '127.0.0.1';
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, host, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      throw new Error(`embedded MQTT broker cannot listen on ${host}:${opts.port}: ${(err as Error).message}`);
    }
    const b = new EmbeddedBroker(aedes, server, host, (server.address() as net.AddressInfo).port);
    b.secure(opts);
    return b;
  }

  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `mqtt://${host}:${this.port}`;
  }

  /** Clients connected right now. */
  get connectedClients(): number {
    return this.aedes.connectedClients;
  }

  async close(): Promise<void> {
    // aedes.close() ends every client connection; only then can server.close() finish.
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private secure(opts: EmbeddedBrokerOptions): void {
    const { authenticate, acl } = opts;
    if (authenticate) {
      this.aedes.authenticate = (client, username, password, done) => {
        let ok = false;
        try {
          ok = username !== undefined && password !== undefined && authenticate(username, password.toString('utf8'));
        } catch {
          ok = false; // a throwing callback must not let anyone in
        }
        if (ok && username !== undefined) {
          this.usernames.set(client, username);
          return done(null, true);
        }
        const err = Object.assign(new Error('bad username or password'), { returnCode: 4 }) as AuthenticateError;
        done(err, false);
      };
    }
    if (!acl) return;
    const superusers = new Set(acl.superusers);
    const who = (client: Client | null): string | null | undefined => (client ? this.usernames.get(client) : null);
    this.aedes.authorizePublish = (client, packet, done) => {
      const user = who(client);
      if (user === null || (user !== undefined && superusers.has(user))) return done(null); // the broker itself, or an operator
      if (user !== undefined && memberMayPublish(acl.topicPrefix, user, packet.topic)) return done(null);
      done(new Error(`${user ?? 'anonymous'} may not publish to ${packet.topic}`));
    };
    this.aedes.authorizeSubscribe = (client, sub, done) => {
      const user = who(client);
      if (user !== null && user !== undefined && (superusers.has(user) || memberMaySubscribe(acl.topicPrefix, user, sub.topic))) return done(null, sub);
      done(null, null); // a refused filter in the SUBACK (0x80); an error would drop the connection
    };
  }
}
