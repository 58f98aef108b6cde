/**
 * EmbeddedBroker: aedes on a TCP port, so `cartridge-controller serve` needs no external
 * service. aedes 1.x speaks MQTT 3.1.1 only (it refuses protocolVersion 5 at CONNECT) and
 * has no `$share`: agents pointed at it must set health.protocolVersion "3.1.1", and the
 * FleetTracker uses plain subscriptions (no shareGroup). Scaling out means an external broker.
 *
 * Optional access control (member-acl.ts, the same rule as the generated mosquitto config):
 * with `authenticate` set, every client must log in, and the login says who it is (an operator
 * or a member of a cluster); with `acl` set too, a member must connect with its own member id
 * as client id (encoded, memberClientId) — a CONNECT with another's is refused before aedes
 * looks at the existing session, so it cannot take it over or fire its will — and may publish
 * (its will included) and subscribe only under its own `<prefix>/<cluster>/<member>/`, plus,
 * with `acl.stratosEvents`, Stratos events whose body names itself (the broker reads it).
 */
import net from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { mayPublish, maySubscribe, mayUseClientId, type BrokerLogin, type MemberAclRules } from './member-acl';

export interface EmbeddedBrokerOptions {
  port: number;
  host?: string;
  /** username, password → who logged in, or null (refused). Without it anyone may connect. */
  authenticate?: (username: string, password: string) => BrokerLogin | null;
  acl?: MemberAclRules;
}

/** CONNACK return codes (MQTT 3.1.1). */
const IDENTIFIER_REJECTED = 2;
const BAD_CREDENTIALS = 4;

export class EmbeddedBroker {
  private readonly logins = new WeakMap<Client, BrokerLogin>();

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
    const refuse = (message: string, returnCode: number): AuthenticateError => Object.assign(new Error(message), { returnCode }) as AuthenticateError;
    if (authenticate) {
      this.aedes.authenticate = (client, username, password, done) => {
        let login: BrokerLogin | null = null;
        try {
          login = username !== undefined && password !== undefined ? authenticate(username, password.toString('utf8')) : null;
        } catch {
          login = null; // a throwing callback must not let anyone in
        }
        if (!login) return done(refuse('bad username or password', BAD_CREDENTIALS), false);
        if (acl && !mayUseClientId(login, client.id)) return done(refuse(`client id ${client.id} is not ${username}'s`, IDENTIFIER_REJECTED), false);
        this.logins.set(client, login);
        done(null, true);
      };
    }
    if (!acl) return;
    // null client: the broker itself (e.g. $SYS); undefined login: no authenticate hook.
    const who = (client: Client | null): BrokerLogin | null | undefined => (client ? this.logins.get(client) : null);
    this.aedes.authorizePublish = (client, packet, done) => {
      const login = who(client);
      if (login === null || (login !== undefined && mayPublish(acl, login, packet.topic, packet.payload))) return done(null);
      done(new Error(`${client?.id ?? 'anonymous'} may not publish to ${packet.topic}`));
    };
    this.aedes.authorizeSubscribe = (client, sub, done) => {
      const login = who(client);
      if (login !== null && login !== undefined && maySubscribe(acl, login, sub.topic)) return done(null, sub);
      done(null, null); // a refused filter in the SUBACK (0x80); an error would drop the connection
    };
  }
}
