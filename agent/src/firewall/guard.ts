/**
 * Lock-out guard: a fresh TCP connection to each controller endpoint before and after
 * applying. Only an endpoint that WAS reachable before and is not within the deadline after
 * counts against the new ruleset, so a controller outage never makes us roll back (which
 * could leave the host open) — the guard is then skipped, and says so.
 */
import net from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
}

export interface ProbeResult {
  endpoint: Endpoint;
  reachable: boolean;
  /** "connected in 3 ms", "ETIMEDOUT after 500 ms", "ECONNREFUSED", … */
  detail: string;
}

export type ProbeFn = (endpoints: Endpoint[], timeoutMs: number) => Promise<ProbeResult[]>;

export const describeEndpoint = (e: Endpoint): string => (e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`);

function probeOne(endpoint: Endpoint, timeoutMs: number): Promise<ProbeResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port });
    const done = (reachable: boolean, detail: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ endpoint, reachable, detail });
    };
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(true, `connected in ${Date.now() - started} ms`));
    socket.once('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
  });
}

/** One fresh connection per endpoint, in parallel; never rejects. */
export const probeEndpoints: ProbeFn = (endpoints, timeoutMs) => Promise.all(endpoints.map((e) => probeOne(e, timeoutMs)));

export type GuardBaseline = { endpoints: Endpoint[]; skipped: null } | { endpoints: []; skipped: string };

/** Which endpoints the post-apply check must reach: those reachable now. None → guard skipped, with why. */
export function guardBaseline(before: ProbeResult[]): GuardBaseline {
  const reachable = before.filter((r) => r.reachable).map((r) => r.endpoint);
  if (reachable.length > 0) return { endpoints: reachable, skipped: null };
  if (before.length === 0) return { endpoints: [], skipped: 'no controller endpoint known' };
  return {
    endpoints: [],
    skipped: `controller unreachable before applying (${before.map((r) => `${describeEndpoint(r.endpoint)}: ${r.detail}`).join('; ')}); lock-out guard skipped`,
  };
}

/**
 * After applying: every baseline endpoint must connect again before `timeoutMs` runs out.
 * A refused or reset attempt (e.g. ND/ARP settling) is retried until the deadline; returns the
 * endpoints that never connected with the last reason (empty: all fine).
 */
export async function guardCheck(baseline: Endpoint[], timeoutMs: number, probe: ProbeFn = probeEndpoints, retryDelayMs = 100): Promise<ProbeResult[]> {
  const deadline = Date.now() + timeoutMs;
  let pending = baseline;
  let failures: ProbeResult[] = [];
  while (pending.length > 0) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const results = await probe(pending, left);
    failures = results.filter((r) => !r.reachable);
    pending = failures.map((r) => r.endpoint);
    if (pending.length > 0 && deadline - Date.now() > retryDelayMs) await new Promise((r) => setTimeout(r, retryDelayMs));
    else if (pending.length > 0) break;
  }
  if (pending.length > 0 && failures.length === 0) failures = pending.map((endpoint) => ({ endpoint, reachable: false, detail: 'deadline passed before probing' }));
  return failures;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'mqtt:': 1883, 'mqtts:': 8883, 'ws:': 80, 'wss:': 443 };

/** The host:port endpoints of controller URLs (payload URL, broker URL), deduplicated; unparsable ones are skipped. */
export function endpointsFromUrls(urls: readonly string[]): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const text of urls) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      continue;
    }
    const port = url.port ? Number(url.port) : DEFAULT_PORTS[url.protocol];
    if (!port || !url.hostname) continue;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    seen.set(`${host} ${port}`, { host, port });
  }
  return [...seen.values()];
}
