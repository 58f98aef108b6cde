/**
 * CloudStack: the virtual router serves EC2-style metadata on port 80. Its address is the
 * DHCP server's, read from the lease files (config `sources.cloudstack.baseUrl` overrides).
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { PointerSource, SourceContext, SourceResult } from './types';
import { absent, checkInstanceId, errnoCode, found, joinUrl, readCapped } from './common';
import { serverAddressFromLease } from './dhcp-lease';
import { DEFAULT_RETRY_POLICY, attemptsNote, metadataFailure, metadataRequest, type RetryPolicy } from './metadata-http';

const USER_DATA_PATH = '/latest/user-data';
const INSTANCE_ID_PATH = '/latest/meta-data/instance-id';
const MAX_LEASE_BYTES = 256 * 1024;

export interface VirtualRouter {
  address: string;
  /** In-image path of the lease file it came from. */
  leaseFile: string;
}

export interface CloudStackOptions {
  /**
   * Port of the VR's metadata server when the address comes from a lease file. Always 80 on
   * CloudStack; tests set it to reach a local emulation on 127.0.0.1:<port> while still going
   * through the lease-file lookup (config baseUrl would skip that lookup).
   */
  vrPort?: number;
  retryPolicy?: RetryPolicy;
}

/**
 * The DHCP server named by the most recently written lease file in `leaseDirs` (in-image
 * paths). Several interfaces or stale leases may be present; the newest is the current one.
 */
export async function findVirtualRouter(ctx: SourceContext): Promise<VirtualRouter | { reason: string }> {
  const dirs = ctx.config.sources.cloudstack.leaseDirs;
  let best: (VirtualRouter & { mtimeMs: number }) | null = null;
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(ctx.paths.resolve(dir));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue;
      ctx.log.debug({ dir, err: String(err) }, 'cannot list lease directory');
      continue;
    }
    for (const name of names.sort()) {
      const leaseFile = path.posix.join(dir, name);
      const hostPath = ctx.paths.resolve(leaseFile);
      const st = await stat(hostPath).catch(() => null);
      if (!st?.isFile() || st.size > MAX_LEASE_BYTES) continue;
      const bytes = await readCapped(hostPath, MAX_LEASE_BYTES, 'cloudstack', leaseFile).catch(() => null);
      const address = bytes ? serverAddressFromLease(bytes.toString('utf8')) : null;
      if (address && (!best || st.mtimeMs > best.mtimeMs)) best = { address, leaseFile, mtimeMs: st.mtimeMs };
    }
  }
  if (!best) return { reason: `no DHCP server address in lease files under ${dirs.join(', ') || '(no lease dirs configured)'}` };
  return { address: best.address, leaseFile: best.leaseFile };
}

export class CloudStackSource implements PointerSource {
  readonly name = 'cloudstack' as const;
  private readonly vrPort: number | undefined;
  private readonly retryPolicy: RetryPolicy;

  constructor(options: CloudStackOptions = {}) {
    this.vrPort = options.vrPort;
    this.retryPolicy = options.retryPolicy ?? DEFAULT_RETRY_POLICY;
  }

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const cfg = ctx.config.sources.cloudstack;
    let base: string;
    if (cfg.baseUrl) {
      base = cfg.baseUrl;
    } else {
      const vr = await findVirtualRouter(ctx);
      if ('reason' in vr) return absent(vr.reason);
      base = `http://${vr.address}${this.vrPort ? `:${this.vrPort}` : ''}`;
      ctx.log.debug({ source: this.name, vr: vr.address, leaseFile: vr.leaseFile }, 'virtual router from DHCP lease');
    }
    const get = (p: string, maxBytes: number) =>
      metadataRequest({ method: 'GET', url: joinUrl(base, p), maxBytes }, cfg, ctx.signal, this.retryPolicy);
    try {
      const userData = await get(USER_DATA_PATH, ctx.config.payload.maxUserDataBytes);
      if (userData.status === 404) return absent(`no user data at ${base}${USER_DATA_PATH} (404)`);
      if (userData.status !== 200) return absent(`${base}${USER_DATA_PATH} answered HTTP ${userData.status}${attemptsNote(userData.attempts)}`);
      if (userData.body.length === 0) return absent(`user data at ${base}${USER_DATA_PATH} is empty`);
      const idRes = await get(INSTANCE_ID_PATH, 64 * 1024);
      if (idRes.status !== 200) {
        return absent(`user data present but ${base}${INSTANCE_ID_PATH} answered HTTP ${idRes.status}${attemptsNote(idRes.attempts)}`);
      }
      const instanceId = checkInstanceId(idRes.body.toString('utf8'), this.name, `${base}${INSTANCE_ID_PATH}`);
      return found({ source: this.name, instanceId, origin: `${base}${USER_DATA_PATH}`, content: { kind: 'userdata', bytes: userData.body } });
    } catch (err) {
      return metadataFailure(err, this.name, `CloudStack virtual router ${base}`);
    }
  }
}
