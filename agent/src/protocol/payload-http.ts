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
