/**
 * CloudStack: the virtual router serves EC2-style metadata on port 80. Where it is comes from
 * cloudstack-vr.ts (DNS name, lease files, default gateway); config
 * `sources.cloudstack.baseUrl` overrides the search.
 */
import type { PointerSource, SourceContext, SourceResult } from './types';
import { absent, checkInstanceId, found, joinUrl } from './common';
import { VirtualRouterFinder, type HostLookup } from './cloudstack-vr';
import { DEFAULT_RETRY_POLICY, attemptsNote, metadataFailure, metadataRequest, type RetryPolicy } from './metadata-http';

export { fromLeases, fromRoutes, type HostLookup, type VirtualRouter } from './cloudstack-vr';

const USER_DATA_PATH = '/latest/user-data';
const INSTANCE_ID_PATH = '/latest/meta-data/instance-id';

export interface CloudStackOptions {
  /**
   * Port of the VR's metadata server when its address was found (not configured). Always 80
   * on CloudStack; tests set it to reach a local emulation on 127.0.0.x:<port> while still
   * going through the search (config baseUrl would skip it).
   */
  vrPort?: number;
  retryPolicy?: RetryPolicy;
  /** Resolves the data-server name; the system resolver by default. */
  lookup?: HostLookup;
}

export class CloudStackSource implements PointerSource {
  readonly name = 'cloudstack' as const;
  private readonly vrPort: number | undefined;
  private readonly retryPolicy: RetryPolicy;
  private readonly finder: VirtualRouterFinder;

  constructor(options: CloudStackOptions = {}) {
    this.vrPort = options.vrPort;
    this.retryPolicy = options.retryPolicy ?? DEFAULT_RETRY_POLICY;
    this.finder = new VirtualRouterFinder(options.lookup);
  }

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const cfg = ctx.config.sources.cloudstack;
    let base: string;
    // Where the VR's address came from: said with every outcome, so `discover` shows it even when the VR fails.
    let from: string | undefined;
    if (cfg.baseUrl) {
      base = cfg.baseUrl;
    } else {
      const vr = await this.finder.find(ctx);
      if ('reason' in vr) return absent(vr.reason);
      base = `http://${vr.address}${this.vrPort ? `:${this.vrPort}` : ''}`;
      from = vr.from;
      ctx.log.info({ source: this.name, vr: vr.address, step: vr.step, from: vr.from }, 'CloudStack virtual router found');
    }
    const via = from ? `virtual router from ${from}` : undefined;
    const absentVia = (reason: string) => absent(via ? `${reason} (${via})` : reason);
    const get = (p: string, maxBytes: number) =>
      metadataRequest({ method: 'GET', url: joinUrl(base, p), maxBytes }, cfg, ctx.signal, this.retryPolicy);
    try {
      const userData = await get(USER_DATA_PATH, ctx.config.payload.maxUserDataBytes);
      if (userData.status === 404) return absentVia(`no user data at ${base}${USER_DATA_PATH} (404)`);
      if (userData.status !== 200) return absentVia(`${base}${USER_DATA_PATH} answered HTTP ${userData.status}${attemptsNote(userData.attempts)}`);
      if (userData.body.length === 0) return absentVia(`user data at ${base}${USER_DATA_PATH} is empty`);
      const idRes = await get(INSTANCE_ID_PATH, 64 * 1024);
      if (idRes.status !== 200) {
        return absentVia(`user data present but ${base}${INSTANCE_ID_PATH} answered HTTP ${idRes.status}${attemptsNote(idRes.attempts)}`);
      }
      const instanceId = checkInstanceId(idRes.body.toString('utf8'), this.name, `${base}${INSTANCE_ID_PATH}`);
      const discovery = { source: this.name, instanceId, origin: `${base}${USER_DATA_PATH}`, content: { kind: 'userdata' as const, bytes: userData.body } };
      return found(via ? { ...discovery, via } : discovery);
    } catch (err) {
      return metadataFailure(err, this.name, `CloudStack virtual router ${base}${from ? ` (from ${from})` : ''}`);
    }
  }
}
