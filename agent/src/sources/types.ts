import type { AgentConfig, SourceName } from '../config';
import type { Logger } from '../log';
import type { RootedPaths } from '../paths';

/**
 * What a source found. Personality files hold a URL; every other source holds raw user data
 * that payload/userdata decodes into a URL list or an inline payload.
 */
export type PointerContent =
  | { kind: 'url'; url: string }
  | { kind: 'userdata'; bytes: Buffer };

export interface Discovery {
  source: SourceName;
  /**
   * Stable id of this instance, keying the payload cache: a new instance never uses an old
   * instance's cache. From meta-data where the source has it; otherwise derived (documented
   * per source).
   */
  instanceId: string;
  /** Where it was found (file path in the image, or URL without secrets): for logs and `discover`. */
  origin: string;
  /** How the source got to `origin`, when that is worth saying (CloudStack: where the VR's address came from): for the log and `discover`. */
  via?: string;
  content: PointerContent;
}

/**
 * absent: nothing for us here (the reason says why, e.g. "no file at /etc/…").
 * found: a pointer. A source that finds something meant for us but broken throws SourceError.
 */
export type SourceResult = { status: 'found'; discovery: Discovery } | { status: 'absent'; reason: string };

export interface SourceContext {
  config: AgentConfig;
  paths: RootedPaths;
  log: Logger;
  /** Aborted when the discovery deadline passes or the agent stops. */
  signal: AbortSignal;
}

/** One interface per provider (Afterburn style). `probe` is one bounded attempt; no side effects except read-only mounts it undoes. */
export interface PointerSource {
  readonly name: SourceName;
  probe(ctx: SourceContext): Promise<SourceResult>;
}
