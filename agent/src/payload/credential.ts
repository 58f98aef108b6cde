/**
 * Reboots with a spent token (docs/payload.md §4 "Reboots"). A bootstrap token may be single
 * use or expire, but an instance reboots for years. So:
 *
 *  - every payload request names the instance (X-Cartridge-Instance-Id); after a fetch the
 *    token admitted, the controller answers with a per-instance credential, kept here in
 *    `<state.dir>/credential.json` (0600) with the instance id and the controller origin;
 *  - later boots of the SAME instance id send it as `Authorization: Bearer …` to that origin
 *    only: never to another origin, and not after a redirect has left it once;
 *  - when the token is refused as `reused` and no credential admitted the boot (the controller
 *    lost it, or an older controller issues none), the cached payload of this instance is used
 *    — only when it was fetched from the very same pointer URL (its digest is kept with the
 *    cache entry; the token never is), with a loud warning. Any other refusal stays terminal.
 */
import { createHash } from 'node:crypto';
import { StateFileError, type FetchError } from '../errors';
import { readStateFile } from '../io/state-file';
import { writeFileAtomic } from '../io/staged-write';
import type { Logger } from '../log';
import { CREDENTIAL_PATTERN, encodeInstanceId, INSTANCE_ID_HEADER, REFUSAL_TOKEN_REUSED } from '../protocol/payload-http';
import type { CachedPayload, PayloadCache } from './cache';

export const CREDENTIAL_FILE = 'credential.json';

export interface StoredCredential {
  instanceId: string;
  /** The controller origin (scheme://host[:port]) that issued it: the only one it is sent to. */
  origin: string;
  credential: string;
  savedAt: string;
}

/** Who the agent is on a payload request. */
export interface FetchIdentity {
  instanceId: string;
  credential?: Pick<StoredCredential, 'origin' | 'credential'> | null;
}

/** How a terminal refusal is recorded on FetchError.context.refusals (no token, no URL). */
export interface TerminalRefusal {
  urlDigest: string;
  /** The controller's X-Cartridge-Refusal, when it sent one. */
  refusal: string | null;
}

/** Hex SHA-256 of the full pointer URL: identifies it without keeping the token it carries. */
export function pointerUrlDigest(url: string): string {
  return createHash('sha256').update(url).digest('hex');
}

function originOf(url: string): string | null {
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? null : origin;
  } catch {
    return null;
  }
}

/**
 * The identity headers of one request and the redirect rule for its credential. `onRedirect`
 * gets follow-redirects' options for the next hop (href, headers): the credential stays only
 * while every hop so far is on its origin. `accept` takes an issued credential only from an
 * answer that never left the pointer URL's origin.
 */
export function credentialGuard(url: string, identity: FetchIdentity | undefined) {
  const start = originOf(url);
  const bearer = identity?.credential && start !== null && identity.credential.origin === start ? `Bearer ${identity.credential.credential}` : null;
  let onOrigin = true;
  const headers: Record<string, string> = {};
  if (identity) headers[INSTANCE_ID_HEADER] = encodeInstanceId(identity.instanceId);
  if (bearer) headers.Authorization = bearer;
  return {
    headers,
    onRedirect(options: { href?: unknown; headers?: Record<string, unknown> }): void {
      if (originOf(String(options.href ?? '')) !== start) onOrigin = false;
      const next = options.headers ?? (options.headers = {});
      // Whatever the HTTP library kept or dropped, decide here (it keeps it for subdomains).
      for (const name of Object.keys(next)) if (name.toLowerCase() === 'authorization') delete next[name];
      if (bearer && onOrigin) next.Authorization = bearer;
    },
    accept(header: string | undefined): string | undefined {
      if (!identity || !onOrigin || header === undefined) return undefined;
      const value = header.trim();
      return CREDENTIAL_PATTERN.test(value) ? value : undefined;
    },
  };
}

