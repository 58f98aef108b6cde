/**
 * EC2 instance metadata, IMDSv2 only: a session token from `PUT /latest/api/token`, then
 * `user-data` and `meta-data/instance-id` with the token. IMDSv1 (plain GET) is not tried: on
 * AWS a refused token means the service is off, and the token PUT is what keeps SSRF-able
 * GET proxies from reading our user data.
 */
import type { PointerSource, SourceContext, SourceResult } from './types';
import { absent, checkInstanceId, found, joinUrl } from './common';
import {
  DEFAULT_RETRY_POLICY, attemptsNote, metadataFailure, metadataRequest, type RetryPolicy,
} from './metadata-http';

const TOKEN_PATH = '/latest/api/token';
const USER_DATA_PATH = '/latest/user-data';
const INSTANCE_ID_PATH = '/latest/meta-data/instance-id';
const SMALL_ANSWER_BYTES = 64 * 1024;

/** The service said something final about this probe: stop and report it as absent. */
class Ec2Absent extends Error {}

export class Ec2Source implements PointerSource {
  readonly name = 'ec2' as const;

  constructor(private readonly retryPolicy: RetryPolicy = DEFAULT_RETRY_POLICY) {}

  async probe(ctx: SourceContext): Promise<SourceResult> {
    const cfg = ctx.config.sources.ec2;
    const base = cfg.baseUrl;
    const request = (method: 'GET' | 'PUT', path: string, headers: Record<string, string>, maxBytes = SMALL_ANSWER_BYTES) =>
      metadataRequest({ method, url: joinUrl(base, path), headers, maxBytes }, cfg, ctx.signal, this.retryPolicy);

    const fetchToken = async (): Promise<string> => {
      const res = await request('PUT', TOKEN_PATH, { 'X-aws-ec2-metadata-token-ttl-seconds': String(cfg.tokenTtlSeconds) });
      // 403 is how IMDS says "IMDS is disabled for this instance": final, no retries.
      if (res.status === 403) throw new Ec2Absent(`IMDSv2 token refused (403): metadata service disabled at ${base}`);
      if (res.status !== 200) throw new Ec2Absent(`IMDSv2 token request to ${base} answered HTTP ${res.status}${attemptsNote(res.attempts)}`);
      const token = res.body.toString('utf8').trim();
      if (!token) throw new Ec2Absent(`IMDSv2 token request to ${base} returned an empty token`);
      return token;
    };

    let token: string | null = null;
    /** GET with the session token; a 401 means the token expired: fetch a new one, once. */
    const get = async (path: string, maxBytes?: number) => {
      token ??= await fetchToken();
      let res = await request('GET', path, { 'X-aws-ec2-metadata-token': token }, maxBytes);
      if (res.status === 401) {
        ctx.log.debug({ source: this.name, path }, 'IMDSv2 token rejected (401); fetching a new one');
        token = await fetchToken();
        res = await request('GET', path, { 'X-aws-ec2-metadata-token': token }, maxBytes);
      }
      return res;
    };

    try {
      const userData = await get(USER_DATA_PATH, ctx.config.payload.maxUserDataBytes);
      if (userData.status === 404) return absent(`no user data at ${base}${USER_DATA_PATH} (404)`);
      if (userData.status !== 200) return absent(`${base}${USER_DATA_PATH} answered HTTP ${userData.status}${attemptsNote(userData.attempts)}`);
      if (userData.body.length === 0) return absent(`user data at ${base}${USER_DATA_PATH} is empty`);

      const idRes = await get(INSTANCE_ID_PATH);
      if (idRes.status !== 200) {
        return absent(`user data present but ${base}${INSTANCE_ID_PATH} answered HTTP ${idRes.status}${attemptsNote(idRes.attempts)}`);
      }
      const instanceId = checkInstanceId(idRes.body.toString('utf8'), this.name, `${base}${INSTANCE_ID_PATH}`);
      return found({
        source: this.name,
        instanceId,
        origin: `${base}${USER_DATA_PATH}`,
        content: { kind: 'userdata', bytes: userData.body },
      });
    } catch (err) {
      if (err instanceof Ec2Absent) return absent(err.message);
      return metadataFailure(err, this.name, 'IMDS');
    }
  }
}
