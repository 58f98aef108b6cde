/**
 * What the controller hands to the cloud so the agent finds its payload (pure):
 *  - the personality file content (Rackspace): the URL on one line, at most 1000 bytes;
 *  - cloud-init user data, plain: the lone URL (the agent's decoder takes it as a pointer);
 *  - cloud-init user data, MIME multipart: our part (text/x-cartridge-payload) holds the URL,
 *    next to an optional text/cloud-config part that cloud-init itself acts on.
 */
import { randomBytes } from 'node:crypto';
import { PAYLOAD_PART_CONTENT_TYPE } from '../../agent/src/protocol/payload-http';
import { PERSONALITY_MAX_BYTES } from '../../agent/src/sources/personality';
import { ControllerError, ControllerExit } from './errors';

/** `<publicUrl>/payload/<member>?token=<token>`; publicUrl may carry a path prefix (reverse proxy). */
export function payloadUrl(publicUrl: string, memberId: string, token: string): string {
  let base: URL;
  try {
    base = new URL(publicUrl);
  } catch {
    throw new ControllerError(`--public-url ${JSON.stringify(publicUrl)} is not a URL`, ControllerExit.USAGE);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ControllerError(`--public-url must be http(s), got ${base.protocol}`, ControllerExit.USAGE);
  if (base.search || base.hash || base.username || base.password) {
    throw new ControllerError('--public-url must be a plain base URL without credentials, query or fragment', ControllerExit.USAGE);
  }
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}/payload/${encodeURIComponent(memberId)}`, base);
  url.searchParams.set('token', token);
  return url.toString();
}

/** The personality file: the URL and a newline, refused when over the 1000-byte limit. */
export function personalityContent(url: string): string {
  const content = `${url}\n`;
  const size = Buffer.byteLength(content);
  if (size > PERSONALITY_MAX_BYTES) {
    throw new ControllerError(
      `the personality file would be ${size} bytes, over the ${PERSONALITY_MAX_BYTES}-byte limit; use a shorter --public-url or member id`,
      ControllerExit.PAYLOAD,
    );
  }
  return content;
}

/** Plain user data: the agent takes a single http(s) line as the payload pointer. */
export function plainUserData(url: string): string {
  return `${url}\n`;
}

export interface MimeUserDataOptions {
  /** A cloud-config document (starting `#cloud-config`) for cloud-init; omitted when undefined. */
  cloudConfig?: string;
  /** Fixed boundary (tests); random otherwise. */
  boundary?: string;
}

/**
 * MIME multipart/mixed as cloud-init's `make-mime` writes it. Our part is 7bit text (a URL is
 * ASCII); the cloud-config part is sent base64 so any content survives line-length and
 * boundary rules untouched.
 */
export function mimeUserData(url: string, opts: MimeUserDataOptions = {}): string {
  const boundary = opts.boundary ?? `===============${randomBytes(12).toString('hex')}==`;
  const parts: string[] = [];
  if (opts.cloudConfig !== undefined) {
    if (!opts.cloudConfig.startsWith('#cloud-config')) {
      throw new ControllerError('the cloud-config part must start with "#cloud-config"', ControllerExit.USAGE);
    }
    parts.push(
      'Content-Type: text/cloud-config; charset="utf-8"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n' +
        'Content-Disposition: attachment; filename="cloud-config.yaml"\r\n\r\n' +
        `${(Buffer.from(opts.cloudConfig).toString('base64').match(/.{1,76}/g) ?? []).join('\r\n')}\r\n`,
    );
  }
  parts.push(
    `Content-Type: ${PAYLOAD_PART_CONTENT_TYPE}; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\n` +
      'Content-Disposition: attachment; filename="cartridge-payload-url"\r\n\r\n' +
      `${url}\r\n`,
  );
  if (parts.some((p) => p.includes(`--${boundary}`))) throw new Error('MIME boundary collides with the content');
  return (
    `Content-Type: multipart/mixed; boundary="${boundary}"\r\nMIME-Version: 1.0\r\n\r\n` +
    parts.map((p) => `--${boundary}\r\n${p}`).join('') +
    `--${boundary}--\r\n`
  );
}
