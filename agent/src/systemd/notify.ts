/**
 * sd_notify, the one place it lives. Node core cannot send AF_UNIX datagrams, so (DESIGN.md)
 * every notification is one run of the `systemd-notify` binary with `VAR=VALUE` arguments.
 *
 * Why VAR=VALUE and not `--ready`/`--stopping`: systemd 252 (Debian 12) has no `--stopping`,
 * and every version sends arbitrary assignments as they are (`WATCHDOG=1` has no flag at all).
 * Why no `--pid`: in 252 it also adds `MAINPID=`; without it, systemd-notify already sends
 * with its parent's (our) pid when privileged, and with its own pid otherwise. The second case
 * needs `NotifyAccess=all` in the unit; systemd ≥ 246 waits on a `BARRIER=1` so the message is
 * attributed to the unit even though the helper exits at once.
 *
 * Without NOTIFY_SOCKET (not under systemd) every call is a no-op. A failed notification is
 * logged, never thrown at the caller: health must not depend on systemd. The exception is
 * the start check (verify()): when systemd asked for a watchdog and notifying cannot work, the
 * agent must fail loudly instead of being killed by the watchdog later with no explanation.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { AgentError, ExitCode } from '../errors';
import type { Logger } from '../log';
import { redactUrl } from '../redact';
import { NotifyQueue } from './notify-queue';

export const NOTIFY_BINARY = 'systemd-notify';
/** systemd-notify waits up to 5 s on the barrier; a bit more before we call it hung. */
const NOTIFY_TIMEOUT_MS = 8_000;
/** STATUS= is shown by `systemctl status`; longer text only clutters it. */
const MAX_STATUS_CHARS = 200;
/** A STATUS= alone waits this long for a newer one or a message to ride along with (./notify-queue). */
const STATUS_SETTLE_MS = 250;

/** Notifying is required (WATCHDOG_USEC is set for us) but cannot work. */
export class NotifyError extends AgentError {
  constructor(message: string) {
    super(message, ExitCode.INTERNAL);
  }
}

export interface NotifyRunResult {
  /** Exit code; null when killed by a signal or never started. */
  code: number | null;
  stderr: string;
  /** The binary was not found on PATH (ENOENT). */
  notFound: boolean;
}

/** Runs `binary args…` without a shell in `env`. Never rejects. */
export type NotifyRunner = (binary: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) => Promise<NotifyRunResult>;

export const runNotifyBinary: NotifyRunner = (binary, args, env, timeoutMs) =>
  new Promise((resolve) => {
    // execFile looks the binary up on env.PATH (the env given, not process.env).
    execFile(binary, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (!err) return resolve({ code: 0, stderr, notFound: false });
      const e = err as NodeJS.ErrnoException & { code?: string | number | null };
      if (e.code === 'ENOENT') return resolve({ code: null, stderr: `${binary}: not found on PATH`, notFound: true });
      const code = typeof e.code === 'number' ? e.code : null;
      resolve({ code, stderr: stderr || e.message, notFound: false });
    });
  });

export interface NotifierDeps {
  /** The agent's environment (process.env): NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, PATH. */
  env: NodeJS.ProcessEnv;
  log: Logger;
  runner?: NotifyRunner;
  /** Our pid (WATCHDOG_PID is compared with it). */
  pid?: number;
  binary?: string;
}

export interface Notifier {
  /** NOTIFY_SOCKET is set: calls do something. */
  readonly enabled: boolean;
  /** The watchdog interval systemd asked for, in ms; null when there is none for us. */
  readonly watchdogMs: number | null;
  /**
   * The start check's part that runs nothing: throws NotifyError at once when the watchdog is
   * requested and the setup is visibly broken (NOTIFY_SOCKET unset or malformed, the binary
   * not on PATH). verify() then sends, beside the boot work.
   */
  check(): void;
  /**
   * Start check: sends `STATUS=<status>` and waits for it. Throws NotifyError when the
   * watchdog is requested and that fails; otherwise logs and resolves false on failure.
   */
  verify(status?: string): Promise<boolean>;
  ready(status?: string): Promise<boolean>;
  /** STATUS=, held briefly: a newer text replaces it, the next message takes it along (./notify-queue). */
  status(text: string): Promise<boolean>;
  /** WATCHDOG=1. While one is still queued a second is dropped (they carry no news). */
  watchdog(): Promise<boolean>;
  stopping(status?: string): Promise<boolean>;
  reloading(): Promise<boolean>;
  /** Sends a held STATUS= now; resolves when every queued notification has been sent (or failed). */
  drain(): Promise<void>;
}

/**
 * The watchdog interval from WATCHDOG_USEC, as sd_watchdog_enabled(3) reads it: null when
 * unset or meant for another process (WATCHDOG_PID); a NotifyError when malformed.
 */
export function watchdogUsecFromEnv(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || usec === '') return null;
  const watchdogPid = env.WATCHDOG_PID;
  if (watchdogPid !== undefined && watchdogPid !== '') {
    if (!/^\d+$/.test(watchdogPid)) throw new NotifyError(`WATCHDOG_PID="${watchdogPid}" is not a pid`);
    if (Number(watchdogPid) !== pid) return null;
  }
  if (!/^\d+$/.test(usec) || Number(usec) === 0) {
    throw new NotifyError(`WATCHDOG_USEC="${usec}" is not a positive number of microseconds`);
  }
  return Number(usec);
}

