/**
 * HTTP for the metadata services (EC2 IMDS, OpenStack, CloudStack VR). Short and bounded: a
 * connect timeout (axios has none; an unroutable 169.254.169.254 would otherwise hang for the
 * kernel's SYN retries), a wall-clock limit per attempt, and a few retries with a short backoff
 * on connection errors, 5xx, 408 and 429. Every other status is returned, never thrown: the
 * sources decide what 404 or 403 mean.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { AxiosError } from 'axios';
import { abortableSleep } from '../io/abortable-sleep';
import type { HttpStack } from '../io/http-stack';
import type { NetworkSourceConfig, SourceName } from '../config';
import { SourceError } from '../errors';
import { redactUrl } from '../redact';
import type { SourceResult } from './types';

export interface MetadataRequest {
  method: 'GET' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  /** Largest body accepted; more is a MetadataTooLargeError. */
  maxBytes: number;
}

export interface MetadataResponse {
  status: number;
  body: Buffer;
  /** How many attempts it took (1 = no retry). */
  attempts: number;
}

/** The service could not be reached (or kept failing at the connection level) within the retries. */
export class MetadataUnreachableError extends Error {
  constructor(
    readonly url: string,
    readonly detail: string,
    readonly attempts: number,
  ) {
    super(`${redactUrl(url)}: ${detail} (${attempts} attempt${attempts === 1 ? '' : 's'})`);
    this.name = 'MetadataUnreachableError';
  }
}

/** The answer was larger than the caller allows: something is there, but not something we accept. */
export class MetadataTooLargeError extends Error {
  constructor(
    readonly url: string,
    readonly maxBytes: number,
  ) {
    super(`answer is larger than ${maxBytes} bytes`);
    this.name = 'MetadataTooLargeError';
  }
}

/** The timeout and retry keys every network source's config has. */
export type MetadataNetConfig = Pick<NetworkSourceConfig, 'connectTimeoutMs' | 'requestTimeoutMs' | 'retries'>;

export interface RetryPolicy {
  /** First backoff delay; doubles per retry up to backoffCapMs. */
  backoffMs: number;
  backoffCapMs: number;
}

/** Metadata services are local: waiting long between tries only delays boot. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { backoffMs: 100, backoffCapMs: 1_000 };

const RETRY_STATUS = (status: number): boolean => status >= 500 || status === 408 || status === 429;

const CONNECT_TIMEOUT = 'ECONNECTTIMEOUT';

/**
 * An agent that destroys a socket with no TCP connection after `ms`. Node's own socket
 * timeout counts idle time only once connected, so it cannot bound the SYN phase.
 */
function connectTimeoutAgent({ http, https }: HttpStack, protocol: string, ms: number): http.Agent {
  const agent = protocol === 'https:' ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (options, callback) => {
    const socket = create(options, callback) as net.Socket | null | undefined;
    if (socket && typeof socket.once === 'function' && socket.connecting !== false) {
      const timer = setTimeout(() => {
        const err = Object.assign(new Error(`no connection within ${ms} ms`), { code: CONNECT_TIMEOUT });
        socket.destroy(err);
      }, ms);
      const clear = (): void => clearTimeout(timer);
      socket.once('connect', clear);
      socket.once('close', clear);
    }
    return socket;
  };
  return agent;
}

type Attempt =
  | { kind: 'response'; status: number; body: Buffer }
  | { kind: 'failed'; detail: string }
  | { kind: 'aborted' }
  | { kind: 'too-large' };

function describeFailure(err: AxiosError, net: MetadataNetConfig, timedOut: boolean): string {
  if (timedOut) return `no complete answer within ${net.requestTimeoutMs} ms`;
  const code = err.code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case CONNECT_TIMEOUT:
      return `no connection within ${net.connectTimeoutMs} ms`;
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve';
    default:
      return redactUrl(err.message || String(code ?? 'request failed'));
  }
}

async function attemptOnce(req: MetadataRequest, net: MetadataNetConfig, outer: AbortSignal): Promise<Attempt> {
  const stack = (await import('../io/http-stack')).httpStack;
  if (outer.aborted) return { kind: 'aborted' };
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, net.requestTimeoutMs);
  const onOuterAbort = (): void => controller.abort();
  outer.addEventListener('abort', onOuterAbort, { once: true });
  const agent = connectTimeoutAgent(stack, new URL(req.url).protocol, net.connectTimeoutMs);
  try {
    const res = await stack.axios.request<ArrayBuffer>({
      method: req.method,
      url: req.url,
      headers: req.headers,
      responseType: 'arraybuffer',
      validateStatus: () => true,
      maxRedirects: 0,
      maxContentLength: req.maxBytes,
      // Metadata lives on a link-local or router address: never through HTTP(S)_PROXY.
      proxy: false,
      signal: controller.signal,
      httpAgent: agent,
      httpsAgent: agent,
    });
    return { kind: 'response', status: res.status, body: Buffer.from(res.data) };
  } catch (err) {
    if (outer.aborted) return { kind: 'aborted' };
    const ax = err as AxiosError;
    if (/maxContentLength/.test(ax.message ?? '')) return { kind: 'too-large' };
    return { kind: 'failed', detail: describeFailure(ax, net, timedOut) };
  } finally {
    clearTimeout(timer);
    outer.removeEventListener('abort', onOuterAbort);
    agent.destroy();
  }
}

/** " after 3 attempts" when a request was retried: part of absent reasons. */
export function attemptsNote(attempts: number): string {
  return attempts > 1 ? ` after ${attempts} attempts` : '';
}

/**
 * One request with `net.retries` retries. Returns the final response (a 5xx that persisted
 * through every retry is returned too, so the caller can say "HTTP 503 after 3 attempts");
 * throws MetadataUnreachableError when no answer came, MetadataTooLargeError for oversized ones.
 */
export async function metadataRequest(
  req: MetadataRequest,
  net: MetadataNetConfig,
  signal: AbortSignal,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Promise<MetadataResponse> {
  const attempts = net.retries + 1;
  for (let i = 1; ; i++) {
    const result = await attemptOnce(req, net, signal);
    if (result.kind === 'aborted') throw new MetadataUnreachableError(req.url, 'aborted (discovery stopped)', i);
    if (result.kind === 'too-large') throw new MetadataTooLargeError(req.url, req.maxBytes);
    const retryable = result.kind === 'failed' || RETRY_STATUS(result.status);
    if (!retryable || i >= attempts) {
      if (result.kind === 'failed') throw new MetadataUnreachableError(req.url, result.detail, i);
      return { status: result.status, body: result.body, attempts: i };
    }
    const delay = Math.min(policy.backoffCapMs, policy.backoffMs * 2 ** (i - 1));
    if (!(await abortableSleep(delay, signal))) throw new MetadataUnreachableError(req.url, 'aborted (discovery stopped)', i);
  }
}

/**
 * What a network source makes of a metadata failure: no answer is "absent" (the service is
 * not there, or not yet); an oversized answer is something for us that is broken.
 */
export function metadataFailure(err: unknown, source: SourceName, service: string): SourceResult {
  if (err instanceof MetadataUnreachableError) return { status: 'absent', reason: `${service} unreachable: ${err.message}` };
  if (err instanceof MetadataTooLargeError) throw new SourceError(source, redactUrl(err.url), err.message);
  throw err;
}
