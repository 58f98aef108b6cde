/**
 * Two real hosts for firewall tests: network namespaces "instance" and "client" joined by a
 * veth pair, each with an IPv4 and an IPv6 address. Listeners (TCP on several ports, UDP echo)
 * run inside the instance; probes run from the client with a short timeout and report
 * open / timeout (DROP) / refused. Names and addresses are random per pair (ca-fw-<hex>,
 * 10.213.N.0/24, fd00:ca:N::/64) so parallel test files never collide. Needs root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { netnsRunner, runCommand, type CommandRunner } from '../../agent/src/firewall/exec';
import type { ProbeFn } from '../../agent/src/firewall/guard';

export type ProbeOutcome = 'open' | 'timeout' | 'refused' | 'error';

export interface ProbeTarget {
  family: 'ipv4' | 'ipv6';
  proto: 'tcp' | 'udp';
  port: number;
}

export const targetKey = (t: ProbeTarget): string => `${t.proto}/${t.port} ${t.family}`;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
  return r.stdout;
}

const LISTENER = `
const net = require('net'), dgram = require('dgram');
const [tcp, udp] = JSON.parse(process.argv[1]);
let pending = tcp.length + udp.length;
const ready = () => { if (--pending === 0) console.log('ready'); };
for (const port of tcp) net.createServer((s) => s.destroy()).listen({ port, host: '::', ipv6Only: false }, ready);
for (const port of udp) {
  const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  sock.on('message', (m, r) => sock.send(m, r.port, r.address));
  sock.bind(port, '::', ready);
}
if (pending === 0) console.log('ready');
`;

const PROBE = `
const net = require('net'), dgram = require('dgram');
const [targets, timeoutMs] = JSON.parse(process.argv[1]);
function tcp(t) {
  return new Promise((resolve) => {
    const s = net.connect({ host: t.host, port: t.port });
    const done = (r) => { clearTimeout(timer); s.destroy(); resolve(r); };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.once('connect', () => done('open'));
    s.once('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  });
}
function udp(t) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(t.host.includes(':') ? 'udp6' : 'udp4');
    const done = (r) => { clearTimeout(timer); s.close(); resolve(r); };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.once('message', () => done('open'));
    s.once('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error'));
    s.connect(t.port, t.host, () => s.send('ping'));
  });
}
Promise.all(targets.map((t) => (t.proto === 'udp' ? udp(t) : tcp(t)))).then((r) => console.log(JSON.stringify(r)));
`;

/** One ICMP echo request over a raw socket (python3: Node has none); prints open or timeout. */
const PING = `
import os, socket, struct, sys, time
host, timeout = sys.argv[1], float(sys.argv[2])
v6 = ':' in host
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
kind, reply, ident = (128, 129, os.getpid() & 0xffff) if v6 else (8, 0, os.getpid() & 0xffff)
def checksum(b):
    total = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    total = (total >> 16) + (total & 0xffff)
    return ~(total + (total >> 16)) & 0xffff
body = b'cartridge-probe!'
packet = struct.pack('!BBHHH', kind, 0, 0, ident, 1) + body
if not v6:  # the kernel fills in the ICMPv6 checksum itself
    packet = struct.pack('!BBHHH', kind, 0, checksum(packet), ident, 1) + body
s.sendto(packet, (host, 0))
deadline = time.time() + timeout
result = 'timeout'
while time.time() < deadline:
    s.settimeout(max(deadline - time.time(), 0.001))
    try:
        data = s.recv(2048)
    except socket.timeout:
        break
    if not v6:
        data = data[(data[0] & 15) * 4:]
    if data[0] == reply and struct.unpack('!H', data[4:6])[0] == ident:
        result = 'open'
        break
print(result)
`;

export class NetnsPair {
  readonly instance: string;
  readonly client: string;
  readonly instanceV4: string;
  readonly clientV4: string;
  readonly instanceV6: string;
  readonly clientV6: string;
  /** Runs commands inside the instance namespace (what the agent's firewall code gets). */
  readonly runner: CommandRunner;
  private listeners: ChildProcess[] = [];

  private constructor() {
    const tag = randomBytes(3).toString('hex');
    const n = randomBytes(1)[0] as number;
    this.instance = `ca-fw-${tag}-i`;
    this.client = `ca-fw-${tag}-c`;
    this.instanceV4 = `10.213.${n}.1`;
    this.clientV4 = `10.213.${n}.2`;
    this.instanceV6 = `fd00:ca:${n.toString(16)}::1`;
    this.clientV6 = `fd00:ca:${n.toString(16)}::2`;
    this.runner = netnsRunner(this.instance);
  }