/** A STATUS= value on one line (a newline would start a new assignment), short, no URL tokens. */
export function statusLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = redactUrl(text).replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > MAX_STATUS_CHARS ? `${flat.slice(0, MAX_STATUS_CHARS - 1)}…` : flat;
}

/** Where `binary` would be found on `pathVar` (as execFile looks it up), or null. */
export function findOnPath(binary: string, pathVar: string | undefined): string | null {
  const candidates = binary.includes('/') ? [binary] : (pathVar ?? '').split(':').map((dir) => path.join(dir || '.', binary));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

export function createNotifier(deps: NotifierDeps): Notifier {
  const { env, log } = deps;
  const runner = deps.runner ?? runNotifyBinary;
  const binary = deps.binary ?? NOTIFY_BINARY;
  const socket = env.NOTIFY_SOCKET ?? '';
  const enabled = socket !== '';
  const watchdogUsec = watchdogUsecFromEnv(env, deps.pid ?? process.pid);
  const watchdogMs = watchdogUsec === null ? null : watchdogUsec / 1000;
  const required = watchdogMs !== null;

  /** One run; a failure is logged here, once, however many callers' messages it carried. */
  async function send(assignments: string[]): Promise<NotifyRunResult> {
    const what = assignments.map((a) => a.slice(0, a.indexOf('='))).join('+');
    let r: NotifyRunResult;
    try {
      r = await runner(binary, assignments, env, NOTIFY_TIMEOUT_MS);
    } catch (err) {
      r = { code: null, stderr: String((err as Error)?.message ?? err), notFound: false };
    }
    if (r.code !== 0) log.warn({ notify: what, socket, code: r.code, stderr: r.stderr.trim() }, `systemd notification ${what} failed`);
    return r;
  }
  // READY, WATCHDOG and STOPPING reach systemd in the order they were asked for (./notify-queue).
  const queue = new NotifyQueue<NotifyRunResult>({ send, settleMs: STATUS_SETTLE_MS });
  let watchdogQueued = false;

  const ok = (p: Promise<NotifyRunResult>): Promise<boolean> => p.then((r) => r.code === 0);
  const enqueue = (assignments: string[]): Promise<boolean> => (enabled ? ok(queue.message(assignments)) : Promise.resolve(false));
  const withStatus = (head: string[], status?: string) => (status === undefined ? head : [...head, `STATUS=${statusLine(status)}`]);

  const fail = (why: string): false => {
    const message = `systemd asked for a watchdog (WATCHDOG_USEC=${watchdogUsec}) but notifying cannot work: ${why}`;
    if (required) throw new NotifyError(message);
    log.error({ socket }, `systemd notifications cannot be sent (systemd will time out our start): ${why}`);
    return false;
  };
  /** What is visibly wrong without running anything, or null. */
  const setupProblem = (): string | null => {
    if (!enabled) return required ? 'NOTIFY_SOCKET is not set' : null;
    if (!socket.startsWith('/') && !socket.startsWith('@')) return `NOTIFY_SOCKET="${socket}" is neither an absolute path nor an abstract (@) address`;
    if (deps.runner === undefined && findOnPath(binary, env.PATH) === null) return `the ${binary} binary is not on PATH (${env.PATH ?? 'PATH unset'}); install systemd or fix PATH`;
    return null;
  };

  return {
    enabled,
    watchdogMs,

    check() {
      const problem = setupProblem();
      if (problem && required) fail(problem);
    },

    async verify(status = 'starting') {
      const problem = setupProblem();
      if (problem) return fail(problem);
      if (!enabled) return false;
      // Through the queue like every other message, so nothing sent meanwhile overtakes it.
      const r = await queue.message([`STATUS=${statusLine(status)}`]);
      if (r.notFound) return fail(`the ${binary} binary is not on PATH (${env.PATH ?? 'PATH unset'}); install systemd or fix PATH`);
      if (r.code !== 0) return fail(`${binary} failed (exit ${r.code ?? 'signal/timeout'}) sending to ${socket}: ${r.stderr.trim() || 'no message'}`);
      log.debug({ socket, watchdogMs }, 'systemd notifications work');
      return true;
    },

    ready: (status) => enqueue(withStatus(['READY=1'], status)),
    status: (text) => (enabled ? ok(queue.status(`STATUS=${statusLine(text)}`)) : Promise.resolve(false)),
    stopping: (status) => enqueue(withStatus(['STOPPING=1'], status)),
    reloading: () =>
      // MONOTONIC_USEC lets Type=notify-reload (v253+) match the reload; older systemd ignores it.
      enqueue(['RELOADING=1', `MONOTONIC_USEC=${(process.hrtime.bigint() / 1000n).toString()}`]),

    watchdog() {
      if (!enabled || watchdogQueued) return Promise.resolve(false);
      watchdogQueued = true;
      const p = enqueue(['WATCHDOG=1']);
      void p.finally(() => {
        watchdogQueued = false;
      });
      return p;
    },

    drain: () => queue.drain(),
  };
}
