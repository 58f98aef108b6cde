/**
 * Where CloudStack's virtual router is, tried in the order docs/payload.md gives and explains:
 *  1. the `data-server` DNS name (CloudStack's VR answers it for itself),
 *  2. the DHCP server named by the newest lease file (networkd, NetworkManager device state,
 *     NetworkManager and dhclient lease files),
 *  3. the IPv4 default gateway in /proc/net/route.
 * The first step that yields an address wins; when none does, the reason lists why each failed.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { readdir, stat } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import path from 'node:path';
import type { SourceContext } from './types';
import { errnoCode, readCapped } from './common';
import { serverAddressFromLease } from './dhcp-lease';
import { parseDefaultGateway } from './proc-route';

const MAX_LEASE_BYTES = 256 * 1024;
const MAX_ROUTE_BYTES = 1024 * 1024;

/** IPv4 addresses for a host name. Injectable so that tests never ask a real DNS server. */
export type HostLookup = (name: string) => Promise<string[]>;

/** The system resolver (getaddrinfo: /etc/hosts, nsswitch, systemd-resolved), as cloud-init uses. */
export const systemLookup: HostLookup = async (name) => (await dnsLookup(name, { family: 4, all: true })).map((a) => a.address);

export interface VirtualRouter {
  address: string;
  step: 'dns' | 'lease' | 'gateway';
  /** Where the address came from, for the log and `discover`: "DNS name data-server", "lease file /run/…". */
  from: string;
}

type StepResult = VirtualRouter | { reason: string };

export class VirtualRouterFinder {
  /**
   * getaddrinfo cannot be cancelled: a lookup that outlives its timeout keeps a libuv thread.
   * It stays here until a probe sees it settle, so the next probe waits on (or takes the late
   * answer of) that same lookup instead of starting another: a hung resolver holds one thread,
   * not one per poll.
   */
  private inFlight: Promise<string[]> | null = null;

  constructor(private readonly lookup: HostLookup = systemLookup) {}

  async find(ctx: SourceContext): Promise<StepResult> {
    const failures: string[] = [];
    for (const [label, step] of [
      ['DNS', () => this.fromDns(ctx)],
      ['lease files', () => fromLeases(ctx)],
      ['default gateway', () => fromRoutes(ctx)],
    ] as const) {
      const r = await step();
      if ('address' in r) return r;
      failures.push(`${label}: ${r.reason}`);
    }
    return { reason: `no virtual router found (${failures.join('; ')})` };
  }

  private async fromDns(ctx: SourceContext): Promise<StepResult> {
    const cfg = ctx.config.sources.cloudstack;
    const name = cfg.dataServerName;
    if (name === null) return { reason: 'skipped (sources.cloudstack.dataServerName is null)' };
    if (!this.inFlight) {
      this.inFlight = Promise.resolve().then(() => this.lookup(name));
      this.inFlight.catch(() => undefined); // a lookup nobody waits for any more must not reject unhandled
    }
    let answer: string[] | 'timeout' | 'stopped';
    try {
      answer = await within(this.inFlight, cfg.connectTimeoutMs, ctx.signal);
      if (answer !== 'timeout' && answer !== 'stopped') this.inFlight = null;
    } catch (err) {
      this.inFlight = null;
      return { reason: `${name} does not resolve (${errnoCode(err) ?? (err as Error).message})` };
    }
    if (answer === 'timeout') return { reason: `no answer for ${name} within ${cfg.connectTimeoutMs} ms` };
    if (answer === 'stopped') return { reason: `lookup of ${name} stopped` };
    const address = answer.find((a) => isIPv4(a));
    if (!address) return { reason: `${name} has no IPv4 address` };
    return { address, step: 'dns', from: `DNS name ${name}` };
  }
}

/** `p`, or 'timeout' after `ms`, or 'stopped' when `signal` aborts; whichever comes first. */
async function within<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | 'timeout' | 'stopped'> {
  if (signal.aborted) return 'stopped';
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const cut = new Promise<'timeout' | 'stopped'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    onAbort = () => resolve('stopped');
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, cut]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The DHCP server named by the most recently written lease file in `leaseDirs` (in-image
 * paths; the first directory wins a tie). Several interfaces or stale leases from another DHCP
 * client may be present; the newest is the current one.
 */
export async function fromLeases(ctx: SourceContext): Promise<StepResult> {
  const dirs = ctx.config.sources.cloudstack.leaseDirs;
  let best: (VirtualRouter & { mtimeMs: number }) | null = null;
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(ctx.paths.resolve(dir));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') ctx.log.debug({ dir, err: String(err) }, 'cannot list lease directory');
      continue;
    }
    for (const name of names.sort()) {
      const leaseFile = path.posix.join(dir, name);
      const hostPath = ctx.paths.resolve(leaseFile);
      const st = await stat(hostPath).catch(() => null);
      if (!st?.isFile() || st.size > MAX_LEASE_BYTES) continue;
      const bytes = await readCapped(hostPath, MAX_LEASE_BYTES, 'cloudstack', leaseFile).catch(() => null);
      const address = bytes ? serverAddressFromLease(bytes.toString('utf8')) : null;
      if (address && (!best || st.mtimeMs > best.mtimeMs)) best = { address, step: 'lease', from: `lease file ${leaseFile}`, mtimeMs: st.mtimeMs };
    }
  }
  if (!best) return { reason: `no DHCP server address under ${dirs.join(', ') || '(no lease dirs configured)'}` };
  return { address: best.address, step: best.step, from: best.from };
}

/** The IPv4 default gateway from the kernel's routing table (`routeFile`, under --root). */
export async function fromRoutes(ctx: SourceContext): Promise<StepResult> {
  const file = ctx.config.sources.cloudstack.routeFile;
  if (file === null) return { reason: 'skipped (sources.cloudstack.routeFile is null)' };
  let bytes: Buffer | null;
  try {
    bytes = await readCapped(ctx.paths.resolve(file), MAX_ROUTE_BYTES, 'cloudstack', file);
  } catch (err) {
    return { reason: (err as Error).message };
  }
  if (!bytes) return { reason: `no ${file}` };
  const gateway = parseDefaultGateway(bytes.toString('utf8'));
  if (!gateway) return { reason: `no IPv4 default route in ${file}` };
  return { address: gateway, step: 'gateway', from: `default gateway in ${file}` };
}
