/**
 * One hook process: no shell, its own process group, a deadline (SIGTERM to the group, then
 * SIGKILL after a grace), its output logged line by line under its name with a cap. Used by
 * hooks.ts; kept apart because process handling is the fiddly part.
 *
 * Why a process group: a hook is usually a shell script, and killing only the shell would
 * leave its `sleep`/`curl` running, holding our pipes open; `kill(-pgid)` reaches them all.
 * Why we stop waiting for the pipes shortly after the hook exits: a hook may legitimately
 * start a background service that inherits stdout; its exit code is the hook's verdict.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log';

export interface HookResult {
  /** The hook's name relative to the hooks dir, e.g. `started.d/10-warm-cache`. */
  hook: string;
  ok: boolean;
  /** Exit code; null when killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  /** Why it could not run at all (e.g. ENOEXEC: no #! line), or was cancelled. */
  error?: string;
}

export interface HookProcessOptions {
  /** Host path of the executable. */
  file: string;
  /** Name for logs and the result. */
  hook: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** After SIGTERM at the deadline, how long before SIGKILL. */
  graceMs: number;
  log: Logger;
  /** Cap on logged output lines (stdout + stderr); the rest is counted, not logged. */
  maxLines: number;
  maxLineChars: number;
  /** Applied to every output line before it is logged (secret values → [REDACTED]). */
  scrub: (line: string) => string;
  signal?: AbortSignal;
}

/** How long output may keep arriving after the hook exited before we stop reading. */
const PIPE_DRAIN_MS = 300;

/** Splits a byte stream into lines and logs them, up to the shared cap. */
class OutputLines {
  private partial = '';
  constructor(
    private readonly stream: 'stdout' | 'stderr',
    private readonly budget: { left: number; dropped: number; warned: boolean },
    private readonly opts: HookProcessOptions,
  ) {}

  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    // A line with no newline for a long time is emitted in pieces rather than held forever.
    while (this.partial.length > this.opts.maxLineChars) {
      this.emit(this.partial.slice(0, this.opts.maxLineChars));
      this.partial = this.partial.slice(this.opts.maxLineChars);
    }
    for (const line of parts) this.emit(line);
  }

  flush(): void {
    if (this.partial !== '') this.emit(this.partial);
    this.partial = '';
  }

  private emit(raw: string): void {
    const b = this.budget;
    if (b.left <= 0) {
      b.dropped++;
      if (!b.warned) {
        b.warned = true;
        this.opts.log.warn({ hook: this.opts.hook }, `hook output exceeds ${this.opts.maxLines} lines; the rest is not logged`);
      }
      return;
    }
    b.left--;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const shown = line.length > this.opts.maxLineChars ? `${line.slice(0, this.opts.maxLineChars)}…` : line;
    const fields = { hook: this.opts.hook, stream: this.stream };
    const text = this.opts.scrub(shown);
    if (this.stream === 'stderr') this.opts.log.warn(fields, text);
    else this.opts.log.info(fields, text);
  }
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is gone already.
  }
}

export function runHookProcess(opts: HookProcessOptions): Promise<HookResult> {
  const started = Date.now();
  const base = { hook: opts.hook, timedOut: false };
  if (opts.signal?.aborted) {
    return Promise.resolve({ ...base, ok: false, code: null, signal: null, durationMs: 0, error: 'cancelled before it started' });
  }
  return new Promise((resolve) => {
    const child = spawn(opts.file, [], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group (see above); we still wait for it
    });
    const budget = { left: opts.maxLines, dropped: 0, warned: false };
    const out = new OutputLines('stdout', budget, opts);
    const err = new OutputLines('stderr', budget, opts);
    child.stdout.setEncoding('utf8').on('data', (s: string) => out.push(s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => err.push(s));

    let timedOut = false;
    let cancelled = false;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let settled = false;
    const timers: Array<ReturnType<typeof setTimeout>> = [];

    const terminate = () => {
      killGroup(child.pid, 'SIGTERM');
      timers.push(setTimeout(() => killGroup(child.pid, 'SIGKILL'), opts.graceMs));
    };
    timers.push(
      setTimeout(() => {
        timedOut = true;
        opts.log.warn({ hook: opts.hook, timeoutMs: opts.timeoutMs }, `hook timed out after ${opts.timeoutMs} ms; terminating it`);
        terminate();
      }, opts.timeoutMs),
    );
    const onAbort = () => {
      cancelled = true;
      terminate();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      out.flush();
      err.flush();
      if (budget.dropped > 0) opts.log.warn({ hook: opts.hook, droppedLines: budget.dropped }, 'hook output lines not logged (cap reached)');
      child.stdout.destroy();
      child.stderr.destroy();
      const code = exit?.code ?? null;
      const signal = exit?.signal ?? null;
      const why = error ?? (cancelled ? 'cancelled (agent stopping)' : undefined);
      resolve({
        ...base,
        ok: !timedOut && !why && code === 0,
        code,
        signal,
        timedOut,
        durationMs: Date.now() - started,
        ...(why ? { error: why } : {}),
      });
    };

    child.once('error', (e: NodeJS.ErrnoException) => finish(`cannot run: ${e.code ?? ''} ${e.message}`.trim()));
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      // Stragglers of a timed-out or cancelled hook (children that ignored SIGTERM) go now.
      if (timedOut || cancelled) killGroup(child.pid, 'SIGKILL');
      timers.push(setTimeout(() => finish(), PIPE_DRAIN_MS));
    });
    child.once('close', () => {
      if (exit) finish();
    });
  });
}
