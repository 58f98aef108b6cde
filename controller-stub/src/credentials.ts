/**
 * Per-instance credentials (pure). When a fetch admitted by the bootstrap token names its
 * instance (X-Cartridge-Instance-Id), the controller issues a credential for that member and
 * that instance id; the instance presents it on later boots, when a single-use token is spent
 * or a token has expired. It is 32 fresh random bytes: nothing about it follows from the token
 * or the token secret, so a leaked token (it sits in the personality file and the user data)
 * does not give the credential. The store keeps only its SHA-256 — for a 256-bit random secret
 * a slow password hash adds nothing — and compares digests in constant time.
 *
 * A credential dies with the token it was issued under: terminate revokes the member, and
 * registering the member again replaces the record (new token, no credentials).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CREDENTIAL_PATTERN } from '../../agent/src/protocol/payload-http';

export interface CredentialRecord {
  instanceId: string;
  /** Hex SHA-256 of the credential. */
  sha256: string;
  /** Epoch ms. */
  issuedAt: number;
}

export type CredentialRefusal = 'revoked' | 'no-instance-id' | 'wrong-instance' | 'unknown-credential';

export type CredentialCheck = { ok: true; record: CredentialRecord } | { ok: false; reason: CredentialRefusal; detail: string };

/**
 * Instances per member that may hold a credential at once. A member is normally one instance;
 * a multi-use token may be used by a few (re-created instances). Beyond this the oldest goes.
 */
export const MAX_CREDENTIALS_PER_MEMBER = 8;

export function newCredential(): string {
  return randomBytes(32).toString('base64url');
}

export function hashCredential(credential: string): string {
  return createHash('sha256').update(credential).digest('hex');
}

/**
 * Issue a credential for `instanceId`: it replaces that instance's earlier one (a reboot that
 * used the token again), and the oldest are dropped past MAX_CREDENTIALS_PER_MEMBER.
 */
export function issueCredential(
  records: readonly CredentialRecord[],
  instanceId: string,
  nowMs: number,
): { credential: string; records: CredentialRecord[] } {
  const credential = newCredential();
  const kept = records.filter((r) => r.instanceId !== instanceId).sort((a, b) => a.issuedAt - b.issuedAt);
  const next = [...kept, { instanceId, sha256: hashCredential(credential), issuedAt: nowMs }];
  return { credential, records: next.slice(-MAX_CREDENTIALS_PER_MEMBER) };
}

/**
 * A presented credential against the member's records. Every record is compared (in constant
 * time), so the time taken does not say which one matched. Details never quote the credential.
 */
export function checkCredential(
  presented: string,
  instanceId: string | null,
  member: { memberId: string; terminatedAt: number | null; credentials: readonly CredentialRecord[] },
): CredentialCheck {
  if (member.terminatedAt !== null) {
    return { ok: false, reason: 'revoked', detail: 'the member was terminated; its instance credentials are revoked' };
  }
  if (instanceId === null) {
    return { ok: false, reason: 'no-instance-id', detail: 'a credential was sent without the instance id it belongs to' };
  }
  const unknown: CredentialCheck = { ok: false, reason: 'unknown-credential', detail: `the credential is not one this controller holds for ${member.memberId}` };
  // The form is public; only the comparison with what is stored must not leak through timing.
  if (!CREDENTIAL_PATTERN.test(presented)) return unknown;
  const given = Buffer.from(hashCredential(presented), 'hex');
  let match: CredentialRecord | undefined;
  for (const record of member.credentials) {
    const stored = Buffer.from(record.sha256, 'hex');
    if (stored.length === given.length && timingSafeEqual(stored, given)) match = record;
  }
  if (!match) return unknown;
  if (match.instanceId !== instanceId) {
    return { ok: false, reason: 'wrong-instance', detail: 'the credential was issued to another instance of this member' };
  }
  return { ok: true, record: match };
}

/** The stored form is validated on load: a damaged record is an error, never a silent pass. */
export function isCredentialRecord(value: unknown): value is CredentialRecord {
  const r = value as Partial<CredentialRecord> | null;
  return !!r && typeof r.instanceId === 'string' && typeof r.sha256 === 'string' && /^[0-9a-f]{64}$/.test(r.sha256) && Number.isSafeInteger(r.issuedAt);
}
