/**
 * The member store: one JSON file (members.json, 0600: it holds payloads) in the state dir,
 * replaced atomically. `serve` and one-shot commands (`register`) share it, so every change
 * is read-modify-write under a lock file, and reads reload the file when it changed on disk.
 * Member ids are unique across clusters: the payload URL names only the member.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../agent/src/io/staged-write';
import type { PayloadFormat } from '../../agent/src/payload/types';
import { ControllerError, ControllerExit, describeError } from './errors';
import { isCredentialRecord, issueCredential, type CredentialRecord } from './credentials';
import { preparePayload, type PayloadCheckOptions } from './member-payload';
import { issueToken, newNonce } from './tokens';

export const MEMBERS_FILE = 'members.json';
const STORE_VERSION = 1;
const LOCK_WAIT_MS = 10_000;
/** A lock older than this whose holder is gone is stale (a killed command). */
const LOCK_STALE_MS = 30_000;

export interface MemberTokenState {
  nonce: string;
  expiresAtS: number;
  singleUse: boolean;
  /** Epoch ms of the first successful fetch with a single-use token; null otherwise. */
  usedAt: number | null;
}

export interface MemberRecord {
  clusterId: string;
  memberId: string;
  /** The exact payload text served and signed. */
  payload: string;
  format: PayloadFormat;
  registeredAt: number;
  token: MemberTokenState;
  terminatedAt: number | null;
  /** Per-instance credentials issued under the current token (hashes only; see credentials.ts). */
  credentials: CredentialRecord[];
}

export interface RegisterOptions extends PayloadCheckOptions {
  ttlSeconds: number;
  singleUse: boolean;
}

export interface Registration {
  record: MemberRecord;
  /** The bearer token for the payload URL (not stored: it is recomputable only with the secret). */
  token: string;
  /** The member existed before: its earlier tokens stop working. */
  replaced: boolean;
}

interface StoreFile {
  version: 1;
  members: MemberRecord[];
}

function stateError(message: string): ControllerError {
  return new ControllerError(message, ControllerExit.STATE);
}

export class MemberStore {
  readonly file: string;
  private members = new Map<string, MemberRecord>();
  private loadedStamp = '';
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(
    readonly stateDir: string,
    private readonly tokenSecret: Buffer,
    opts: { now?: () => number } = {},
  ) {
    this.file = path.join(stateDir, MEMBERS_FILE);
    this.now = opts.now ?? Date.now;
  }

  get(memberId: string): MemberRecord | undefined {
    this.refresh();
    return this.members.get(memberId);
  }

  find(clusterId: string, memberId: string): MemberRecord | undefined {
    const m = this.get(memberId);
    return m && m.clusterId === clusterId ? m : undefined;
  }

  list(): MemberRecord[] {
    this.refresh();
    return [...this.members.values()].sort((a, b) => a.clusterId.localeCompare(b.clusterId) || a.memberId.localeCompare(b.memberId));
  }

  /** Create or replace a member; the payload is checked with the agent's parser first. */
  async register(clusterId: string, memberId: string, payloadText: string, opts: RegisterOptions): Promise<Registration> {
    if (!Number.isSafeInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0) throw new ControllerError(`--ttl must be a positive number of seconds, got ${opts.ttlSeconds}`, ControllerExit.USAGE);
    const prepared = preparePayload(payloadText, clusterId, memberId, opts);
    return this.mutate((members) => {
      const existing = members.get(memberId);
      if (existing && existing.clusterId !== clusterId) {
        throw new ControllerError(`member ${memberId} is already registered in cluster ${existing.clusterId}; member ids are unique across clusters`, ControllerExit.PAYLOAD);
      }
      const now = this.now();
      const token: MemberTokenState = { nonce: newNonce(), expiresAtS: Math.floor(now / 1000) + opts.ttlSeconds, singleUse: opts.singleUse, usedAt: null };
      const record: MemberRecord = { clusterId, memberId, payload: prepared.text, format: prepared.format, registeredAt: now, token, terminatedAt: null, credentials: [] };
      members.set(memberId, record);
      return { record, token: issueToken(this.tokenSecret, { memberId, expiresAtS: token.expiresAtS, nonce: token.nonce }), replaced: existing !== undefined };
    });
  }

