/**
 * NoCloud: `user-data` and `meta-data` from a seed dir in the image
 * (/var/lib/cloud/seed/nocloud, nocloud-net) or from the root of a filesystem labelled
 * cidata/CIDATA (as made by cloud-localds), mounted read-only for the read.
 */
import type { PointerSource, SourceContext, SourceResult } from './types';
import { MountError, findDevicesByLabel, withMountedReadOnly } from './blockdev';
import { absent, checkInstanceId, found, readInsideTree } from './common';
import { parseMetaData } from './meta-data';
import { SourceError } from '../errors';

/** cloud-init's instance id for a NoCloud seed whose meta-data does not name one. */
export const DEFAULT_NOCLOUD_INSTANCE_ID = 'nocloud';
const MAX_META_DATA_BYTES = 64 * 1024;

interface Seed {
  /** Where the seed is readable now (host path). */
  dir: string;
  /** How to name it in messages and `origin`: an in-image path or a device. */
  label: string;
}

export class NoCloudSource implements PointerSource {
  readonly name = 'nocloud' as const;

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const cfg = ctx.config.sources.nocloud;
    const reasons: string[] = [];
    for (const seedDir of cfg.seedDirs) {
      const result = await this.readSeed(ctx, { dir: ctx.paths.resolve(seedDir), label: seedDir });
      if (result.status === 'found') return result;
      reasons.push(result.reason);
    }
    if (!ctx.config.sources.scanDevices) return absent([...reasons, 'device scan off (sources.scanDevices)'].join('; '));
    if (cfg.labels.length === 0) return absent([...reasons, 'no cidata labels configured'].join('; '));
    const search = await findDevicesByLabel(cfg.labels);
    if ('reason' in search) return absent([...reasons, search.reason].join('; '));
    for (const dev of search.devices) {
      const label = `${dev.device} (LABEL=${dev.label})`;
      try {
        const result = await withMountedReadOnly(dev, ctx.log, (dir) => this.readSeed(ctx, { dir, label }));
        if (result.status === 'found') return result;
        reasons.push(result.reason);
      } catch (err) {
        if (err instanceof MountError) throw new SourceError(this.name, label, err.message);
        throw err;
      }
    }
    return absent(reasons.join('; '));
  }

  /** A seed counts when it has user-data; meta-data only supplies the instance id. */
  private async readSeed(ctx: SourceContext, seed: Seed): Promise<SourceResult> {
    const where = `${seed.label}/user-data`;
    const userData = await readInsideTree(seed.dir, 'user-data', ctx.config.payload.maxUserDataBytes, this.name, where);
    if (userData === null) return absent(`no user-data in ${seed.label}`);
    if (userData.length === 0) return absent(`${where} is empty`);
    const metaWhere = `${seed.label}/meta-data`;
    const meta = await readInsideTree(seed.dir, 'meta-data', MAX_META_DATA_BYTES, this.name, metaWhere);
    const declared = meta === null ? '' : (parseMetaData(meta.toString('utf8')).get('instance-id') ?? '').trim();
    const instanceId = declared === '' ? DEFAULT_NOCLOUD_INSTANCE_ID : checkInstanceId(declared, this.name, metaWhere);
    return found({ source: this.name, instanceId, origin: where, content: { kind: 'userdata', bytes: userData } });
  }
}
