/**
 * agent.json: shape, defaults, validation and environment overrides. Read once at start;
 * an invalid file is a ConfigError naming the key.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors';
import { LOG_LEVELS } from './log-levels';
import type { RootedPaths } from './paths';
import {
  absPath, arrayOf, bool, httpUrl, int, nullable, object, oneOf, optional, str, type Rule,
} from './config-schema';

export const DEFAULT_CONFIG_PATH = '/etc/cartridge-agent/agent.json';

export const SOURCE_NAMES = ['personality', 'configdrive', 'nocloud', 'ec2', 'openstack', 'cloudstack'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];
export const PAYLOAD_FORMATS = ['auto', 'launch-params', 'dotenv', 'json'] as const;

const label = str({ pattern: /^[A-Za-z0-9_-]{1,16}$/, hint: 'must be a filesystem label (letters, digits, - or _)' });
const envName = str({ pattern: /^[A-Z_][A-Z0-9_]*$/, hint: 'must be an environment variable name ([A-Z_][A-Z0-9_]*)' });

/** Timeouts and retries shared by the network metadata sources. */
const networkRules = {
  connectTimeoutMs: optional(int(50, 60_000), 1_000),
  requestTimeoutMs: optional(int(100, 300_000), 5_000),
  retries: optional(int(0, 20), 2),
};

