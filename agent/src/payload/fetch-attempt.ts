/**
 * One GET of one payload URL with axios: connect and total timeouts, a body size cap enforced
 * while streaming, truncation detection, optional signature check. Says whether a failure is
 * worth retrying; the retry policy lives in ./fetch.
 */
import type http from 'node:http';
import type https from 'node:https';
import type { Duplex, Readable } from 'node:stream';
import type { KeyObject } from 'node:crypto';
import { PayloadError } from '../errors';
import type { HttpStack } from '../io/http-stack';
import { INSTANCE_CREDENTIAL_HEADER, parseRefusal, PAYLOAD_ACCEPT, PAYLOAD_SIGNATURE_HEADER, REFUSAL_HEADER } from '../protocol/payload-http';
import { redactUrl } from '../redact';
import { parseRetryAfterMs } from './backoff';
import { credentialGuard, type FetchIdentity } from './credential';
import { readRefusalReason } from './refusal-reason';
import { verifySignature } from './signature';

export interface AttemptOptions {
  maxBytes: number;
  connectTimeoutMs: number;
  /** Whole request, connect to last body byte. */
  requestTimeoutMs: number;
  /** Epoch ms when the whole fetch must be over; both timeouts are cut short to meet it. */
  deadlineAt: number;
  caPem: string | Buffer | undefined;
  publicKey: KeyObject | null | undefined;
  userAgent: string;
  signal: AbortSignal | undefined;
  now: () => number;
  /** The instance id to send, and its credential (sent to its own origin only; see ./credential). */
  identity?: FetchIdentity;
}

export interface AttemptResult {
  bytes: Buffer;
  contentType: string | undefined;
  /** A credential the controller issued to this instance with the payload. */
  credential?: string;
}

/** How an attempt cut short by the overall deadline says so (AttemptError.cutByDeadline marks it). */
const DEADLINE_CUT = 'the deadline passed';

/** A failed attempt. `terminal`: this URL will not get better by asking again. */
export class AttemptError extends Error {
  constructor(
    message: string,
    readonly terminal: boolean,
    readonly retryAfterMs?: number,
    /** The overall deadline, not the server, ended this attempt: it says nothing about why earlier ones failed. */
    readonly cutByDeadline = false,
  ) {
    super(message);
  }

  /** The server's X-Cartridge-Refusal on a 4xx (e.g. `reused`), when it sent one. */
  refusal: string | null = null;
}

const MAX_REDIRECTS = 5;
const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/;

type ConnectionFactory = (options: unknown, cb?: unknown) => Duplex | null | undefined;

/**
 * Fresh agents per attempt (no keep-alive), whose sockets report when they are connected —
 * TCP for http, the TLS handshake for https. axios has no connect timeout of its own.
 */
function watchedAgents({ http, https }: HttpStack, ca: string | Buffer | undefined, onConnected: () => void): { http: http.Agent; https: https.Agent } {
  const watch = (base: ConnectionFactory, event: string): ConnectionFactory =>
    function watched(this: unknown, options, cb) {
      const socket = base.call(this, options, cb);
      socket?.once(event, onConnected);
      return socket;
    };
  const httpAgent = new http.Agent({ keepAlive: false });
  httpAgent.createConnection = watch(http.Agent.prototype.createConnection as ConnectionFactory, 'connect') as typeof httpAgent.createConnection;
  const httpsAgent = new https.Agent({ keepAlive: false, ...(ca !== undefined ? { ca } : {}) });
  httpsAgent.createConnection = watch(https.Agent.prototype.createConnection as ConnectionFactory, 'secureConnect') as typeof httpsAgent.createConnection;
  return { http: httpAgent, https: httpsAgent };
}

