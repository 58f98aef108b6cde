/**
 * Payload-pointer discovery: the configured sources, tried in order, first found wins. When
 * none has anything yet, keep polling until `sources.waitSeconds` have passed: a personality
 * file may be injected after boot.
 */
import { abortableSleep } from '../io/abortable-sleep';
import type { SourceName } from '../config';
import { NoPointerError, SourceError } from '../errors';
import { redactUrl } from '../redact';
import type { Discovery, PointerSource, SourceContext, SourceResult } from './types';
import { CloudStackSource } from './cloudstack';
import { ConfigDriveSource } from './configdrive';
import { Ec2Source } from './ec2';
import { NoCloudSource } from './nocloud';
import { OpenStackSource } from './openstack';
import { PersonalitySource } from './personality';

export type { Discovery, PointerSource, SourceContext, SourceResult } from './types';

const FACTORIES: Record<SourceName, () => PointerSource> = {
  personality: () => new PersonalitySource(),
  configdrive: () => new ConfigDriveSource(),
  nocloud: () => new NoCloudSource(),
  ec2: () => new Ec2Source(),
  openstack: () => new OpenStackSource(),
  cloudstack: () => new CloudStackSource(),
};

/**
 * The sources that ask a metadata service over the network. Their "nothing found" may only mean
 * the network is not up yet (the agent no longer waits for network-online.target), so `run`
 * retries it instead of stopping for good.
 */
export const NETWORK_SOURCES: ReadonlySet<string> = new Set<SourceName>(['ec2', 'openstack', 'cloudstack']);

export function createSources(order: readonly SourceName[]): PointerSource[] {
  return order.map((name) => FACTORIES[name]());
}

type Reason = { source: string; reason: string };

/** "personality: no file at …; nocloud: …": for STATUS= and errors. */
function summarize(reasons: readonly Reason[]): string {
  return reasons.map((r) => `${r.source}: ${r.reason}`).join('; ');
}

/**
 * Find the payload pointer. SourceError (something for us, but broken) propagates at once:
 * waiting would not mend it. After the deadline, NoPointerError lists each source's last
 * reason. `sources` defaults to the configured order (tests pass their own).
 */
export async function discoverPointer(
  ctx: SourceContext,
  onStatus?: (text: string) => void,
  sources: readonly PointerSource[] = createSources(ctx.config.sources.order),
): Promise<Discovery> {
  const { waitSeconds, pollIntervalMs } = ctx.config.sources;
  const deadline = Date.now() + waitSeconds * 1000;
  let lastSummary = '';
  for (let round = 1; ; round++) {
    const reasons: Reason[] = [];
    for (const source of sources) {
      if (ctx.signal.aborted) throw new NoPointerError([...reasons, { source: 'discovery', reason: 'stopped before a pointer was found' }]);
      const result = await source.probe(ctx);
      if (result.status === 'found') {
        const d = result.discovery;
        ctx.log.info({ source: d.source, origin: redactUrl(d.origin), instanceId: d.instanceId, round }, 'payload pointer found');
        return d;
      }
      reasons.push({ source: source.name, reason: result.reason });
    }
    const summary = summarize(reasons);
    // Log a reason once, not every poll: the journal should show what changed.
    if (summary !== lastSummary) ctx.log.info({ reasons, round }, 'no payload pointer yet');
    lastSummary = summary;

    const left = deadline - Date.now();
    if (left <= 0) throw new NoPointerError(reasons);
    onStatus?.(`waiting for a payload pointer (${Math.ceil(left / 1000)} s left): ${summary}`);
    if (!(await abortableSleep(Math.min(pollIntervalMs, left), ctx.signal))) {
      throw new NoPointerError([...reasons, { source: 'discovery', reason: 'stopped before a pointer was found' }]);
    }
  }
}

export type ProbeReport = { source: SourceName; result: SourceResult } | { source: SourceName; error: string };

/**
 * One round over every configured source, without waiting and without stopping at the first
 * find: what `cartridge-agent discover` prints. A source's error is reported, not thrown.
 */
export async function probeAll(ctx: SourceContext, sources: readonly PointerSource[] = createSources(ctx.config.sources.order)): Promise<ProbeReport[]> {
  const out: ProbeReport[] = [];
  for (const source of sources) {
    try {
      out.push({ source: source.name, result: await source.probe(ctx) });
    } catch (err) {
      out.push({ source: source.name, error: redactUrl(err instanceof SourceError ? err.message : `unexpected error: ${(err as Error).message}`) });
    }
  }
  return out;
}
