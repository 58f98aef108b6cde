/**
 * The package version, the same for the agent and the controller (one package): set by the
 * build (packaging/build.mjs defines __AGENT_VERSION__ in both bundles); "dev" when run from
 * source. Agents report it in their health (agentVersion), the controller in build_info.
 */
declare const __AGENT_VERSION__: string | undefined;
export const VERSION = typeof __AGENT_VERSION__ === 'string' ? __AGENT_VERSION__ : 'dev';
