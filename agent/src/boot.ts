/**
 * The boot work (`cartridge-agent once`, and the first half of `run`): discover the pointer,
 * get the payload (fetch, or the cache when the controller is unreachable), validate it and
 * export it. Each step is a module of its own; this file only decides the order and what a
 * failure means.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from './config';
import { ConfigError, FetchError, PayloadError } from './errors';
import { writeExports } from './export';
import { applyFirewall, endpointsFromUrls } from './firewall';
import { buildPolicy } from './firewall/allowlist';
import type { FirewallState } from './firewall/types';
import type { Logger } from './log';
import type { RootedPaths } from './paths';
import { PayloadCache } from './payload/cache';
import { fetchPayload } from './payload/fetch';
import { buildPayload } from './payload';
import { loadPublicKey } from './payload/signature';
import type { Payload } from './payload/types';
import { decodeUserData } from './payload/userdata';
import { redactUrl } from './redact';
import { discoverPointer } from './sources';
import type { Discovery } from './sources/types';

export interface BootContext {
  config: AgentConfig;
  paths: RootedPaths;
  log: Logger;
  signal: AbortSignal;
  /** What the agent is doing or waiting for (systemd STATUS= later). */
  onStatus?: (text: string) => void;
}

export interface BootResult {
  discovery: Pick<Discovery, 'source' | 'instanceId' | 'origin'>;
  payload: Payload;
  /** How the payload was obtained. */
  via: 'fetched' | 'inline' | 'cache';
  /** When via === 'cache': when that payload was saved. */
  cachedAt?: string;
  /** Host paths of the export files written. */
  written: string[];
  firewall: FirewallState;
}

interface RawPayload {
  bytes: Buffer;
  via: BootResult['via'];
  origin: string;
  cachedAt?: string;
  /** The payload URL(s): the controller the lock-out guard keeps reachable. */
  controllerUrls: string[];
}

export async function bootOnce(ctx: BootContext): Promise<BootResult> {
  const { config, paths, log } = ctx;
  const status = (text: string) => {
    log.info({ status: text }, text);
    ctx.onStatus?.(text);
  };

  status('discovering payload pointer');
  const discovery = await discoverPointer({ config, paths, log, signal: ctx.signal }, ctx.onStatus);

  const cache = new PayloadCache(paths.resolve(path.posix.join(config.state.dir, 'cache')));
  const raw = await obtainPayload(ctx, discovery, cache, status);

  const payload = buildPayload(raw.bytes, {
    format: config.payload.format,
    allowNames: config.payload.allowNames,
    maxKeys: config.payload.maxKeys,
    maxBytes: config.payload.maxBytes,
    allowEmpty: config.payload.allowEmpty,
    source: raw.via === 'cache' ? `the cache of ${raw.origin} (saved ${raw.cachedAt})` : raw.origin,
  });
  log.info({ variables: payload.vars.size, format: payload.format, digest: payload.digest, via: raw.via }, 'payload accepted');
  // An invalid allowlist refuses the payload before anything is written.
  if (config.firewall.mode !== 'off') buildPolicy(payload.vars, config.firewall);

  status('writing exports');
  const written = await writeExports(payload.vars, config.export, paths);
  log.info({ files: written }, 'exports written');

  // Only a payload that was accepted and exported becomes the "last good" one.
  if (raw.via !== 'cache') {
    await cache.save({ instanceId: discovery.instanceId, bytes: raw.bytes, origin: raw.origin });
  }

  status(`firewall: ${config.firewall.mode}`);
  const firewall = await applyFirewall({
    config,
    paths,
    log,
    payloadVars: payload.vars,
    controllerEndpoints: endpointsFromUrls(raw.controllerUrls),
  });
  return {
    discovery: { source: discovery.source, instanceId: discovery.instanceId, origin: discovery.origin },
    payload,
    via: raw.via,
    ...(raw.cachedAt ? { cachedAt: raw.cachedAt } : {}),
    written,
    firewall,
  };
}

async function obtainPayload(
  ctx: BootContext,
  discovery: Discovery,
  cache: PayloadCache,
  status: (text: string) => void,
): Promise<RawPayload> {
  const { config, paths, log } = ctx;
  const ref =
    discovery.content.kind === 'url'
      ? { kind: 'urls' as const, urls: [discovery.content.url] }
      : await decodeUserData(discovery.content.bytes, { maxBytes: config.payload.maxUserDataBytes, signal: ctx.signal });

  const publicKey = config.payload.publicKey
    ? loadPublicKey(config.payload.publicKey, (p) => readFileSync(paths.resolve(p)))
    : undefined;

  if (ref.kind === 'inline') {
    if (publicKey) {
      throw new PayloadError(
        `the user data from ${discovery.source} holds an inline payload, but payload.publicKey is set and an inline payload cannot carry a signature; serve the payload from a URL or unset payload.publicKey`,
      );
    }
    return { bytes: ref.bytes, via: 'inline', origin: discovery.origin, controllerUrls: [] };
  }

  status(`fetching payload from ${ref.urls.map(redactUrl).join(', ')}`);
  const caPem = config.payload.fetch.caFile ? await readCaFile(paths, config.payload.fetch.caFile) : undefined;
  try {
    const fetched = await fetchPayload(ref.urls, {
      ...config.payload.fetch,
      maxBytes: config.payload.maxBytes,
      caPem,
      publicKey,
      log,
      signal: ctx.signal,
    });
    return { bytes: fetched.bytes, via: 'fetched', origin: redactUrl(fetched.url), controllerUrls: [fetched.url] };
  } catch (err) {
    // Only an unreachable controller falls back to the cache: a terminal answer (403: token
    // revoked) or a refused payload (bad signature) must not be papered over with old data.
    // A stop (SIGTERM during boot) is not an outage either: exit without writing anything.
    if (!(err instanceof FetchError) || err.terminal || ctx.signal.aborted) throw err;
    const cached = await cache.load(discovery.instanceId);
    if (!cached) {
      throw new FetchError(`${err.message}; no cached payload for instance ${discovery.instanceId}`, false, err.context);
    }
    log.warn(
      { instanceId: discovery.instanceId, cachedAt: cached.savedAt, digest: cached.digest, reason: err.message },
      `CONTROLLER UNREACHABLE: using the cached payload saved ${cached.savedAt} for instance ${discovery.instanceId}`,
    );
    status(`controller unreachable; using cached payload from ${cached.savedAt}`);
    return { bytes: cached.bytes, via: 'cache', origin: cached.origin, cachedAt: cached.savedAt, controllerUrls: ref.urls };
  }
}

async function readCaFile(paths: RootedPaths, imagePath: string): Promise<string> {
  try {
    return await readFile(paths.resolve(imagePath), 'utf8');
  } catch (err) {
    throw new ConfigError('payload.fetch.caFile', `cannot read the CA bundle ${imagePath}: ${(err as Error).message}`);
  }
}
