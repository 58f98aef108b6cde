/**
 * `run`'s boot work, retried in the process while the failure may pass (controller unreachable
 * with nothing cached, a metadata service not answering yet, a full disk, a firewall tool
 * failing, another run holding the lock),
 * with growing pauses, so the unit never restarts in a tight loop. A terminal failure (bad
 * config, no pointer, a refused payload, a refusal by the controller) is not retried: it is
 * said in STATUS= and the journal, and `run` exits with its code, which the unit's
 * RestartPreventExitStatus= keeps systemd from restarting.
 */
import type { BootResult } from '../boot';
import { AgentError, ExitCode, FetchError, NoPointerError } from '../errors';
import { abortableSleep } from '../io/abortable-sleep';
import type { Logger } from '../log';
import { backoffDelayMs } from '../payload/backoff';
import { NETWORK_SOURCES } from '../sources';

export interface BootRetryDeps {
  boot: () => Promise<BootResult>;
  log: Logger;
  signal: AbortSignal;
  /** Say what is going on (STATUS= and the status file). */
  say: (text: string) => void;
  /** Wait until what was said has reached systemd. */
  drain: () => Promise<void>;
}

/** The boot result; null when stopped while waiting; throws the terminal error. */
export async function bootUntilDone(deps: BootRetryDeps): Promise<BootResult | null> {
  const { log, signal } = deps;
  for (let attempt = 0; ; attempt++) {
    try {
      return await deps.boot();
    } catch (err) {
      if (signal.aborted) return null;
      if (!(err instanceof AgentError) || isTerminal(err)) {
        const code = err instanceof AgentError ? err.exitCode : ExitCode.INTERNAL;
        // The controller's refusal word first: STATUS= is cut at 200 characters.
        const words = err instanceof FetchError ? refusalWords(err) : [];
        const why = words.length > 0 ? `the controller refused (${words.join(', ')}): ` : '';
        const text = `stopped, not restarted (exit ${code}): ${why}${(err as Error).message}; fix the cause, then: systemctl restart cartridge-agent`;
        log.error({ exitCode: code }, text);
        deps.say(text);
        await deps.drain();
        throw err;
      }
      // Jittered (a fleet failing together does not retry in lockstep), never under a second.
      const waitMs = Math.max(1_000, backoffDelayMs(attempt, RETRY_BASE_MS, RETRY_CAP_MS));
      const text = `boot work failed (exit ${err.exitCode}), retrying in ${Math.round(waitMs / 1000)} s: ${err.message}`;
      log.warn({ exitCode: err.exitCode, attempt: attempt + 1 }, text);
      deps.say(text);
      if (!(await abortableSleep(waitMs, signal))) return null;
    }
  }
}

/** Pauses between boot attempts of `run`: up to 2 s, doubling to up to 60 s. */
const RETRY_BASE_MS = 2_000;
const RETRY_CAP_MS = 60_000;

/**
 * The exit codes `run` stops with for good (the unit's RestartPreventExitStatus= lists them):
 * failures the same attempt would meet again, which only a changed config, pointer, payload or
 * controller answer can cure. `run` exits 5 only for a terminal refusal: an unreachable
 * controller is retried in the process.
 */
export const RUN_TERMINAL_EXIT_CODES: readonly ExitCode[] = [ExitCode.CONFIG, ExitCode.NO_POINTER, ExitCode.FETCH, ExitCode.PAYLOAD_REJECTED];

/** The controller's X-Cartridge-Refusal words (revoked, expired …) carried by a terminal fetch error. */
function refusalWords(err: FetchError): string[] {
  const refusals = err.context.refusals;
  if (!Array.isArray(refusals)) return [];
  return [...new Set(refusals.map((r) => (r as { refusal?: unknown }).refusal).filter((w): w is string => typeof w === 'string'))];
}

function isTerminal(err: AgentError): boolean {
  if (err instanceof FetchError) return err.terminal;
  // A metadata service that did not answer may be reached once the network is up.
  if (err instanceof NoPointerError) return !err.reasons.some((r) => NETWORK_SOURCES.has(r.source));
  return RUN_TERMINAL_EXIT_CODES.includes(err.exitCode);
}

