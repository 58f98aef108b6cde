/**
 * Lifecycle hooks, after Stratos' extension scripts: for each event, the executables in
 * `<hooks.dir>/<event>.d/` run one after another in name order (LC_ALL=C byte order, like
 * run-parts), without a shell, with the payload in their environment and a timeout. A hook
 * that fails does not stop the ones after it (run-parts' default); every failure is in the
 * returned results, which the daemon turns into `fault` events.
 *
 * Environment, from weakest to strongest:
 *   1. the agent's own environment (PATH, LANG, …) minus what is systemd's business with the
 *      agent (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*): a hook must not be able to ping our
 *      watchdog or report READY on our behalf;
 *   2. the payload: payload values win over the agent's environment, as they do for units that
 *      read payload.env. Names that change how programs run (PATH, LD_*, …) never get here
 *      unless the image's config allowed them (payload validation refuses them);
 *   3. CARTRIDGE_EVENT=<event> and the event's own CARTRIDGE_* extras (e.g. the fault reason):
 *      always ours.
 * Values arrive byte for byte (quotes, newlines, `$`): nothing is parsed by a shell.
 */
import { constants } from 'node:fs';
import { access, open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../config';
import type { Logger } from '../log';
import type { RootedPaths } from '../paths';
import { isSecretName, REDACTED } from '../redact';
import { runHookProcess, type HookResult } from './hook-process';

export type { HookResult } from './hook-process';

export const HOOK_EVENTS = ['started', 'activated', 'ready-to-shutdown', 'maintenance', 'fault'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

/** The agent's systemd plumbing and its unit's malloc tuning; not for hooks. */
const AGENT_ONLY_ENV = new Set(['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'MALLOC_MMAP_THRESHOLD_']);
const EXTRA_NAME = /^CARTRIDGE_[A-Z0-9_]+$/;
const DEFAULT_GRACE_MS = 5_000;
const DEFAULT_MAX_LINES = 500;
const DEFAULT_MAX_LINE_CHARS = 2_000;
/** Secret values shorter than this are not scrubbed from output (too likely to hit ordinary text). */
const MIN_SCRUB_CHARS = 4;

/** Why a directory entry is not a hook (editor backups, package manager leftovers), or null. */
export function ignoredHookNameReason(name: string): string | null {
  if (name.startsWith('.')) return 'hidden file';
  if (name.endsWith('~') || /^#.*#$/.test(name) || name.endsWith('.swp')) return 'editor backup';
  if (/\.dpkg-[a-z]+$/.test(name) || /\.(rpmnew|rpmsave|rpmorig)$/.test(name) || /\.ucf-[a-z]+$/.test(name)) return 'package manager leftover';
  return null;
}

/** Pure: the entries to run, in C-locale byte order, and the ones ignored with why. */
export function orderHookNames(names: readonly string[]): { run: string[]; ignored: Array<{ name: string; reason: string }> } {
  const run: string[] = [];
  const ignored: Array<{ name: string; reason: string }> = [];
  for (const name of names) {
    const reason = ignoredHookNameReason(name);
    if (reason) ignored.push({ name, reason });
    else run.push(name);
  }
  const bytes = (s: string) => Buffer.from(s, 'utf8');
  run.sort((a, b) => Buffer.compare(bytes(a), bytes(b)));
  return { run, ignored };
}

/** Pure: a hook's environment (precedence in the header comment). Values holding NUL are dropped (execve cannot pass them). */
export function buildHookEnv(
  base: NodeJS.ProcessEnv,
  payloadVars: ReadonlyMap<string, string>,
  event: HookEvent,
  extra: Readonly<Record<string, string>> = {},
): { env: Record<string, string>; dropped: string[] } {
  const env: Record<string, string> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(base)) {
    if (value !== undefined && !AGENT_ONLY_ENV.has(name)) env[name] = value;
  }
  for (const [name, value] of payloadVars) {
    if (value.includes('\0')) dropped.push(name);
    else env[name] = value;
  }
  for (const [name, value] of Object.entries(extra)) {
    if (!EXTRA_NAME.test(name)) throw new Error(`hook extra "${name}" must be named CARTRIDGE_*`);
    env[name] = value.replace(/\0/g, '');
  }
  env.CARTRIDGE_EVENT = event;
  return { env, dropped };
}

/** Pure: a function that replaces the values of secret-named payload variables in a line. */
export function secretScrubber(payloadVars: ReadonlyMap<string, string>): (line: string) => string {
  const secrets = [...payloadVars]
    .filter(([name, value]) => isSecretName(name) && value.length >= MIN_SCRUB_CHARS)
    .map(([, value]) => value)
    .sort((a, b) => b.length - a.length); // longest first, so a secret containing another is scrubbed whole
  if (secrets.length === 0) return (line) => line;
  return (line) => secrets.reduce((acc, secret) => acc.split(secret).join(REDACTED), line);
}

export interface ListedHook {
  /** Name relative to the hooks dir, e.g. `started.d/10-warm-cache`. */
  hook: string;
  /** Host path. */
  file: string;
  /** Set when the hook is refused without running (reported as a failed result). */
  refused?: string;
}

export interface HookRunnerDeps {
  /** In-image absolute path (config hooks.dir); resolved with `paths` (--root). */
  dir: string;
  paths: RootedPaths;
  timeoutMs: number;
  log: Logger;
  graceMs?: number;
  /** The agent's environment the hooks inherit (default process.env). */
  baseEnv?: NodeJS.ProcessEnv;
  maxOutputLines?: number;
  maxLineChars?: number;
}

export interface HookRunOptions {
  /** CARTRIDGE_* variables for this event, e.g. { CARTRIDGE_FAULT_REASON: '…' }. */
  extra?: Readonly<Record<string, string>>;
  signal?: AbortSignal;
}

export class HookRunner {
  /** Host path of the hooks directory. */
  readonly dir: string;
  private readonly inFlight = new Set<AbortController>();

  constructor(private readonly deps: HookRunnerDeps) {
    this.dir = deps.paths.resolve(deps.dir);
  }

  static fromConfig(config: Pick<AgentConfig, 'hooks'>, paths: RootedPaths, log: Logger): HookRunner {
    return new HookRunner({ dir: config.hooks.dir, paths, timeoutMs: config.hooks.timeoutSeconds * 1000, log });
  }

  /** The hooks that would run for `event` (host paths, in order). A missing directory is no hooks. */
  async list(event: HookEvent): Promise<{ hooks: ListedHook[]; error?: string }> {
    const eventDir = path.join(this.dir, `${event}.d`);
    let names: string[];
    try {
      names = await readdir(eventDir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return { hooks: [] };
      return { hooks: [], error: `cannot read ${eventDir}: ${e.code ?? e.message}` };
    }
    const { run, ignored } = orderHookNames(names);
    for (const { name, reason } of ignored) this.deps.log.info({ hook: `${event}.d/${name}` }, `hook skipped: ${reason}`);
    const hooks: ListedHook[] = [];
    for (const name of run) {
      const file = path.join(eventDir, name);
      const hook = `${event}.d/${name}`;
      const reason = await notRunnableReason(file);
      if (reason) {
        this.deps.log.info({ hook }, `hook skipped: ${reason}`);
        continue;
      }
      const refused = await unknownFormatReason(file);
      hooks.push(refused ? { hook, file, refused } : { hook, file });
    }
    return { hooks };
  }

  /** Runs every hook for `event`, one at a time; resolves with one result per hook run. */
  async run(event: HookEvent, payloadVars: ReadonlyMap<string, string>, opts: HookRunOptions = {}): Promise<HookResult[]> {
    if (!HOOK_EVENTS.includes(event)) throw new Error(`unknown hook event "${event}" (expected one of ${HOOK_EVENTS.join(', ')})`);
    const { log } = this.deps;
    const listed = await this.list(event);
    if (listed.error) {
      log.error({ event }, `hooks not run: ${listed.error}`);
      return [{ hook: `${event}.d`, ok: false, code: null, signal: null, timedOut: false, durationMs: 0, error: listed.error }];
    }
    if (listed.hooks.length === 0) {
      log.debug({ event, dir: this.dir }, 'no hooks for this event');
      return [];
    }
    const { env, dropped } = buildHookEnv(this.deps.baseEnv ?? process.env, payloadVars, event, opts.extra);
    if (dropped.length > 0) log.warn({ event, names: dropped }, 'payload values holding NUL bytes are not passed to hooks');
    const scrub = secretScrubber(payloadVars);

    // stop() aborts this controller; the caller's signal does too.
    const controller = new AbortController();
    const onCallerAbort = () => controller.abort();
    opts.signal?.addEventListener('abort', onCallerAbort, { once: true });
    if (opts.signal?.aborted) controller.abort();
    this.inFlight.add(controller);
    const results: HookResult[] = [];
    try {
      for (const { hook, file, refused } of listed.hooks) {
        if (controller.signal.aborted) break;
        if (refused) {
          const result: HookResult = { hook, ok: false, code: null, signal: null, timedOut: false, durationMs: 0, error: refused };
          results.push(result);
          logResult(log, result);
          continue;
        }
        log.info({ hook, event }, 'running hook');
        const result = await runHookProcess({
          file,
          hook,
          cwd: path.dirname(file),
          env,
          timeoutMs: this.deps.timeoutMs,
          graceMs: this.deps.graceMs ?? DEFAULT_GRACE_MS,
          log,
          maxLines: this.deps.maxOutputLines ?? DEFAULT_MAX_LINES,
          maxLineChars: this.deps.maxLineChars ?? DEFAULT_MAX_LINE_CHARS,
          scrub,
          signal: controller.signal,
        });
        results.push(result);
        logResult(log, result);
      }
    } finally {
      this.inFlight.delete(controller);
      opts.signal?.removeEventListener('abort', onCallerAbort);
    }
    return results;
  }

  /** Terminates running hooks (SIGTERM, then SIGKILL after the grace) and skips the rest of their event. */
  stop(): void {
    for (const c of this.inFlight) c.abort();
  }
}

/**
 * An executable the kernel cannot run by itself (no `#!`, not ELF) would be handed to /bin/sh
 * by libc's execvp fallback: an implicit shell, and an interpreter the author never named.
 * Such a hook is refused (a failure, so the operator hears of it), not run.
 */
async function unknownFormatReason(file: string): Promise<string | null> {
  const head = Buffer.alloc(4);
  let n = 0;
  try {
    const fh = await open(file, 'r');
    try {
      n = (await fh.read(head, 0, 4, 0)).bytesRead;
    } finally {
      await fh.close();
    }
  } catch (err) {
    // Executable but unreadable (mode 0111): the kernel can still exec an ELF binary; let it try.
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return null;
    return `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  if (n >= 2 && head[0] === 0x23 && head[1] === 0x21) return null; // #!
  if (n === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return null; // ELF
  return 'refused: neither a #! script nor an ELF binary (add a #! line naming the interpreter)';
}

async function notRunnableReason(file: string): Promise<string | null> {
  try {
    const st = await stat(file); // follows symlinks: a link to an executable is a hook
    if (!st.isFile()) return st.isDirectory() ? 'a directory' : 'not a regular file';
    await access(file, constants.X_OK);
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES') return 'not executable';
    if (e.code === 'ENOENT') return 'dangling symlink';
    return `cannot stat: ${e.code ?? e.message}`;
  }
}

function logResult(log: Logger, r: HookResult): void {
  const fields = { hook: r.hook, code: r.code, signal: r.signal, timedOut: r.timedOut, durationMs: r.durationMs };
  if (r.ok) log.info(fields, 'hook succeeded');
  else if (r.timedOut) log.error(fields, 'hook failed: timed out');
  else if (r.error) log.error({ ...fields, error: r.error }, `hook failed: ${r.error}`);
  else log.error(fields, r.signal ? `hook failed: killed by ${r.signal}` : `hook failed: exit code ${r.code}`);
}
