/**
 * Rackspace personality file: a small text file whose first line is the payload URL. It is
 * either already on disk (written by nova-agent / cloud-init, possibly late, after boot) or
 * still inside the config drive as an injected file (`meta_data.json` `files[]` →
 * `openstack/content/NNNN`).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { SourceError } from '../errors';
import type { PointerSource, SourceContext, SourceResult } from './types';
import { absent, found, readCapped } from './common';
import { readConfigDriveFile, withConfigDrive } from './configdrive-tree';

/** Rackspace's per-file content limit (maxPersonalitySize); 255 bytes is the *path* limit. */
export const PERSONALITY_MAX_BYTES = 1000;
/** Read a little more than the limit so the error can say how large the file really is. */
const READ_CAP = 64 * 1024;

/**
 * Check personality content and return the URL on its first line. null means the file is
 * empty: injection may have created it and not written it yet, so the caller keeps waiting.
 * Anything else that is wrong is a SourceError; messages never quote the content (it may hold
 * a token).
 */
export function parsePersonalityContent(bytes: Buffer, where: string): string | null {
  if (bytes.length > PERSONALITY_MAX_BYTES) {
    throw new SourceError('personality', where, `is ${bytes.length} bytes, over the ${PERSONALITY_MAX_BYTES}-byte personality limit`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SourceError('personality', where, 'is not UTF-8 text');
  }
  text = text.replace(/^\uFEFF/, '');
  if (text.trim() === '') return null;
  const first = (text.split('\n', 1)[0] ?? '').trim();
  if (first === '') throw new SourceError('personality', where, 'first line is empty; it must be an http(s) URL');
  if (/\s/.test(first)) throw new SourceError('personality', where, 'first line contains whitespace; it must be a single http(s) URL');
  let url: URL;
  try {
    url = new URL(first);
  } catch {
    throw new SourceError('personality', where, `first line (${first.length} characters) is not an http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SourceError('personality', where, `first line is a ${url.protocol.replace(/:$/, '')} URL; it must be http or https`);
  }
  if (!url.hostname) throw new SourceError('personality', where, 'first line is a URL without a host');
  return first;
}

/**
 * Without a config drive there is no instance id on disk. The controller writes a fresh
 * personality file (with its own per-instance token) for every instance it creates, so the
 * URL itself identifies the instance: a new instance has a new URL and never matches an old
 * cache. Only a hash goes into the id, never the token.
 */
export function instanceIdFromUrl(url: string): string {
  return `url-${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
}

/** Injected-file paths are compared the way cloud-init writes them: absolute, normalised. */
function samePath(a: string, b: string): boolean {
  const norm = (p: string): string => path.posix.normalize(`/${p}`);
  return norm(a) === norm(b);
}

export class PersonalitySource implements PointerSource {
  readonly name = 'personality' as const;

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const configured = ctx.config.sources.personality.paths;
    const reasons: string[] = [];
    for (const imagePath of configured) {
      const bytes = await readCapped(ctx.paths.resolve(imagePath), READ_CAP, this.name, imagePath);
      if (bytes === null) {
        reasons.push(`no file at ${imagePath}`);
        continue;
      }
      const url = parsePersonalityContent(bytes, imagePath);
      if (url === null) {
        reasons.push(`${imagePath} is empty (still being written?)`);
        continue;
      }
      const drive = await withConfigDrive(ctx, this.name, async (_tree, meta) => meta.uuid);
      const instanceId = drive.found ? drive.value : instanceIdFromUrl(url);
      return found({ source: this.name, instanceId, origin: imagePath, content: { kind: 'url', url } });
    }

    const inDrive = await withConfigDrive(ctx, this.name, async (tree, meta): Promise<SourceResult> => {
      const entry = meta.files.find((f) => configured.some((p) => samePath(p, f.path)));
      if (!entry) return absent(`config drive ${tree.label} injects no file at ${configured.join(' or ')}`);
      const where = `${tree.label}/openstack/${entry.contentPath.replace(/^\/+/, '')} (for ${entry.path})`;
      const bytes = await readConfigDriveFile(tree, entry.contentPath, READ_CAP, this.name);
      if (bytes === null) throw new SourceError(this.name, where, 'is listed in meta_data.json files[] but missing');
      const url = parsePersonalityContent(bytes, where);
      if (url === null) return absent(`${where} is empty`);
      return found({ source: this.name, instanceId: meta.uuid, origin: where, content: { kind: 'url', url } });
    });
    if (inDrive.found) {
      if (inDrive.value.status === 'found') return inDrive.value;
      reasons.push(inDrive.value.reason);
    } else {
      reasons.push(`no config drive (${inDrive.reason})`);
    }
    return absent(reasons.join('; '));
  }
}
