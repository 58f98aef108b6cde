/** Polling for tests that wait on something outside the process (a broker, a container, a unit). */

/**
 * Poll `cond` until it holds or fail after `timeoutMs`, naming `what` and the last `detail()`.
 * `cond` may be async (e.g. it asks a process in another namespace); it is never run twice at once.
 */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  detail: () => string = () => '',
  intervalMs = 25,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${detail()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