  /**
   * A fetch admitted by the member's current token: spend it when it is single-use, and issue
   * a credential when the request named its instance — in one store change, so a spent token
   * always leaves its credential recorded. `admitted` is false when the token was spent already
   * (by another request, maybe in another process), replaced or revoked meanwhile: the caller
   * must refuse the request.
   */
  async recordTokenFetch(memberId: string, nonce: string, instanceId: string | null): Promise<{ admitted: boolean; credential: string | null }> {
    return this.mutate((members) => {
      const m = members.get(memberId);
      if (!m || m.token.nonce !== nonce || m.terminatedAt !== null) return { admitted: false, credential: null };
      if (m.token.singleUse) {
        if (m.token.usedAt !== null) return { admitted: false, credential: null };
        m.token.usedAt = this.now();
      }
      if (instanceId === null) return { admitted: true, credential: null };
      const issued = issueCredential(m.credentials, instanceId, this.now());
      m.credentials = issued.records;
      return { admitted: true, credential: issued.credential };
    });
  }

  /** Revoke the member's token and every instance credential for good (until it is registered again). */
  async terminate(clusterId: string, memberId: string): Promise<MemberRecord> {
    return this.mutate((members) => {
      const m = members.get(memberId);
      if (!m || m.clusterId !== clusterId) throw new ControllerError(`no member ${clusterId}/${memberId} is registered`, ControllerExit.NOT_FOUND);
      if (m.terminatedAt === null) m.terminatedAt = this.now();
      m.credentials = [];
      return m;
    });
  }

  // ------------------------------------------------------------ file I/O

  /** Reload when the file changed (atomic replace → new inode). Cheap enough per request. */
  private refresh(): void {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateError(`cannot read ${this.file}: ${describeError(err)}`);
      this.members = new Map();
      this.loadedStamp = '';
      return;
    }
    if (stamp === this.loadedStamp) return;
    this.members = parseStoreFile(readFileSync(this.file, 'utf8'), this.file);
    this.loadedStamp = stamp;
  }

  /** Serialised in this process by the queue, across processes by the lock file. */
  private mutate<T>(change: (members: Map<string, MemberRecord>) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const release = await acquireLock(`${this.file}.lock`);
      try {
        let text: string | null = null;
        try {
          text = await readFile(this.file, 'utf8');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateError(`cannot read ${this.file}: ${describeError(err)}`);
        }
        const members = text === null ? new Map<string, MemberRecord>() : parseStoreFile(text, this.file);
        const result = change(members);
        const out: StoreFile = { version: STORE_VERSION, members: [...members.values()] };
        try {
          await writeFileAtomic(this.file, `${JSON.stringify(out, null, 1)}\n`, { mode: 0o600, stage: 'member store' });
        } catch (err) {
          throw stateError(`cannot write ${this.file}: ${describeError(err)}`);
        }
        this.members = members;
        this.loadedStamp = '';
        return result;
      } finally {
        await release();
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

export function parseStoreFile(text: string, file: string): Map<string, MemberRecord> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw stateError(`${file} is not valid JSON (${describeError(err)}); restore it from a backup or remove it to start empty`);
  }
  const obj = data as Partial<StoreFile> | null;
  if (!obj || typeof obj !== 'object' || obj.version !== STORE_VERSION || !Array.isArray(obj.members)) {
    throw stateError(`${file} is not a version ${STORE_VERSION} member store`);
  }
  const members = new Map<string, MemberRecord>();
  obj.members.forEach((m, i) => {
    const ok =
      m && typeof m.clusterId === 'string' && typeof m.memberId === 'string' && typeof m.payload === 'string' &&
      m.token && typeof m.token.nonce === 'string' && Number.isSafeInteger(m.token.expiresAtS) && typeof m.token.singleUse === 'boolean';
    if (!ok) throw stateError(`${file}: member #${i + 1} is incomplete`);
    // Stores written before credentials existed have none; a damaged list is an error.
    const credentials: unknown = (m as Partial<MemberRecord>).credentials ?? [];
    if (!Array.isArray(credentials) || !credentials.every(isCredentialRecord)) throw stateError(`${file}: member #${i + 1} (${m.memberId}) has a damaged credentials list`);
    members.set(m.memberId, { ...m, credentials });
  });
  return members;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An O_EXCL lock file holding the owner's pid; a dead or very old owner's lock is broken. */
async function acquireLock(lockFile: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      const fh = await open(lockFile, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => unlink(lockFile).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw stateError(`cannot create the lock ${lockFile}: ${describeError(err)}`);
    }
    try {
      const holder = Number((await readFile(lockFile, 'utf8')).trim());
      const age = Date.now() - statSync(lockFile).mtimeMs;
      if ((Number.isSafeInteger(holder) && holder > 0 && !pidAlive(holder)) || age > LOCK_STALE_MS) {
        await unlink(lockFile).catch(() => undefined);
        continue;
      }
    } catch {
      continue; // released meanwhile
    }
    if (Date.now() > deadline) throw stateError(`${lockFile} is held by another process for more than ${LOCK_WAIT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, delay));
  }
}
