/**
 * App readiness: the instance is `activated` when every TCP port in the payload's `PORTS`
 * (Stratos: `80|443`) accepts a connection locally. We connect, then close at once: a plain
 * TCP handshake, no protocol, so it works for any app and never sends it data.
 *
 * A port counts as open when 127.0.0.1 or ::1 accepts: apps bound to 0.0.0.0 or to a dual-stack
 * :: answer on 127.0.0.1, apps bound to [::1] only on ::1 (an app bound to one external address
 * only is not reachable locally, and times out here: bind it to the wildcard or loopback too).
 * Once a port has answered it stays counted; the rest are retried every intervalMs until
 * timeoutMs. No PORTS (or an empty one) means nothing to wait for: activated at once.
 */
import net from 'node:net';
import { parsePortsValue } from '../firewall/allowlist';
import type { Logger } from '../log';

export const LOOPBACK_HOSTS = ['127.0.0.1', '::1'] as const;
/** One connection attempt never waits longer than this (loopback answers in microseconds). */
const MAX_CONNECT_MS = 2_000;

export type ReadinessResult =
  | { outcome: 'activated'; ports: number[]; elapsedMs: number }
  | { outcome: 'timeout'; ports: number[]; missing: number[]; elapsedMs: number }
  | { outcome: 'cancelled'; ports: number[]; missing: number[]; elapsedMs: number };

/** Does host:port accept a TCP connection within timeoutMs? Never rejects. */
export type PortProbe = (host: string, port: number, timeoutMs: number) => Promise<boolean>;

export const probeTcp: PortProbe = (host, port, timeoutMs) =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    // ECONNREFUSED, EADDRNOTAVAIL (no IPv6 loopback), …: not open (yet).
    socket.once('error', () => done(false));
  });

/**
 * The ports to wait for, from the payload: PORTS parsed exactly as the firewall parses it
 * (a bad entry is the same PayloadError naming PORTS), deduplicated, ascending.
 */
export function readinessPorts(payloadVars: ReadonlyMap<string, string>): number[] {
  const ports = parsePortsValue(payloadVars.get('PORTS') ?? '').map((r) => r.ports.from);
  return [...new Set(ports)].sort((a, b) => a - b);
}

export interface ReadinessOptions {
  ports: readonly number[];
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
  signal?: AbortSignal;
  probe?: PortProbe;
  /** Called after each round that leaves ports missing (e.g. for systemd STATUS=). */
  onWaiting?: (missing: number[]) => void;
}

async function portAnswers(probe: PortProbe, port: number, timeoutMs: number): Promise<boolean> {
  for (const host of LOOPBACK_HOSTS) {
    if (await probe(host, port, timeoutMs)) return true;
  }
  return false;
}

/** Resolves when the signal aborts or after ms, whichever comes first. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function waitForPorts(opts: ReadinessOptions): Promise<ReadinessResult> {
  const { log, signal } = opts;
  const probe = opts.probe ?? probeTcp;
  const ports = [...opts.ports];
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const deadline = started + opts.timeoutMs;
  const missing = new Set(ports);

  if (ports.length === 0) {
    log.info('no PORTS in the payload: nothing to wait for, activated');
    return { outcome: 'activated', ports, elapsedMs: 0 };
  }
  log.info({ ports, intervalMs: opts.intervalMs, timeoutMs: opts.timeoutMs }, 'waiting for the app to accept connections');

  while (true) {
    if (signal?.aborted) return { outcome: 'cancelled', ports, missing: [...missing], elapsedMs: elapsed() };
    const connectMs = Math.max(50, Math.min(MAX_CONNECT_MS, opts.intervalMs, deadline - Date.now()));
    const round = [...missing];
    const answers = await Promise.all(round.map((port) => portAnswers(probe, port, connectMs)));
    round.forEach((port, i) => {
      if (answers[i]) {
        missing.delete(port);
        log.info({ port, elapsedMs: elapsed() }, `port ${port} accepts connections`);
      }
    });
    if (missing.size === 0) return { outcome: 'activated', ports, elapsedMs: elapsed() };
    if (signal?.aborted) return { outcome: 'cancelled', ports, missing: [...missing], elapsedMs: elapsed() };
    const left = deadline - Date.now();
    if (left <= 0) {
      const result = { outcome: 'timeout' as const, ports, missing: [...missing], elapsedMs: elapsed() };
      log.warn({ missing: result.missing, timeoutMs: opts.timeoutMs }, `app readiness timed out: port(s) ${result.missing.join(', ')} never accepted a connection`);
      return result;
    }
    opts.onWaiting?.([...missing]);
    await pause(Math.min(opts.intervalMs, left), signal);
  }
}
