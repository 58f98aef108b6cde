/**
 * Fetch the payload: retry policy around ./fetch-attempt.
 *
 *  - `urls` are mirrors of ONE payload (from `#include` or a single pointer). Each round tries
 *    them in order and returns the first that answers with the payload.
 *  - A terminal answer (4xx other than 408/429, too many redirects, an https→http redirect, a
 *    redirect to a scheme other than http/https) drops that URL; when every URL is dropped the
 *    fetch fails at once with FetchError (terminal=true) whose context.refusals says which URL
 *    (by digest) the server refused why (X-Cartridge-Refusal). With one URL a 403 means exactly
 *    one request.
 *  - `identity` names the instance on every request and carries its credential (./credential).
 *  - Anything else (connection refused/reset, timeouts, 5xx, 408, 429, truncated body, TLS
 *    failures — the clock may be wrong early in boot) is retried after a full-jitter
 *    exponential backoff, or after `Retry-After` when the server asks for longer.
 *  - The whole fetch has a deadline (payload.fetch.deadlineSeconds). A wait that would end
 *    past it is not started: the fetch fails with FetchError (terminal=false) saying how many
 *    attempts were made and the last error, so the caller can fall back to the cache.
 *  - A body over payload.maxBytes, or a missing or wrong signature while payload.publicKey is
 *    set, is a PayloadError: the payload itself is refused, and asking again would not change it.
 */
import type { KeyObject } from 'node:crypto';
import { abortableSleep } from '../io/abortable-sleep';
import { FetchError, PayloadError } from '../errors';
import type { Logger } from '../log';
import { PAYLOAD_USER_AGENT } from '../protocol/payload-http';
import { redactUrl } from '../redact';
import { backoffDelayMs } from './backoff';
import { pointerUrlDigest, type FetchIdentity, type TerminalRefusal } from './credential';
import { AttemptError, fetchOnce } from './fetch-attempt';

export interface FetchPayloadOptions {
  /** payload.maxBytes */
  maxBytes: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** May be fractional (tests). */
  deadlineSeconds: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** PEM text of payload.fetch.caFile, already read by the caller. It replaces the system trust store. */
  caPem?: string | Buffer;
  /** From loadPublicKey(payload.publicKey); when set every payload must carry a valid signature. */
  publicKey?: KeyObject | null;
  /** Stops the fetch (agent shutdown). */
  signal?: AbortSignal;
  log: Logger;
  /** Appended to the User-Agent, e.g. the agent version. */
  version?: string;
  /** The instance id and its stored credential, sent with each request. */
  identity?: FetchIdentity;
  /** Test seams. */
  now?: () => number;
  /** Resolves false when `signal` stopped the wait (see abortableSleep). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<boolean>;
  random?: () => number;
}

export interface FetchedPayload {
  bytes: Buffer;
  /** The URL that answered (unredacted: the caller may need it; redact before logging). */
  url: string;
  contentType: string | undefined;
  /** A credential the controller issued to this instance (store it for later boots). */
  credential?: string;
}

function stopped(attempts: number): FetchError {
  return new FetchError(`payload fetch stopped after ${attempts} attempt(s)`, false, { attempts, stopped: true });
}

export async function fetchPayload(urls: readonly string[], opts: FetchPayloadOptions): Promise<FetchedPayload> {
  if (urls.length === 0) throw new FetchError('no payload URL to fetch', true);
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? abortableSleep;
  const random = opts.random ?? Math.random;
  const log = opts.log;
  const startedAt = now();
  const deadline = startedAt + opts.deadlineSeconds * 1000;
  const userAgent = opts.version ? `${PAYLOAD_USER_AGENT}/${opts.version}` : PAYLOAD_USER_AGENT;
  const active = [...urls];
  let attempts = 0;
  let round = 0;
  let lastError = 'no attempt was made';
  let lastTerminal: string | undefined;
  const refusals: TerminalRefusal[] = [];

  for (;;) {
    let retryAfterMs: number | undefined;
    for (const url of [...active]) {
      if (opts.signal?.aborted) throw stopped(attempts);
      const remaining = deadline - now();
      if (remaining <= 0) break;
      attempts++;
      log.info({ url: redactUrl(url), attempt: attempts }, 'fetching payload');
      try {
        const result = await fetchOnce(url, {
          maxBytes: opts.maxBytes,
          connectTimeoutMs: opts.connectTimeoutMs,
          requestTimeoutMs: opts.requestTimeoutMs,
          deadlineAt: deadline,
          caPem: opts.caPem,
          publicKey: opts.publicKey,
          userAgent,
          signal: opts.signal,
          now,
          ...(opts.identity ? { identity: opts.identity } : {}),
        });
        log.info({ url: redactUrl(url), attempt: attempts, bytes: result.bytes.length }, 'payload fetched');
        return { ...result, url };
      } catch (err) {
        if (opts.signal?.aborted) throw stopped(attempts);
        if (err instanceof PayloadError) {
          log.error({ url: redactUrl(url), attempt: attempts, err: err.message }, 'payload refused');
          throw err;
        }
        const failure = err instanceof AttemptError ? err : new AttemptError(redactUrl(String((err as Error)?.message ?? err)), false);
        // An attempt the deadline cut short says nothing about why the earlier ones failed
        // (a bad certificate, a 503): keep the informative error for the final message.
        if (!failure.cutByDeadline || attempts === 1) lastError = `${redactUrl(url)}: ${failure.message}`;
        const refusal = failure.refusal;
        log.warn({ url: redactUrl(url), attempt: attempts, err: failure.message, terminal: failure.terminal, ...(refusal ? { refusal } : {}) }, 'payload fetch failed');
        if (failure.terminal) {
          active.splice(active.indexOf(url), 1);
          lastTerminal = lastError;
          refusals.push({ urlDigest: pointerUrlDigest(url), refusal });
        } else if (failure.retryAfterMs !== undefined) {
          retryAfterMs = Math.max(retryAfterMs ?? 0, failure.retryAfterMs);
        }
      }
    }
    if (active.length === 0) {
      throw new FetchError(`cannot fetch the payload from ${lastTerminal ?? lastError}`, true, { attempts, refusals });
    }
    const jitter = backoffDelayMs(round, opts.backoffBaseMs, opts.backoffCapMs, random);
    round++;
    const delay = Math.max(jitter, retryAfterMs ?? 0);
    const remaining = deadline - now();
    if (delay >= remaining) {
      const why = retryAfterMs !== undefined && retryAfterMs >= remaining ? `the server asked to retry after ${Math.ceil(retryAfterMs / 1000)} s, past the deadline; ` : '';
      throw new FetchError(
        `gave up fetching the payload after ${attempts} attempt(s) in ${((now() - startedAt) / 1000).toFixed(1)} s (payload.fetch.deadlineSeconds = ${opts.deadlineSeconds}); ${why}last error: ${lastError}`,
        false,
        { attempts },
      );
    }
    log.info({ retryInMs: delay, attempt: attempts }, 'retrying payload fetch');
    if (!(await sleep(delay, opts.signal))) throw stopped(attempts);
  }
}
