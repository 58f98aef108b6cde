/**
 * Last good payload per instance id, so a reboot while the controller is down still comes up
 * with the right environment. Keyed by instance id: a new instance (e.g. an image cloned
 * from a running one) never uses an old instance's payload, and saving removes every other
 * instance's entry so stale secrets do not linger in the image.
 */
import { createHash } from 'node:crypto';
import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { objectWith, readStateFile } from '../io/state-file';
import { FileTransaction } from '../io/staged-write';

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

const isCacheFile = objectWith({ version: 'number', instanceId: 'string', digest: 'string', origin: 'string', savedAt: 'string', bytesBase64: 'string' });

export class PayloadCache {
  /** @param dir host path of the cache directory (state dir + /cache). */
  constructor(private readonly dir: string) {}

  /** The entry for this instance; null when there is none. A damaged entry is a StateFileError naming it. */
  async load(instanceId: string): Promise<CachedPayload | null> {
    const file = fileFor(this.dir, instanceId);
    const parsed = await readStateFile<CacheFileV1>(file, 'the cached payload', (v) => {
      const problem = isCacheFile(v);
      if (problem) return problem;
      const o = v as CacheFileV1;
      if (o.version !== 1) return `version ${o.version} is not 1`;
      if (o.urlDigest !== undefined && typeof o.urlDigest !== 'string') return 'field "urlDigest" is not text';
      if (o.instanceId !== instanceId) return `it belongs to instance ${JSON.stringify(o.instanceId)}, not ${JSON.stringify(instanceId)}`;
      const digest = createHash('sha256').update(Buffer.from(o.bytesBase64, 'base64')).digest('hex');
      return digest === o.digest ? null : `its bytes have sha256 ${digest}, not the recorded ${o.digest}`;
    });
    if (!parsed) return null;
    const { urlDigest } = parsed;
    return {
      instanceId,
      bytes: Buffer.from(parsed.bytesBase64, 'base64'),
      digest: parsed.digest,
      origin: parsed.origin,
      ...(typeof urlDigest === 'string' ? { urlDigest } : {}),
      savedAt: parsed.savedAt,
    };
  }

  /** Stage the entry (0600) into `txn`; it replaces the old one when the transaction commits. */
  async stage(txn: FileTransaction, entry: Omit<CachedPayload, 'savedAt' | 'digest'>, now = new Date()): Promise<void> {
    const file: CacheFileV1 = {
      version: 1,
      instanceId: entry.instanceId,
      digest: createHash('sha256').update(entry.bytes).digest('hex'),
      origin: entry.origin,
      ...(entry.urlDigest ? { urlDigest: entry.urlDigest } : {}),
      savedAt: now.toISOString(),
      bytesBase64: entry.bytes.toString('base64'),
    };
    await txn.stage(fileFor(this.dir, entry.instanceId), JSON.stringify(file) + '\n', { mode: 0o600, stage: 'cache' });
  }

  /** After a commit: drop the entries of other instances (an image cloned from a running one). */
  async pruneOthers(instanceId: string): Promise<void> {
    const keep = fileFor(this.dir, instanceId);
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.endsWith(SUFFIX) && path.join(this.dir, name) !== keep) {
        await unlink(path.join(this.dir, name)).catch(() => undefined);
      }
    }
  }

  /** Save on its own (stage, commit, prune): for callers outside the boot transaction. */
  async save(entry: Omit<CachedPayload, 'savedAt' | 'digest'>, now = new Date()): Promise<void> {
    const txn = new FileTransaction();
    try {
      await this.stage(txn, entry, now);
      await txn.commit();
    } finally {
      await txn.discard();
    }
    await this.pruneOthers(entry.instanceId);
  }
}
