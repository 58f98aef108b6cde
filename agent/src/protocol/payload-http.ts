/**
 * Wire constants shared by the agent (payload/) and the controller stub, so the two cannot
 * drift: how a payload is marked inside MIME user data, and how a payload server signs what
 * it sends.
 */

/**
 * Content-Type of OUR part in MIME multipart user data (cloud-init style `make-mime`).
 * Any other part (`text/cloud-config`, `text/x-shellscript`, …) belongs to cloud-init and is
 * ignored. The part's body is a payload, an `#include` URL list or a lone URL, optionally
 * gzip-compressed; Content-Transfer-Encoding base64 / quoted-printable / 7bit / 8bit / binary.
 */
export const PAYLOAD_PART_CONTENT_TYPE = 'text/x-cartridge-payload';

/**
 * Response header carrying the payload signature: base64 (standard alphabet, padded) of the
 * 64-byte Ed25519 signature over the exact response body bytes — after any HTTP
 * Content-Encoding is removed, i.e. the bytes the agent parses.
 */
export const PAYLOAD_SIGNATURE_HEADER = 'X-Cartridge-Signature';

/** What the agent asks for. Payload servers may answer with any of these; the agent sniffs the format. */
export const PAYLOAD_ACCEPT = `${PAYLOAD_PART_CONTENT_TYPE}, text/plain;q=0.9, application/json;q=0.9, */*;q=0.1`;

/** User-Agent prefix of the agent's payload requests (the version is appended). */
export const PAYLOAD_USER_AGENT = 'cartridge-agent';

/**
 * Per-instance credentials (docs/payload.md "Reboots"). The agent names its instance on every
 * payload request; after a fetch admitted by the bootstrap token the controller answers with a
 * credential bound to that member and instance, which the agent presents on later boots as
 * `Authorization: Bearer <credential>` — to the controller origin that issued it, only.
 */
export const INSTANCE_ID_HEADER = 'X-Cartridge-Instance-Id';
/** Response header of a 2xx payload answer: the credential just issued for this instance. */
export const INSTANCE_CREDENTIAL_HEADER = 'X-Cartridge-Credential';
/** base64url of 32 random bytes; anything else is not a credential (and never sent or stored). */
export const CREDENTIAL_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Response header of a refusal (403/404): the rule that refused, one lowercase word with
 * dashes (`reused`, `revoked`, `expired`, `wrong-instance`, …), for programs; the body says
 * the same for people.
 */
export const REFUSAL_HEADER = 'X-Cartridge-Refusal';
/** The refusal of a single-use token that was spent already (the agent's cache fallback keys on it). */
export const REFUSAL_TOKEN_REUSED = 'reused';

/** A refusal header's value, or null when absent or not of that form (never trusted as text). */
export function parseRefusal(header: string | undefined): string | null {
  const value = header?.trim().toLowerCase() ?? '';
  return /^[a-z][a-z0-9-]{0,63}$/.test(value) ? value : null;
}

/** Instance ids are printable ASCII today, but a header must never carry raw bytes: percent-encode. */
export function encodeInstanceId(instanceId: string): string {
  return encodeURIComponent(instanceId);
}

/** The instance id of a request, or null when absent or not a valid encoding of 1-255 characters. */
export function decodeInstanceId(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string' || header === '' || header.length > 3 * 255) return null;
  try {
    const id = decodeURIComponent(header);
    return id.length >= 1 && id.length <= 255 && !/\p{Cc}/u.test(id) ? id : null;
  } catch {
    return null;
  }
}
