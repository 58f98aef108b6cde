/**
 * OpenStack metadata service: the config drive's v2 tree over HTTP.
 * `openstack/latest/meta_data.json` gives the uuid, `openstack/latest/user_data` the user data
 * (404: the instance has none).
 */
import type { PointerSource, SourceContext, SourceResult } from './types';
import { absent, found, joinUrl } from './common';
import { META_DATA_PATH, USER_DATA_PATH, parseConfigDriveMetaData } from './configdrive-tree';
import { DEFAULT_RETRY_POLICY, attemptsNote, metadataFailure, metadataRequest, type RetryPolicy } from './metadata-http';

const MAX_META_DATA_BYTES = 1024 * 1024;

export class OpenStackSource implements PointerSource {
  readonly name = 'openstack' as const;

  constructor(private readonly retryPolicy: RetryPolicy = DEFAULT_RETRY_POLICY) {}

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const cfg = ctx.config.sources.openstack;
    const metaUrl = joinUrl(cfg.baseUrl, `/${META_DATA_PATH}`);
    const userDataUrl = joinUrl(cfg.baseUrl, `/${USER_DATA_PATH}`);
    try {
      const meta = await metadataRequest({ method: 'GET', url: metaUrl, maxBytes: MAX_META_DATA_BYTES }, cfg, ctx.signal, this.retryPolicy);
      if (meta.status === 404) return absent(`no OpenStack metadata at ${metaUrl} (404)`);
      if (meta.status !== 200) return absent(`${metaUrl} answered HTTP ${meta.status}${attemptsNote(meta.attempts)}`);
      const { uuid } = parseConfigDriveMetaData(meta.body.toString('utf8'), this.name, metaUrl);

      const maxBytes = ctx.config.payload.maxUserDataBytes;
      const userData = await metadataRequest({ method: 'GET', url: userDataUrl, maxBytes }, cfg, ctx.signal, this.retryPolicy);
      if (userData.status === 404) return absent(`no user data at ${userDataUrl} (404)`);
      if (userData.status !== 200) return absent(`${userDataUrl} answered HTTP ${userData.status}${attemptsNote(userData.attempts)}`);
      if (userData.body.length === 0) return absent(`user data at ${userDataUrl} is empty`);
      return found({ source: this.name, instanceId: uuid, origin: userDataUrl, content: { kind: 'userdata', bytes: userData.body } });
    } catch (err) {
      return metadataFailure(err, this.name, 'OpenStack metadata service');
    }
  }
}