  static create(): NetnsPair {
    const pair = new NetnsPair();
    const tag = pair.instance.slice(6, 12);
    try {
      sh('ip', ['netns', 'add', pair.instance]);
      sh('ip', ['netns', 'add', pair.client]);
      sh('ip', ['link', 'add', `cafw${tag}i`, 'netns', pair.instance, 'type', 'veth', 'peer', 'name', `cafw${tag}c`, 'netns', pair.client]);
      for (const [ns, dev, v4, v6] of [
        [pair.instance, `cafw${tag}i`, pair.instanceV4, pair.instanceV6],
        [pair.client, `cafw${tag}c`, pair.clientV4, pair.clientV6],
      ] as const) {
        sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        sh('ip', ['-n', ns, 'addr', 'add', `${v4}/24`, 'dev', dev]);
        sh('ip', ['-n', ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad']);
        sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      }
    } catch (err) {
      pair.destroy();
      throw err;
    }
    return pair;
  }

  /** Run a command in a namespace; throws on failure (setup steps). */
  exec(ns: string, cmd: string, args: string[], input?: string): Promise<string> {
    return runCommand('ip', ['netns', 'exec', ns, cmd, ...args], { input, timeoutMs: 15_000 }).then((r) => {
      if (r.code !== 0) throw new Error(`${ns}: ${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}`);
      return r.stdout;
    });
  }

  /** Start TCP listeners and UDP echo servers on `::` (IPv4 and IPv6) in the instance (or `ns`). */
  async listen(tcpPorts: number[], udpPorts: number[] = [], ns = this.instance): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER, JSON.stringify([tcpPorts, udpPorts])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.listeners.push(child);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`listeners not ready: ${err}`)), 10_000);
      child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
      child.stdout?.on('data', (b: Buffer) => {
        if (b.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`listener exited (${code}): ${err}`));
      });
    });
  }

  /** Forget both neighbour caches so IPv6 has to go through neighbour discovery again. */
  async flushNeighbours(): Promise<void> {
    for (const ns of [this.instance, this.client]) {
      sh('ip', ['-n', ns, 'neigh', 'flush', 'all']);
      sh('ip', ['-n', ns, '-6', 'neigh', 'flush', 'all']);
    }
  }

  /** Probe all targets from the client in parallel (one process); neighbour caches flushed first. */
  async probe(targets: ProbeTarget[], timeoutMs = 400): Promise<Record<string, ProbeOutcome>> {
    await this.flushNeighbours();
    const withHost = targets.map((t) => ({ ...t, host: t.family === 'ipv4' ? this.instanceV4 : this.instanceV6 }));
    const results = await this.probeFrom(this.client, withHost, timeoutMs);
    return Object.fromEntries(targets.map((t, i) => [targetKey(t), results[i] as ProbeOutcome]));
  }

  /** Probe explicit host:port targets from inside `ns`, in parallel. */
  async probeFrom(ns: string, hostTargets: Array<{ host: string; port: number; proto: 'tcp' | 'udp' }>, timeoutMs: number): Promise<ProbeOutcome[]> {
    const out = await this.exec(ns, process.execPath, ['-e', PROBE, JSON.stringify([hostTargets, timeoutMs])]);
    return JSON.parse(out) as ProbeOutcome[];
  }

  /** ICMP echo from the client to the instance, IPv4 and IPv6 (neighbour caches flushed first: IPv6 needs ND). Needs python3. */
  async ping(timeoutMs = 1_000): Promise<{ ipv4: ProbeOutcome; ipv6: ProbeOutcome }> {
    await this.flushNeighbours();
    const one = async (host: string) => (await this.exec(this.client, 'python3', ['-c', PING, host, String(timeoutMs / 1000)])).trim() as ProbeOutcome;
    const [ipv4, ipv6] = await Promise.all([one(this.instanceV4), one(this.instanceV6)]);
    return { ipv4, ipv6 };
  }

  /** The lock-out guard's probe as the instance itself makes it: fresh TCP connections from inside the instance. */
  readonly instanceProbe: ProbeFn = async (endpoints, timeoutMs) => {
    const outcomes = await this.probeFrom(this.instance, endpoints.map((e) => ({ ...e, proto: 'tcp' as const })), timeoutMs);
    return endpoints.map((endpoint, i) => ({ endpoint, reachable: outcomes[i] === 'open', detail: outcomes[i] ?? 'no result' }));
  };

  destroy(): void {
    for (const l of this.listeners) l.kill('SIGKILL');
    this.listeners = [];
    for (const ns of [this.instance, this.client]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

/** Every combination of families and the given ports. */
export function targets(proto: 'tcp' | 'udp', ports: number[]): ProbeTarget[] {
  return ports.flatMap((port) => (['ipv4', 'ipv6'] as const).map((family) => ({ family, proto, port })));
}
