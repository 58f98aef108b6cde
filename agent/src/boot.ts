/**
 * The boot work (`cartridge-agent once`, and the first half of `run`): discover the pointer,
 * get the payload (fetch, or the cache when the controller is unreachable), validate it,
 * export it and apply its allowlist. Each step is a module of its own; this file only decides
 * the order and what a failure means.
 *
 * One boot, one outcome: the exports, the cache entry and the firewall record are staged in
 * one FileTransaction, the allowlist is applied, and only then is everything committed. Any
 * failure before the commit discards what was staged and rolls the firewall back, so the
 * previous exports, cache and rules stay in force (and on a first boot the baseline the early
 * firewall unit put in force).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from './config';
import { ConfigError, FetchError, PayloadError, StateFileError } from './errors';
import { exportSweepPlaces, omittedFromShFile, stageExports } from './export';
import { changeFirewall, endpointsFromUrls, stageApplied, type FirewallChange } from './firewall';
import { ensureFailClosed } from './firewall/fail-closed';
import { RULES_DIR } from './firewall/restore-files';
import { pruneRestoreTexts } from './firewall/state';
import { buildPolicy } from './firewall/allowlist';
import type { FirewallState } from './firewall/types';
import type { Logger } from './log';
import type { RootedPaths } from './paths';
import { PayloadCache } from './payload/cache';
import { cacheForSpentToken, CREDENTIAL_FILE, CredentialFile, pointerUrlDigest } from './payload/credential';
import { fetchPayload } from './payload/fetch';
import { buildPayload } from './payload';
import { loadPublicKey } from './payload/signature';
import type { Payload } from './payload/types';
import { decodeUserData } from './payload/userdata';
import { STATUS_FILE } from './daemon/status';
import { acquireRunLock, type RunLock } from './io/run-lock';
import { FileTransaction, sweepStagedTemps, type SweepPlace } from './io/staged-write';
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
  /** Names kept out of the sh export because they are special to a shell. */
  shellOmitted: string[];
  firewall: FirewallState;
}

interface RawPayload {
  bytes: Buffer;
  via: BootResult['via'];
  origin: string;
  cachedAt?: string;
  /** The payload URL(s): the controller the lock-out guard keeps reachable. */
  controllerUrls: string[];
  /** Digest of the pointer URL a fetched payload came from (kept with the cache entry). */
  urlDigest?: string;
}

/** Every place the agent writes files (swept for stale temp files under the lock). */
export function agentWritePlaces(config: AgentConfig, paths: RootedPaths): SweepPlace[] {
  const state = paths.resolve(config.state.dir);
  const status = paths.resolve(STATUS_FILE);
  // The state and cache dirs are the agent's own; /run/cartridge-agent and the export
  // directories may hold other programs' files.
  return [
    { dir: state },
    { dir: path.join(state, 'cache') },
    { dir: path.join(state, RULES_DIR) },
    { dir: path.dirname(status), files: [path.basename(status)] },
    ...exportSweepPlaces(config.export, paths),
  ];
}

/**
 * Take the run lock of this root for `command` and remove the staged temp files a killed
 * earlier run left in any directory the agent writes (safe only now: nobody else is writing).
 */
