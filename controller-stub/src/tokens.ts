/**
 * Per-member payload tokens (pure). A token is
 *
 *   base64url(memberId + "." + expiryEpochS + "." + nonce) + "." + base64url(HMAC-SHA256(secret, that))
 *
 * where "that" is the first base64url segment. It proves the controller issued it for this
 * member and until when; it is not encrypted (the member id and expiry are readable), which is
 * fine: neither is secret. The nonce makes every issued token distinct, so the store can tell
 * the current token of a member from an older one (re-registered, revoked) and remember a
 * single-use token as spent.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface TokenClaims {
  memberId: string;
  /** Epoch seconds; the token is refused from this second on. */
  expiresAtS: number;
  nonce: string;
}

export type TokenRefusal = 'malformed' | 'forged' | 'wrong-member' | 'expired' | 'reused' | 'revoked';

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: TokenRefusal; detail: string };

const B64URL = /^[A-Za-z0-9_-]+$/;
/** Tokens end up in URLs of at most 1000 bytes (personality limit); anything longer is junk. */
const MAX_TOKEN_LENGTH = 800;

export function newNonce(): string {
  return randomBytes(12).toString('base64url');
}

function mac(secret: Buffer, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

export function issueToken(secret: Buffer, claims: TokenClaims): string {
  if (!Number.isSafeInteger(claims.expiresAtS) || claims.expiresAtS <= 0) throw new Error(`token expiry must be positive epoch seconds, got ${claims.expiresAtS}`);
  if (!B64URL.test(claims.nonce)) throw new Error('token nonce must be base64url');
  if (claims.memberId === '') throw new Error('token member id must not be empty');
  const body = Buffer.from(`${claims.memberId}.${claims.expiresAtS}.${claims.nonce}`).toString('base64url');
  return `${body}.${mac(secret, body).toString('base64url')}`;
}

/** The claims of a token, without checking its MAC: for diagnostics only, never for access. */
export function decodeTokenClaims(token: string): TokenClaims | null {
  if (token.length > MAX_TOKEN_LENGTH) return null;
  const parts = token.split('.');
  if (parts.length !== 2 || !B64URL.test(parts[0] ?? '') || !B64URL.test(parts[1] ?? '')) return null;
  const text = Buffer.from(parts[0] as string, 'base64url').toString('utf8');
  // The member id may itself contain dots (php.member-1): expiry and nonce are the LAST two fields.
  const m = /^(.+)\.(\d{1,15})\.([A-Za-z0-9_-]+)$/s.exec(text);
  if (!m) return null;
  return { memberId: m[1] as string, expiresAtS: Number(m[2]), nonce: m[3] as string };
}

export interface TokenExpectation {
  /** The member the request is for (from the URL path). */
  memberId: string;
  nowS: number;
}

/**
 * Check a token's form, MAC, member and expiry. Reuse and revocation need the store's state
 * and are decided by `admitToken`. Details never quote the token or the MAC.
 */
export function verifyToken(secret: Buffer, token: string, expect: TokenExpectation): TokenCheck {
  const claims = decodeTokenClaims(token);
  if (!claims) return { ok: false, reason: 'malformed', detail: 'the token is not a controller token' };
  const [body, sig] = token.split('.') as [string, string];
  const given = Buffer.from(sig, 'base64url');
  const wanted = mac(secret, body);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
    return { ok: false, reason: 'forged', detail: 'the token signature does not verify' };
  }
  if (claims.memberId !== expect.memberId) {
    return { ok: false, reason: 'wrong-member', detail: 'the token was issued for another member' };
  }
  if (expect.nowS >= claims.expiresAtS) {
    return { ok: false, reason: 'expired', detail: `the token expired at ${new Date(claims.expiresAtS * 1000).toISOString()}` };
  }
  return { ok: true, claims };
}

/** What the store knows about the member's current token. */
export interface IssuedTokenState {
  nonce: string;
  singleUse: boolean;
  usedAt: number | null;
  revokedAt: number | null;
}

/**
 * A verified token against the store: only the member's current token is accepted (a
 * re-registered member's old tokens are dead), never after terminate, and a single-use
 * token only once.
 */
export function admitToken(claims: TokenClaims, state: IssuedTokenState): TokenCheck {
  if (state.revokedAt !== null) return { ok: false, reason: 'revoked', detail: 'the member was terminated; its token is revoked' };
  if (claims.nonce !== state.nonce) return { ok: false, reason: 'revoked', detail: 'the token was replaced by a newer one for this member' };
  if (state.singleUse && state.usedAt !== null) return { ok: false, reason: 'reused', detail: 'the single-use token was already used' };
  return { ok: true, claims };
}
