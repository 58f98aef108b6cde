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
import { AgentError, ExitCode } from '../errors';
import type { Logger } from '../log';
import { redactUrl } from '../redact';

export const NOTIFY_BINARY = 'systemd-notify';
/** systemd-notify waits up to 5 s on the barrier; a bit more before we call it hung. */
const NOTIFY_TIMEOUT_MS = 8_000;
/** STATUS= is shown by `systemctl status`; longer text only clutters it. */
const MAX_STATUS_CHARS = 200;

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
   * Start check: sends `STATUS=<status>` and waits for it. Throws NotifyError when the
   * watchdog is requested and that fails; otherwise logs and resolves false on failure.
   */
  verify(status?: string): Promise<boolean>;
  ready(status?: string): Promise<boolean>;
  status(text: string): Promise<boolean>;
  /** WATCHDOG=1. While one is still queued a second is dropped (they carry no news). */
  watchdog(): Promise<boolean>;
  stopping(status?: string): Promise<boolean>;
  reloading(): Promise<boolean>;
  /** Resolves when every queued notification has been sent (or failed). */
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

export function createNotifier(deps: NotifierDeps): Notifier {
  const { env, log } = deps;
  const runner = deps.runner ?? runNotifyBinary;
  const binary = deps.binary ?? NOTIFY_BINARY;
  const socket = env.NOTIFY_SOCKET ?? '';
  const enabled = socket !== '';
  const watchdogUsec = watchdogUsecFromEnv(env, deps.pid ?? process.pid);
  const watchdogMs = watchdogUsec === null ? null : watchdogUsec / 1000;

  // One chain: READY, WATCHDOG and STOPPING reach systemd in the order they were asked for.
  let queue: Promise<unknown> = Promise.resolve();
  let watchdogQueued = false;

  async function send(assignments: string[]): Promise<NotifyRunResult> {
    return runner(binary, assignments, env, NOTIFY_TIMEOUT_MS);
  }

  function enqueue(assignments: string[], what: string): Promise<boolean> {
    if (!enabled) return Promise.resolve(false);
    const job = queue.then(async () => {
      const r = await send(assignments);
      if (r.code === 0) return true;
      log.warn({ notify: what, socket, code: r.code, stderr: r.stderr.trim() }, `systemd notification ${what} failed`);
      return false;
    });
    queue = job.catch(() => undefined);
    return job.catch((err: unknown) => {
      log.warn({ notify: what, err }, `systemd notification ${what} failed`);
      return false;
    });
  }

  const withStatus = (head: string[], status?: string) => (status === undefined ? head : [...head, `STATUS=${statusLine(status)}`]);

  return {
    enabled,
    watchdogMs,

    async verify(status = 'starting') {
      const required = watchdogMs !== null;
      const fail = (why: string) => {
        const message = `systemd asked for a watchdog (WATCHDOG_USEC=${watchdogUsec}) but notifying cannot work: ${why}`;
        if (required) throw new NotifyError(message);
        log.error({ socket }, `systemd notifications cannot be sent (systemd will time out our start): ${why}`);
        return false;
      };
      if (!enabled) {
        return required ? fail('NOTIFY_SOCKET is not set') : false;
      }
      if (!socket.startsWith('/') && !socket.startsWith('@')) {
        return fail(`NOTIFY_SOCKET="${socket}" is neither an absolute path nor an abstract (@) address`);
      }
      // Through the queue like every other message, so nothing sent meanwhile overtakes it.
      const job = queue.then(() => send([`STATUS=${statusLine(status)}`]));
      queue = job.catch(() => undefined);
      const r = await job;
      if (r.notFound) return fail(`the ${binary} binary is not on PATH (${env.PATH ?? 'PATH unset'}); install systemd or fix PATH`);
      if (r.code !== 0) return fail(`${binary} failed (exit ${r.code ?? 'signal/timeout'}) sending to ${socket}: ${r.stderr.trim() || 'no message'}`);
      log.debug({ socket, watchdogMs }, 'systemd notifications work');
      return true;
    },

    ready: (status) => enqueue(withStatus(['READY=1'], status), 'READY=1'),
    status: (text) => enqueue([`STATUS=${statusLine(text)}`], 'STATUS'),
    stopping: (status) => enqueue(withStatus(['STOPPING=1'], status), 'STOPPING=1'),
    reloading: () =>
      // MONOTONIC_USEC lets Type=notify-reload (v253+) match the reload; older systemd ignores it.
      enqueue(['RELOADING=1', `MONOTONIC_USEC=${(process.hrtime.bigint() / 1000n).toString()}`], 'RELOADING=1'),

    watchdog() {
      if (!enabled || watchdogQueued) return Promise.resolve(false);
      watchdogQueued = true;
      const p = enqueue(['WATCHDOG=1'], 'WATCHDOG=1');
      void p.finally(() => {
        watchdogQueued = false;
      });
      return p;
    },

    async drain() {
      await queue;
    },
  };
}