export async function lockRoot(
  ctx: Pick<BootContext, 'config' | 'paths' | 'log'> & { signal?: AbortSignal },
  command: string,
  waitMs = 30_000,
): Promise<RunLock> {
  const lock = await acquireRunLock({ stateDir: ctx.paths.resolve(ctx.config.state.dir), command, waitMs, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  try {
    const removed = await sweepStagedTemps(agentWritePlaces(ctx.config, ctx.paths));
    if (removed.length > 0) ctx.log.warn({ files: removed }, `removed ${removed.length} staged temp file(s) left by an earlier run that was killed`);
  } catch (err) {
    await lock.release();
    throw err;
  }
  return lock;
}

/**
 * The boot work; the caller holds the run lock (lockRoot). On any failure the host is left
 * fail-closed (firewall.mode enforce): the rules before this run are back, and if those were
 * not ours at all (the early unit did not run) the last good ruleset or the baseline is put in
 * force before the error is reported.
 */
export async function bootOnce(ctx: BootContext): Promise<BootResult> {
  try {
    return await bootWork(ctx);
  } catch (err) {
    try {
      const closed = await ensureFailClosed({ config: ctx.config, paths: ctx.paths, log: ctx.log });
      if (closed.changed) ctx.log.warn({ inForce: closed.inForce }, `boot work failed: put the ${closed.inForce} ruleset in force (fail closed)`);
    } catch (closeErr) {
      ctx.log.error({ err: closeErr }, `boot work failed, and so did putting a fail-closed ruleset in force: ${(closeErr as Error).message}`);
    }
    throw err;
  }
}

async function bootWork(ctx: BootContext): Promise<BootResult> {
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

  const { written, firewall } = await stageApplyCommit(ctx, payload, discovery, raw, cache, status);
  // Committed: from here on nothing is undone.
  log.info({ files: written }, 'exports written');
  const shellOmitted = config.export.shFile === null ? [] : omittedFromShFile(payload.vars);
  if (shellOmitted.length > 0) {
    log.warn(
      { names: shellOmitted, file: config.export.shFile },
      `names special to a shell left out of ${config.export.shFile} (kept in the EnvironmentFile and JSON; docs/payload.md): ${shellOmitted.join(', ')}`,
    );
  }
  await cache.pruneOthers(discovery.instanceId);
  await pruneRestoreTexts(paths.resolve(config.state.dir));
  await firewall.finish();
  return {
    discovery: { source: discovery.source, instanceId: discovery.instanceId, origin: discovery.origin },
    payload,
    via: raw.via,
    ...(raw.cachedAt ? { cachedAt: raw.cachedAt } : {}),
    written,
    shellOmitted,
    firewall: firewall.state,
  };
}

/**
 * Stage the exports and the cache entry, apply the allowlist, stage its record, commit all.
 * Any failure discards what was staged and puts the rules that were in force back.
 */
async function stageApplyCommit(
  ctx: BootContext,
  payload: Payload,
  discovery: Discovery,
  raw: RawPayload,
  cache: PayloadCache,
  status: (text: string) => void,
): Promise<{ written: string[]; firewall: FirewallChange }> {
  const { config, paths, log } = ctx;
  const txn = new FileTransaction();
  let firewall: FirewallChange | null = null;
  try {
    status('staging exports');
    const written = await stageExports(txn, payload.vars, config.export, paths);
    // Only a payload that is accepted, exported and enforced becomes the "last good" one.
    if (raw.via !== 'cache') await cache.stage(txn, { instanceId: discovery.instanceId, bytes: raw.bytes, origin: raw.origin, urlDigest: raw.urlDigest });

    status(`firewall: ${config.firewall.mode}`);
    firewall = await changeFirewall({ config, paths, log, payloadVars: payload.vars, controllerEndpoints: endpointsFromUrls(raw.controllerUrls) });
    // The record, and what the early unit restores from at the next boot (also when no new
    // ruleset was applied: the mode or the baseline may have changed with the config).
    await stageApplied(txn, paths.resolve(config.state.dir), { record: firewall.record, paths });

    status('committing exports, cache and firewall record');
    await txn.commit();
    return { written, firewall };
  } catch (err) {
    await txn.discard();
    await firewall?.rollback();
    throw err;
  }
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
  const credentials = new CredentialFile(paths.resolve(path.posix.join(config.state.dir, CREDENTIAL_FILE)), log);
  try {
    const fetched = await fetchPayload(ref.urls, {
      ...config.payload.fetch,
      maxBytes: config.payload.maxBytes,
      caPem,
      publicKey,
      log,
      signal: ctx.signal,
      identity: { instanceId: discovery.instanceId, credential: await credentials.load(discovery.instanceId) },
    });
    if (fetched.credential) await credentials.save(discovery.instanceId, fetched.url, fetched.credential);
    return { bytes: fetched.bytes, via: 'fetched', origin: redactUrl(fetched.url), controllerUrls: [fetched.url], urlDigest: pointerUrlDigest(fetched.url) };
  } catch (err) {
    // Only an unreachable controller falls back to the cache: a terminal answer (403: token
    // revoked) or a refused payload (bad signature) must not be papered over with old data —
    // except the single-use token this very instance spent (./payload/credential).
    // A stop (SIGTERM during boot) is not an outage either: exit without writing anything.
    if (!(err instanceof FetchError) || ctx.signal.aborted) throw err;
    /** The cache's answer; a damaged entry cannot stand in, and the error says both. */
    const fromCache = async <T>(load: () => Promise<T>): Promise<T> => {
      try {
        return await load();
      } catch (cacheErr) {
        if (!(cacheErr instanceof StateFileError)) throw cacheErr;
        throw new FetchError(`${err.message}; and the cache cannot stand in: ${cacheErr.message}`, err.terminal, err.context);
      }
    };
    if (err.terminal) {
      const spent = await fromCache(() => cacheForSpentToken(err, cache, discovery.instanceId, log));
      if (!spent) throw err;
      status(`single-use token already used by this instance; using cached payload from ${spent.savedAt}`);
      return { bytes: spent.bytes, via: 'cache', origin: spent.origin, cachedAt: spent.savedAt, controllerUrls: ref.urls };
    }
    const cached = await fromCache(() => cache.load(discovery.instanceId));
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