/** `<state.dir>/credential.json`: one instance's credential. Problems here never fail a boot. */
export class CredentialFile {
  constructor(
    /** Host path of the file. */
    readonly file: string,
    private readonly log: Logger,
  ) {}

  /** The credential of `instanceId`, or null (none, another instance's, or damaged: logged). */
  async load(instanceId: string): Promise<StoredCredential | null> {
    let stored: StoredCredential | null;
    try {
      stored = await readStateFile<StoredCredential>(this.file, 'the instance credential', credentialProblem);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      this.log.warn({ file: this.file }, `${err.message}; ignored (fetching with the bootstrap token alone)`);
      return null;
    }
    if (!stored) return null;
    if (stored.instanceId !== instanceId) {
      this.log.info({ file: this.file, instanceId }, 'the stored instance credential belongs to another instance; not used');
      return null;
    }
    const { origin, credential, savedAt } = stored;
    return { instanceId, origin, credential, savedAt: typeof savedAt === 'string' ? savedAt : '' };
  }

  /**
   * Keep the credential the controller just issued for `url`'s origin. A failure is logged,
   * not thrown: the payload is good, and the next boot still has the token and the cache.
   */
  async save(instanceId: string, url: string, credential: string, now = new Date()): Promise<void> {
    const origin = originOf(url);
    if (origin === null) return;
    const body: StoredCredential & { version: 1 } = { version: 1, instanceId, origin, credential, savedAt: now.toISOString() };
    try {
      await writeFileAtomic(this.file, `${JSON.stringify(body)}\n`, { mode: 0o600, stage: 'credential' });
      this.log.info({ file: this.file, instanceId, origin }, 'instance credential stored');
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, 'cannot store the instance credential; the next boot must rely on the bootstrap token or the cache');
    }
  }
}

/** What is wrong with a parsed credential file, or null when it is fit to use. */
export function credentialProblem(data: unknown): string | null {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return 'not a JSON object';
  const { version, instanceId, origin, credential } = data as Record<string, unknown>;
  if (version !== 1) return `version ${JSON.stringify(version)} is not 1`;
  if (typeof instanceId !== 'string' || instanceId === '') return 'no instance id';
  if (typeof origin !== 'string' || originOf(origin) !== origin) return 'the origin is not an http(s) origin';
  if (typeof credential !== 'string' || !CREDENTIAL_PATTERN.test(credential)) return 'the credential is not one the controller issues';
  return null;
}

/**
 * The consumed-token rule (pure): every URL was refused as `reused`, and the cached payload
 * came from one of those URLs — so this instance is the one that spent the token.
 */
export function spentByThisInstance(refusals: readonly TerminalRefusal[], cachedUrlDigest: string | undefined): boolean {
  if (refusals.length === 0 || cachedUrlDigest === undefined) return false;
  return refusals.every((r) => r.refusal === REFUSAL_TOKEN_REUSED) && refusals.some((r) => r.urlDigest === cachedUrlDigest);
}

/**
 * After a terminal FetchError: the cached payload when the consumed-token rule holds (logged
 * as a warning), else null and the error stands.
 */
export async function cacheForSpentToken(err: FetchError, cache: PayloadCache, instanceId: string, log: Logger): Promise<CachedPayload | null> {
  const refusals = (err.context.refusals ?? []) as TerminalRefusal[];
  if (!refusals.some((r) => r.refusal === REFUSAL_TOKEN_REUSED)) return null;
  const cached = await cache.load(instanceId);
  if (!cached || !spentByThisInstance(refusals, cached.urlDigest)) return null;
  log.warn(
    { instanceId, cachedAt: cached.savedAt, digest: cached.digest, reason: err.message },
    `TOKEN ALREADY USED BY THIS INSTANCE: the controller refused the single-use token as reused and no instance credential admitted this boot; using the cached payload saved ${cached.savedAt} for instance ${instanceId}, fetched with that token`,
  );
  return cached;
}