const schema = object({
  sources: object({
    order: optional(arrayOf(oneOf(SOURCE_NAMES), { unique: true, nonEmpty: true }), ['personality', 'configdrive', 'nocloud'] as SourceName[]),
    /** How long discovery keeps polling when no source has anything yet (personality files arrive late). */
    waitSeconds: optional(int(0, 3600), 60),
    pollIntervalMs: optional(int(50, 60_000), 1_000),
    /** Probe block devices by label (blkid) and mount them read-only. Off for tests under --root. */
    scanDevices: optional(bool(), true),
    personality: object({
      paths: optional(arrayOf(absPath(), { nonEmpty: true }), ['/etc/cartridge-agent/payload-url']),
    }),
    configdrive: object({
      seedDirs: optional(arrayOf(absPath()), ['/var/lib/cloud/seed/config_drive', '/config-drive']),
      labels: optional(arrayOf(label), ['config-2', 'CONFIG-2']),
    }),
    nocloud: object({
      seedDirs: optional(arrayOf(absPath()), ['/var/lib/cloud/seed/nocloud', '/var/lib/cloud/seed/nocloud-net']),
      labels: optional(arrayOf(label), ['cidata', 'CIDATA']),
    }),
    ec2: object({
      baseUrl: optional(httpUrl(), 'http://169.254.169.254'),
      tokenTtlSeconds: optional(int(1, 21_600), 21_600),
      ...networkRules,
    }),
    openstack: object({
      baseUrl: optional(httpUrl(), 'http://169.254.169.254'),
      ...networkRules,
    }),
    cloudstack: object({
      /** null: find the virtual router (DNS name, then lease files, then default gateway; docs/payload.md). */
      baseUrl: optional(nullable(httpUrl()), null),
      /** Host name CloudStack's VR answers for itself; null skips the lookup. */
      dataServerName: optional(nullable(str({ pattern: /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/, hint: 'must be a DNS name' })), 'data-server'),
      leaseDirs: optional(
        arrayOf(absPath()),
        ['/run/systemd/netif/leases', '/run/NetworkManager/devices', '/var/lib/NetworkManager', '/var/lib/dhcp', '/var/lib/dhclient'],
      ),
      /** Kernel routing table read for the default-gateway fallback; null skips that fallback. */
      routeFile: optional(nullable(absPath()), '/proc/net/route'),
      ...networkRules,
    }),
  }),
  payload: object({
    format: optional(oneOf(PAYLOAD_FORMATS), 'auto'),
    /** Largest payload body accepted, in bytes (after decompression). */
    maxBytes: optional(int(1, 64 * 1024 * 1024), 1024 * 1024),
    /** Largest user data accepted from a source, in bytes (before and after decompression). */
    maxUserDataBytes: optional(int(1, 64 * 1024 * 1024), 1024 * 1024),
    maxKeys: optional(int(1, 1_000_000), 10_000),
    /** Accept a payload with no variables (an empty body, `{}`, only comments). Off: such a payload is refused and the last good one stays. */
    allowEmpty: optional(bool(), false),
    /** Names DESIGN.md refuses by default (PATH, LD_*, …) that this image explicitly allows. */
    allowNames: optional(arrayOf(envName, { unique: true }), []),
    /** Ed25519 public key (PEM file path, or base64 of the 32 raw bytes); when set every payload must be signed. */
    publicKey: optional(nullable(str({ nonEmpty: true })), null),
    fetch: object({
      /** CA bundle (PEM) trusted for https payload URLs, in addition to none: it replaces the system store. */
      caFile: optional(nullable(absPath()), null),
      connectTimeoutMs: optional(int(50, 60_000), 3_000),
      requestTimeoutMs: optional(int(100, 600_000), 10_000),
      /** Give up (and fall back to the cache) after this long in total. */
      deadlineSeconds: optional(int(1, 3_600), 60),
      backoffBaseMs: optional(int(1, 60_000), 250),
      backoffCapMs: optional(int(1, 600_000), 10_000),
    }),
  }),
  export: object({
    envFile: optional(nullable(absPath()), '/run/cartridge-agent/payload.env'),
    jsonFile: optional(nullable(absPath()), '/run/cartridge-agent/payload.json'),
    shFile: optional(nullable(absPath()), '/etc/profile.d/cartridge-agent.sh'),
    /** Stratos compatibility: one-line launch-params file (null: not written). */
    launchParamsFile: optional(nullable(absPath()), null),
    mode: optional(oneOf(['0600', '0640'] as const), '0640'),
    /** Group owning the export files (with mode 0640, who may read them). null: root's group. */
    group: optional(nullable(str({ pattern: /^[a-z_][a-z0-9_-]*\$?$/i, hint: 'must be a group name' })), null),
  }),
  firewall: object({
    /** enforce: apply; plan: render and log only; off: do nothing. Under --root the default is plan. */
    mode: optional(oneOf(['enforce', 'plan', 'off'] as const), 'enforce'),
    /** auto: native nft when iptables is nf_tables-based and nft is installed, else iptables-legacy/-nft. */
    backend: optional(oneOf(['auto', 'nft', 'iptables-nft', 'iptables-legacy'] as const), 'auto'),
    /** Rules in the allowlist syntax (docs/firewall.md) that are always allowed; SSH by default so nobody is locked out. */
    alwaysAllow: optional(arrayOf(str({ nonEmpty: true })), ['tcp/22']),
    /** More rules in the same syntax, e.g. "tcp/9100 from 10.0.0.0/8". */
    extraRules: optional(arrayOf(str({ nonEmpty: true })), []),
    allowIcmpEcho: optional(bool(), true),
    /**
     * Fail closed: what is in force (enforce mode) while no payload allowlist is — first boot,
     * a damaged record, a boot work that failed: firewall.alwaysAllow plus `allow`, the ICMP/ND
     * infrastructure and established traffic; everything else inbound dropped. docs/firewall.md.
     */
    baseline: object({
      enabled: optional(bool(), true),
      /** More rules (allowlist syntax) for the baseline only, e.g. "tcp/9100 from 10.0.0.0/8". */
      allow: optional(arrayOf(str({ nonEmpty: true })), []),
    }),
    guard: object({
      /** After applying, check the controller is still reachable (when it was before) or roll back. */
      enabled: optional(bool(), true),
      timeoutMs: optional(int(100, 60_000), 3_000),
    }),
    /** How often the daemon reads our rules back and re-applies them on drift. */
    driftCheckSeconds: optional(int(5, 3_600), 30),
  }),
  health: object({
    /** Broker URL(s) (mqtt:// or mqtts://); empty: from the payload (MB_URLS, or MB_IP + MB_PORT) as Stratos does. */
    brokerUrls: optional(arrayOf(str({ pattern: /^mqtts?:\/\/[^\s]+$/, hint: 'must be an mqtt:// or mqtts:// URL' })), []),
    /** Credentials; null: from the payload (MB_USERNAME / MB_PASSWORD) when present. */
    username: optional(nullable(str({ nonEmpty: true })), null),
    /** A file holding the password (never the password itself in agent.json). */
    passwordFile: optional(nullable(absPath()), null),
    caFile: optional(nullable(absPath()), null),
    certFile: optional(nullable(absPath()), null),
    keyFile: optional(nullable(absPath()), null),
    protocolVersion: optional(oneOf(['5', '3.1.1'] as const), '5'),
    /** Topic prefix; topics are <prefix>/<cluster>/<member>/{status,health,event}. */
    topicPrefix: optional(str({ pattern: /^[^#+\s]+[^/#+\s]$/, hint: 'must be a topic path without wildcards or a trailing /' }), 'cartridge/v1'),
    intervalSeconds: optional(int(1, 3_600), 15),
    keepaliveSeconds: optional(int(5, 3_600), 30),
    reconnectBaseMs: optional(int(100, 60_000), 1_000),
    reconnectCapMs: optional(int(1_000, 600_000), 60_000),
    /** Messages kept while the broker is unreachable (events are kept before health). */
    bufferMessages: optional(int(10, 100_000), 1_000),
    /** Also publish Stratos' instance/status/* events. */
    stratosEvents: optional(bool(), false),
  }),
  readiness: object({
    /** Wait for the payload's PORTS to accept TCP connections locally before `activated`. */
    enabled: optional(bool(), true),
    intervalMs: optional(int(50, 60_000), 1_000),
    timeoutSeconds: optional(int(1, 86_400), 300),
  }),
  hooks: object({
    /** Executables in <dir>/<event>.d/ run in name order for each lifecycle event. */
    dir: optional(absPath(), '/etc/cartridge-agent/hooks'),
    timeoutSeconds: optional(int(1, 3_600), 60),
  }),
  state: object({
    dir: optional(absPath(), '/var/lib/cartridge-agent'),
  }),
  log: object({
    level: optional(oneOf(LOG_LEVELS), 'info'),
  }),
});

export type AgentConfig = ReturnType<typeof schema>;
export type NetworkSourceConfig = AgentConfig['sources']['ec2'];

export function parseConfig(raw: unknown, file?: string): AgentConfig {
  try {
    const cfg = schema(raw, '');
    if (cfg.payload.fetch.backoffCapMs < cfg.payload.fetch.backoffBaseMs) {
      throw new ConfigError('payload.fetch.backoffCapMs', 'must be at least payload.fetch.backoffBaseMs');
    }
    return cfg;
  } catch (err) {
    if (err instanceof ConfigError && file && !err.file) throw new ConfigError(err.key, err.message.replace(/^config key "[^"]*": /, ''), file);
    throw err;
  }
}

/**
 * Environment overrides (documented in docs/config.md). They are applied to the raw JSON
 * before validation, so a bad override is reported under its config key.
 */
const ENV_OVERRIDES: ReadonlyArray<{ env: string; key: string[]; parse: (s: string) => unknown }> = [
  { env: 'CARTRIDGE_AGENT_LOG_LEVEL', key: ['log', 'level'], parse: (s) => s },
  { env: 'CARTRIDGE_AGENT_SOURCES', key: ['sources', 'order'], parse: (s) => s.split(',').map((x) => x.trim()).filter(Boolean) },
  { env: 'CARTRIDGE_AGENT_WAIT_SECONDS', key: ['sources', 'waitSeconds'], parse: (s) => (/^\d+$/.test(s) ? Number(s) : s) },
];

export function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  const out = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof out !== 'object' || Array.isArray(out)) return raw;
  for (const o of ENV_OVERRIDES) {
    const value = env[o.env];
    if (value === undefined || value === '') continue;
    let node = out;
    for (const part of o.key.slice(0, -1)) {
      if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    node[o.key[o.key.length - 1] as string] = o.parse(value);
  }
  return out;
}

/**
 * Load the config file (resolved under --root). A missing file at the default path means
 * "all defaults"; a missing file named explicitly with --config is an error.
 */
export function loadConfig(paths: RootedPaths, configPath: string | undefined, env: NodeJS.ProcessEnv): { config: AgentConfig; file: string | null } {
  const imagePath = configPath ?? DEFAULT_CONFIG_PATH;
  const hostPath = paths.resolve(imagePath);
  let raw: unknown = {};
  let file: string | null = hostPath;
  let text: string | null = null;
  try {
    text = readFileSync(hostPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && configPath === undefined) file = null;
    else throw new ConfigError('(file)', `cannot read config: ${(err as Error).message}`, hostPath);
  }
  if (text !== null) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('(file)', `not valid JSON: ${(err as Error).message}`, hostPath);
    }
  }
  return { config: parseConfig(applyRootDefaults(applyEnvOverrides(raw, env), paths), file ?? undefined), file };
}

/**
 * Under --root (tests, image preparation) the host's block devices are not the image's: do
 * not scan them unless the config asks for it explicitly.
 */
function applyRootDefaults(raw: unknown, paths: RootedPaths): unknown {
  if (paths.isHostRoot || !raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  // The host's devices and firewall are not the image's.
  let out = withDefault(raw as Record<string, unknown>, 'sources', 'scanDevices', false);
  out = withDefault(out, 'firewall', 'mode', 'plan');
  return out;
}

/** Set section.key to value unless the config gives it (a malformed section is left for validation). */
function withDefault(raw: Record<string, unknown>, section: string, key: string, value: unknown): Record<string, unknown> {
  const current = raw[section];
  if (current === undefined) return { ...raw, [section]: { [key]: value } };
  if (current && typeof current === 'object' && !Array.isArray(current) && !(key in current)) {
    return { ...raw, [section]: { ...current, [key]: value } };
  }
  return raw;
}

export type { Rule };