/** `reason`: the server's own explanation, already sanitized (./refusal-reason). */
function statusError(status: number, statusText: string, retryAfter: string | undefined, now: number, reason: string | undefined): AttemptError {
  const what = `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
  const says = reason !== undefined ? `; the server says: "${reason}"` : '';
  if (status === 408 || status === 429 || status >= 500) {
    return new AttemptError(`${what}${says}`, false, parseRetryAfterMs(retryAfter, now));
  }
  return new AttemptError(`${what} (not retried: a ${status} answer will not change by asking again)${says}`, true);
}

/** Redirects lead only to http(s); anything else (file:, ftp:, data: …) is a misconfigured or hostile server. */
function refuseRedirect(from: string, toProtocol: unknown): string | undefined {
  const to = String(toProtocol ?? '').toLowerCase();
  if (to !== 'http:' && to !== 'https:') return `redirected to a ${to} URL; only http and https redirects are followed (not retried)`;
  if (from.toLowerCase().startsWith('https:') && to === 'http:') return 'redirected from https to http; refused';
  return undefined;
}

function headerString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

export async function fetchOnce(url: string, opts: AttemptOptions): Promise<AttemptResult> {
  const stack = (await import('../io/http-stack')).httpStack;
  const { axios } = stack;
  const controller = new AbortController();
  let abortReason: string | undefined;
  let abortedByDeadline = false;
  let body: Readable | undefined;
  const abort = (why: string, byDeadline = false): void => {
    if (abortReason !== undefined) return;
    abortReason = why;
    abortedByDeadline = byDeadline;
    controller.abort();
    body?.destroy(new Error(why));
  };
  const onStop = (): void => abort('stopped');
  if (opts.signal?.aborted) onStop();
  opts.signal?.addEventListener('abort', onStop, { once: true });
  const left = Math.max(0, opts.deadlineAt - opts.now());
  const connectTimer = opts.connectTimeoutMs <= left
    ? setTimeout(() => abort(`no connection within ${opts.connectTimeoutMs} ms (payload.fetch.connectTimeoutMs)`), opts.connectTimeoutMs)
    : setTimeout(() => abort(`${DEADLINE_CUT} while connecting`, true), left);
  const requestTimer = opts.requestTimeoutMs <= left
    ? setTimeout(() => abort(`no complete response within ${opts.requestTimeoutMs} ms (payload.fetch.requestTimeoutMs)`), opts.requestTimeoutMs)
    : setTimeout(() => abort(`${DEADLINE_CUT} while waiting for the response`, true), left);
  const agents = watchedAgents(stack, opts.caPem, () => clearTimeout(connectTimer));
  const guard = credentialGuard(url, opts.identity);
  let redirectRefused: string | undefined;
  let refusal: AttemptError | undefined;
  try {
    const res = await axios.request<Readable>({
      url,
      method: 'GET',
      responseType: 'stream',
      signal: controller.signal,
      httpAgent: agents.http,
      httpsAgent: agents.https,
      // Boot-time environment proxies are not ours to use, and axios cannot CONNECT through
      // one for https anyway; the payload server is on the instance's own network.
      proxy: false,
      maxRedirects: MAX_REDIRECTS,
      beforeRedirect: (options: Record<string, unknown>) => {
        redirectRefused = refuseRedirect(url, options.protocol);
        if (redirectRefused !== undefined) throw new Error(redirectRefused);
        guard.onRedirect(options);
      },
      validateStatus: () => true,
      maxContentLength: -1, // counted below while streaming, so the cap holds without buffering
      headers: { Accept: PAYLOAD_ACCEPT, 'User-Agent': opts.userAgent, ...guard.headers },
    });
    body = res.data;
    if (abortReason !== undefined) body.destroy();
    if (res.status < 200 || res.status > 299) {
      const reason = await readRefusalReason(body);
      refusal = statusError(res.status, res.statusText, headerString(res.headers['retry-after']), opts.now(), reason);
      refusal.refusal = parseRefusal(headerString(res.headers[REFUSAL_HEADER.toLowerCase()]));
      throw refusal;
    }
    // Content-Length counts encoded bytes; axios drops Content-Encoding once it decompresses,
    // so look at what was on the wire.
    const incoming = (res.request as { res?: http.IncomingMessage } | undefined)?.res;
    const encoded = incoming?.rawHeaders.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-encoding') ?? false;
    const declared = Number(headerString(res.headers['content-length']));
    if (Number.isFinite(declared) && declared > opts.maxBytes && !encoded) {
      body.destroy();
      throw new PayloadError(`payload from ${redactUrl(url)} is ${declared} bytes (Content-Length), more than the ${opts.maxBytes} allowed by payload.maxBytes`, { size: declared });
    }
    const bytes = await readCapped(body, opts.maxBytes, url, encoded ? undefined : declared);
    // IncomingMessage.complete is false when the connection ended before the declared length
    // (or the final chunk) arrived; some truncations end the stream without an error.
    if (incoming && !incoming.complete) throw new AttemptError(`body truncated after ${bytes.length} bytes`, false);
    if (opts.publicKey) checkSignature(bytes, headerString(res.headers[PAYLOAD_SIGNATURE_HEADER.toLowerCase()]), opts.publicKey, url);
    const credential = guard.accept(headerString(res.headers[INSTANCE_CREDENTIAL_HEADER.toLowerCase()]));
    return { bytes, contentType: headerString(res.headers['content-type']), ...(credential ? { credential } : {}) };
  } catch (err) {
    if (err instanceof PayloadError) throw err;
    // A timeout while reading the refusal's reason does not make the refusal retryable.
    if (err === refusal && !opts.signal?.aborted) throw err;
    if (abortReason !== undefined) throw new AttemptError(abortReason, false, undefined, abortedByDeadline);
    if (err instanceof AttemptError) throw err;
    if (redirectRefused !== undefined) throw new AttemptError(redirectRefused, true);
    const e = err as Error & { code?: string };
    const code = e.code && !e.message.includes(e.code) ? `${e.code}: ` : '';
    const hint = e.code && CERT_ERROR.test(e.code) ? ' (is payload.fetch.caFile the CA that signed the server certificate?)' : '';
    const terminal = e.code === 'ERR_FR_TOO_MANY_REDIRECTS';
    throw new AttemptError(redactUrl(`${code}${e.message}${hint}`), terminal);
  } finally {
    clearTimeout(connectTimer);
    clearTimeout(requestTimer);
    opts.signal?.removeEventListener('abort', onStop);
    agents.http.destroy();
    agents.https.destroy();
  }
}

/** Read the body, stopping the moment it exceeds `maxBytes` (no unbounded buffering). */
async function readCapped(body: Readable, maxBytes: number, url: string, declared: number | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      total += buf.length;
      if (total > maxBytes) {
        body.destroy();
        throw new PayloadError(`payload from ${redactUrl(url)} is more than the ${maxBytes} bytes allowed by payload.maxBytes; stopped reading`, { limit: maxBytes });
      }
      chunks.push(buf);
    }
  } catch (err) {
    if (err instanceof PayloadError) throw err;
    const of = declared !== undefined && Number.isFinite(declared) ? ` of ${declared}` : '';
    throw new AttemptError(`connection lost after ${total}${of} body bytes (${(err as Error).message})`, false);
  }
  return Buffer.concat(chunks, total);
}

function checkSignature(bytes: Buffer, header: string | undefined, key: KeyObject, url: string): void {
  if (header === undefined || header.trim() === '') {
    throw new PayloadError(`payload from ${redactUrl(url)} has no ${PAYLOAD_SIGNATURE_HEADER} header, but payload.publicKey requires every payload to be signed`);
  }
  if (!verifySignature(bytes, header, key)) {
    throw new PayloadError(`payload from ${redactUrl(url)} has a ${PAYLOAD_SIGNATURE_HEADER} that does not verify with payload.publicKey; refused`);
  }
}
