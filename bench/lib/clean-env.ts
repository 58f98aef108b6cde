/**
 * The environment every bench gives the Node processes it measures: PATH only, as a systemd
 * unit starts the agent (plus what the unit itself sets, passed as `extra`). The caller's
 * environment is not for them: NODE_EXTRA_CA_CERTS (set on these machines, a 220 KB bundle)
 * alone moves `node -e 0` from ~46 ms to ~139 ms, and NODE_OPTIONS would change the flags.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...extra };
}
