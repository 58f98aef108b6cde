/**
 * Last good payload per instance id, so a reboot while the controller is down still comes up
 * with the right environment. Keyed by instance id: a new instance (e.g. an image cloned
 * from a running one) never uses an old instance's payload, and saving removes every other
 * instance's entry so stale secrets do not linger in the image.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../export/atomic-write';

export interface CachedPayload {
  instanceId: string;
  /** The raw payload bytes as fetched (re-validated with current rules on use). */
  bytes: Buffer;
  digest: string;
  /** Where it came from, redacted (no tokens). */
  origin: string;
  /** Hex SHA-256 of the full pointer URL it was fetched from (see ./credential); absent for inline payloads and older entries. */
  urlDigest?: string;
  savedAt: string;
}

interface CacheFileV1 {
  version: 1;
  instanceId: string;
  digest: string;
  origin: string;
  urlDigest?: string;
  savedAt: string;
  bytesBase64: string;
}

const SUFFIX = '.payload.json';

function fileFor(dir: string, instanceId: string): string {
  // Hash: instance ids may contain '/' or be long; the id itself is stored and re-checked.
  return path.join(dir, createHash('sha256').update(instanceId).digest('hex').slice(0, 32) + SUFFIX);
}

export class PayloadCache {
  /** @param dir host path of the cache directory (state dir + /cache). */
  constructor(private readonly dir: string) {}

  async load(instanceId: string): Promise<CachedPayload | null> {
    let text: string;
    try {
      text = await readFile(fileFor(this.dir, instanceId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const parsed = JSON.parse(text) as Partial<CacheFileV1>;
    if (parsed.version !== 1 || parsed.instanceId !== instanceId || typeof parsed.bytesBase64 !== 'string') return null;
    const bytes = Buffer.from(parsed.bytesBase64, 'base64');
    const digest = createHash('sha256').update(bytes).digest('hex');
    // A corrupted entry is treated as absent rather than exported.
    if (digest !== parsed.digest) return null;
    const urlDigest = typeof parsed.urlDigest === 'string' ? parsed.urlDigest : undefined;
    return { instanceId, bytes, digest, origin: parsed.origin ?? '', ...(urlDigest ? { urlDigest } : {}), savedAt: parsed.savedAt ?? '' };
  }

  /** Save atomically (0600) and drop entries of other instances. */
  async save(entry: Omit<CachedPayload, 'savedAt' | 'digest'>, now = new Date()): Promise<void> {
    const digest = createHash('sha256').update(entry.bytes).digest('hex');
    const file: CacheFileV1 = {
      version: 1,
      instanceId: entry.instanceId,
      digest,
      origin: entry.origin,
      ...(entry.urlDigest ? { urlDigest: entry.urlDigest } : {}),
      savedAt: now.toISOString(),
      bytesBase64: entry.bytes.toString('base64'),
    };
    const target = fileFor(this.dir, entry.instanceId);
    await writeFileAtomic(target, JSON.stringify(file) + '\n', { mode: 0o600 });
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(SUFFIX) && path.join(this.dir, name) !== target) {
        await unlink(path.join(this.dir, name)).catch(() => undefined);
      }
    }
  }
}
