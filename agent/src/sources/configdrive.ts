/**
 * OpenStack config drive: `openstack/latest/user_data` from a seed dir or a block device
 * labelled config-2, with meta_data.json `uuid` as the instance id.
 */
import type { PointerSource, SourceContext, SourceResult } from './types';
import { absent, found, readInsideTree } from './common';
import { USER_DATA_PATH, withConfigDrive } from './configdrive-tree';

export class ConfigDriveSource implements PointerSource {
  readonly name = 'configdrive' as const;

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const outcome = await withConfigDrive(ctx, this.name, async (tree, meta): Promise<SourceResult> => {
      const where = `${tree.label}/${USER_DATA_PATH}`;
      const bytes = await readInsideTree(tree.dir, USER_DATA_PATH, ctx.config.payload.maxUserDataBytes, this.name, where);
      if (bytes === null) return absent(`config drive ${tree.label} has no ${USER_DATA_PATH}`);
      if (bytes.length === 0) return absent(`${where} is empty`);
      return found({ source: this.name, instanceId: meta.uuid, origin: where, content: { kind: 'userdata', bytes } });
    });
    return outcome.found ? outcome.value : absent(outcome.reason);
  }
}
