/**
 * Reads the machine's numbers for a health report: thin I/O around proc.ts. Every path is an
 * image path resolved through RootedPaths, so tests point it at fixture /proc files. A file
 * that cannot be read gives an empty/zero value and a note in `errors`, never a failed report.
 */
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import type { FirewallPolicy, Protocol } from '../firewall/types';
import type { RootedPaths } from '../paths';
import type { DiskUsage, HealthReport } from '../protocol/mqtt';
import {
  countCpus, diskUsage, isLoopbackAddress, parseBlockMounts, parseLoadavg, parseMeminfo, parseNetDev,
  parseProcNetSockets, parseUptime, uniqueListeners, type Listener,
} from './proc';

/** The machine part of a health report (the wire type decides the shape). */
export type MachineMetrics = Pick<HealthReport, 'uptimeS' | 'load' | 'cpus' | 'mem' | 'disk' | 'net' | 'listening'> & {
  /** Files that could not be read this time (logged by the caller at debug level). */
  errors: string[];
};

/** Is (proto, port) in the allowlist? Built from the firewall policy or a plain list. */
export type AllowPredicate = (proto: Protocol, port: number) => boolean;

/** Any rule of that protocol whose range holds the port (source-limited rules count: the port is meant to be open). */
export function allowPredicateFromPolicy(policy: FirewallPolicy): AllowPredicate {
  return (proto, port) => policy.rules.some((r) => r.proto === proto && port >= r.ports.from && port <= r.ports.to);
}

export const MAX_DISKS = 16;

export class MetricsCollector {
  constructor(
    private readonly paths: RootedPaths,
    /** Disk usage via statfs (Node ≥ 18.15); injectable for tests under --root. */
    private readonly statfsFn: typeof statfs = statfs,
  ) {}

  async collect(allowed: AllowPredicate): Promise<MachineMetrics> {
    const errors: string[] = [];
    const read = async <T>(file: string, parse: (text: string) => T, fallback: T): Promise<T> => {
      try {
        return parse(await readFile(this.paths.resolve(file), 'utf8'));
      } catch (err) {
        errors.push(`${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        return fallback;
      }
    };
    const [uptimeS, load, cpuinfoCount, mem, net, mounts, ...socketLists] = await Promise.all([
      read('/proc/uptime', parseUptime, 0),
      read<[number, number, number]>('/proc/loadavg', parseLoadavg, [0, 0, 0]),
      read('/proc/cpuinfo', countCpus, 0),
      read('/proc/meminfo', parseMeminfo, { totalB: 0, availB: 0 }),
      read('/proc/net/dev', parseNetDev, { rxB: 0, txB: 0 }),
      read('/proc/mounts', parseBlockMounts, []),
      read('/proc/net/tcp', (t) => parseProcNetSockets(t, 'tcp'), [] as Listener[]),
      read('/proc/net/tcp6', (t) => parseProcNetSockets(t, 'tcp'), [] as Listener[]),
      read('/proc/net/udp', (t) => parseProcNetSockets(t, 'udp'), [] as Listener[]),
      read('/proc/net/udp6', (t) => parseProcNetSockets(t, 'udp'), [] as Listener[]),
    ]);
    const listening = uniqueListeners(socketLists.flat()).map((l) => ({
      proto: l.proto,
      port: l.port,
      addr: l.addr,
      loopback: isLoopbackAddress(l.addr),
      allowed: allowed(l.proto, l.port),
    }));
    return {
      uptimeS,
      load,
      cpus: cpuinfoCount || os.cpus().length,
      mem,
      disk: await this.disks(mounts.length ? mounts.slice(0, MAX_DISKS) : [{ mount: '/', fsType: 'unknown' }], errors),
      net,
      listening,
      errors,
    };
  }

  private async disks(mounts: Array<{ mount: string; fsType: string }>, errors: string[]): Promise<DiskUsage[]> {
    const out: DiskUsage[] = [];
    for (const { mount, fsType } of mounts) {
      try {
        const s = await this.statfsFn(this.paths.resolve(mount));
        out.push({ mount, fsType, ...diskUsage(s.blocks, s.bfree, s.bavail, s.bsize) });
      } catch (err) {
        errors.push(`statfs ${mount}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    return out;
  }
}
