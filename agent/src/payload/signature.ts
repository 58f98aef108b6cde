/**
 * Ed25519 payload signatures (node:crypto, no dependency). The payload server sends the
 * signature in the X-Cartridge-Signature header (protocol/payload-http.ts): base64 of the
 * 64-byte signature over the exact body bytes.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors';

const CONFIG_KEY = 'payload.publicKey';
/** DER SubjectPublicKeyInfo prefix for Ed25519 (RFC 8410): SEQUENCE{SEQUENCE{OID 1.3.101.112}, BIT STRING(32 bytes)}. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const STRICT_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Strict base64 → bytes, or undefined for anything else (Buffer.from would silently skip junk). */
function strictBase64(text: string): Buffer | undefined {
  const compact = text.trim();
  if (!STRICT_BASE64.test(compact) || compact.length % 4 !== 0) return undefined;
  return Buffer.from(compact, 'base64');
}

/**
 * `spec` is either an absolute path to a PEM public key (read through `readFile`, which the
 * caller roots under --root) or base64 of the 32 raw public key bytes.
 */
export function loadPublicKey(spec: string, readFile: (path: string) => Buffer | string): KeyObject {
  // Base64 may start with '/', so decide by shape first: 32 raw bytes are exactly 44 base64
  // characters ending in one '='; no PEM file path looks like that and also decodes to 32 bytes.
  const raw32 = /^[A-Za-z0-9+/]{43}=$/.test(spec) ? strictBase64(spec) : undefined;
  if (raw32?.length === 32) return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw32]), format: 'der', type: 'spki' });
  if (spec.startsWith('/')) {
    let pem: string;
    try {
      pem = readFile(spec).toString();
    } catch (err) {
      throw new ConfigError(CONFIG_KEY, `cannot read the public key file ${spec}: ${(err as Error).message}`);
    }
    // createPublicKey would happily derive a public key from a private one; a private key
    // has no business on an image, so say so instead.
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
      throw new ConfigError(CONFIG_KEY, `${spec} holds a PRIVATE key; put only the public key on the image`);
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: pem, format: 'pem' });
    } catch (err) {
      throw new ConfigError(CONFIG_KEY, `${spec} is not a PEM public key: ${(err as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new ConfigError(CONFIG_KEY, `${spec} holds a ${key.asymmetricKeyType ?? 'unknown'} key; an Ed25519 public key is required`);
    }
    return key;
  }
  const raw = strictBase64(spec);
  if (raw === undefined || raw.length !== 32) {
    const got = raw === undefined ? 'it is not base64' : `it decodes to ${raw.length} bytes`;
    throw new ConfigError(CONFIG_KEY, `must be an absolute path to a PEM file or base64 of the 32 raw Ed25519 public key bytes; ${got}`);
  }
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** True only for a well-formed signature that verifies; malformed base64 or length is simply false. */
export function verifySignature(bytes: Buffer, signatureB64: string, key: KeyObject): boolean {
  const signature = strictBase64(signatureB64);
  if (signature === undefined || signature.length !== 64) return false;
  try {
    return verify(null, bytes, key, signature);
  } catch {
    return false;
  }
}
