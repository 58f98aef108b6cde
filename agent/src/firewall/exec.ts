/**
 * The one door through which the firewall code runs nft / iptables. Injected everywhere, so
 * tests can run the same code inside a network namespace (`ip netns exec NS …`) or fake it.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { FirewallError } from '../errors';

export interface CommandResult {
  /** Exit code; TIMEOUT_EXIT when the command was killed after timeoutMs. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin (e.g. a ruleset for `nft -f -`). */
  input?: string;
  timeoutMs?: number;
}

/** Never rejects for a non-zero exit: the caller decides what an exit code means. */
export type CommandRunner = (cmd: string, args: string[], opts?: RunOptions) => Promise<CommandResult>;

export const TIMEOUT_EXIT = 124; // what coreutils' timeout(1) reports
const DEFAULT_TIMEOUT_MS = 30_000;

/** A missing binary is not a verdict of the tool: it is reported as such, never as "exit 127". */
export class CommandNotFoundError extends FirewallError {
  constructor(readonly command: string) {
    super(`${command}: command not found (is it installed and on PATH?)`, 'exec', null);
  }
}

/**
 * execFile semantics (no shell, argv passed as is) with stdin support. The environment is the
 * agent's, with LC_ALL=C so the tools' messages (which we show and sometimes match) are stable.
 */
export const runCommand: CommandRunner = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // EPIPE when the tool exits without reading all of stdin: its exit code tells the story.
    child.stdin.on('error', () => undefined);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') reject(new CommandNotFoundError(cmd));
      else reject(new FirewallError(`cannot run ${cmd}: ${e.message}`, 'exec', null));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({
        code: timedOut ? TIMEOUT_EXIT : (code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)), // shell convention for a signal
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}${cmd} timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms and was killed` : stderr,
      });
    });
    child.stdin.end(opts.input ?? '');
  });

/**
 * Run every command inside a network namespace (tests, bench). `ip netns exec` reports a
 * missing binary as exit 255 + "exec of … failed"; that is mapped to CommandNotFoundError so
 * callers see the same thing as with runCommand.
 */
export function netnsRunner(namespace: string, base: CommandRunner = runCommand): CommandRunner {
  return async (cmd, args, opts) => {
    const r = await base('ip', ['netns', 'exec', namespace, cmd, ...args], opts);
    if (r.code === 255 && /exec of "[^"]*" failed: No such file or directory/.test(r.stderr)) throw new CommandNotFoundError(cmd);
    return r;
  };
}

/** Does `cmd` exist (as the runner sees it)? Any exit code counts as present. */
export async function commandExists(runner: CommandRunner, cmd: string, args: string[]): Promise<CommandResult | null> {
  try {
    return await runner(cmd, args, { timeoutMs: 10_000 });
  } catch (err) {
    if (err instanceof CommandNotFoundError) return null;
    throw err;
  }
}
