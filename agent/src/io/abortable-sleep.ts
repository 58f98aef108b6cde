/**
 * A wait that a stop cuts short: the retry backoffs and the discovery poll use it, so that
 * shutting the agent down does not sit out a pending wait.
 *
 * Resolves true once `ms` have passed, false as soon as `signal` aborts (at once when it
 * already has). It never rejects: each caller turns `false` into its own "stopped" error.
 * Either way the timer and the abort listener are removed, so nothing keeps the process alive
 * and a long-lived signal does not collect listeners.
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
