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

const label = str({ pattern: /^[A-Za-z0-9_-]{1,16}$/, hint: 'must be a filesystem label (letters, digits, - or _)', label: 'filesystem label' });
const envName = str({ pattern: /^[A-Z_][A-Z0-9_]*$/, hint: 'must be an environment variable name ([A-Z_][A-Z0-9_]*)', label: 'variable name' });
const allowRule = str({ nonEmpty: true, label: 'allowlist rule' });

/** Timeouts and retries shared by the network metadata sources. */
const networkRules = {
  connectTimeoutMs: optional(int(50, 60_000), 1_000, 'TCP connect timeout'),
  requestTimeoutMs: optional(int(100, 300_000), 5_000, 'whole-request timeout'),
  retries: optional(int(0, 20), 2, 'retries on connection errors, 5xx, 408, 429'),
};

/**
 * The one description of agent.json: the validator, the JSON Schema, docs/config.md's key
 * tables and agent.json(5) all come from it (`npm run docs`). Descriptions are markdown.
 */
export const CONFIG_RULE = object({
  sources: object({
    order: optional(arrayOf(oneOf(SOURCE_NAMES), { unique: true, nonEmpty: true }), ['personality', 'configdrive', 'nocloud'] as SourceName[],
      'sources tried in this order; the first that yields wins. The network sources (`ec2`, `openstack`, `cloudstack`) are opt-in: probing a link-local metadata address on a cloud without one costs a timeout'),
    waitSeconds: optional(int(0, 3600), 60, 'if no source yields, keep polling this long (personality files may be injected after boot)'),
    pollIntervalMs: optional(int(50, 60_000), 1_000, 'pause between polling rounds'),
    scanDevices: optional(bool(), true,
      'look for iso9660/vfat filesystems labelled `config-2` / `cidata` with `blkid` and mount them read-only (`ro,nosuid,nodev,noexec`, unmounted right after reading). The packaged config (bake.sh, .deb) sets it `false`: the sandboxed unit cannot mount, `cartridge-agent-seed.service` mounts the media instead ([packaging.md](packaging.md#seed-devices))'),
    personality: object({
      paths: optional(arrayOf(absPath(), { nonEmpty: true }), ['/etc/cartridge-agent/payload-url'], 'personality file path(s) (the path the controller injects)'),
    }),
    configdrive: object({
      seedDirs: optional(arrayOf(absPath()), ['/var/lib/cloud/seed/config_drive', '/config-drive'], 'config-drive trees already on disk'),
      labels: optional(arrayOf(label), ['config-2', 'CONFIG-2'], 'filesystem labels of a config drive'),
    }),
    nocloud: object({
      seedDirs: optional(arrayOf(absPath()), ['/var/lib/cloud/seed/nocloud', '/var/lib/cloud/seed/nocloud-net'], 'NoCloud seed dirs'),
      labels: optional(arrayOf(label), ['cidata', 'CIDATA'], 'filesystem labels of a NoCloud seed'),
    }),
    ec2: object({
      baseUrl: optional(httpUrl(), 'http://169.254.169.254', 'IMDS endpoint (IMDSv2 only)'),
      tokenTtlSeconds: optional(int(1, 21_600), 21_600, 'IMDSv2 token TTL'),
      ...networkRules,
    }),
    openstack: object({
      baseUrl: optional(httpUrl(), 'http://169.254.169.254', 'OpenStack metadata service'),
      ...networkRules,
    }),
    cloudstack: object({
      baseUrl: optional(nullable(httpUrl()), null, 'virtual router URL; `null`: search for it (DNS name, then lease files, then default gateway; [payload.md](payload.md) §1)'),
      dataServerName: optional(nullable(str({ pattern: /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/, hint: 'must be a DNS name', label: 'DNS name' })), 'data-server',
        'host name the virtual router answers for itself; `null` skips the lookup'),
      leaseDirs: optional(
        arrayOf(absPath()),
        ['/run/systemd/netif/leases', '/run/NetworkManager/devices', '/var/lib/NetworkManager', '/var/lib/dhcp', '/var/lib/dhclient'],
        'where to find the DHCP server address (networkd, NetworkManager device state and leases, dhclient)',
      ),
      routeFile: optional(nullable(absPath()), '/proc/net/route', 'kernel routing table read for the default-gateway fallback; `null` skips that fallback'),
      ...networkRules,
    }),
  }),
  payload: object({
    format: optional(oneOf(PAYLOAD_FORMATS), 'auto', 'payload format; `auto` recognises each ([payload.md](payload.md))'),
    maxBytes: optional(int(1, 64 * 1024 * 1024), 1024 * 1024, 'largest payload body accepted, in bytes (after decompression); larger is refused while downloading'),
    maxUserDataBytes: optional(int(1, 64 * 1024 * 1024), 1024 * 1024,
      'largest user data, in bytes, before and after each decoding step, and the most all its gzip layers and MIME parts may inflate to **in total** (gzip bombs, fan-outs)'),
    maxKeys: optional(int(1, 1_000_000), 10_000, 'most variables in one payload'),
    allowEmpty: optional(bool(), false, 'accept a payload with zero variables (empty body, `{}`, only comments); by default it is refused (exit 6) and the last good payload stays'),
    allowNames: optional(arrayOf(envName, { unique: true }), [],
      'names refused by default because they change how programs run or systemd sets them (`PATH`, `LD_PRELOAD`, `NOTIFY_SOCKET`, …) that this image explicitly allows; names special to a shell still never go into the profile.d file ([payload.md](payload.md) §6)'),
    publicKey: optional(nullable(str({ nonEmpty: true })), null,
      'Ed25519 public key: a PEM file path, or base64 of the 32 raw bytes. When set, every payload must carry a valid signature and inline user-data payloads are refused'),
    fetch: object({
      caFile: optional(nullable(absPath()), null, 'PEM CA bundle for https payload URLs (replaces the system store)'),
      connectTimeoutMs: optional(int(50, 60_000), 3_000, 'TCP/TLS connect timeout per attempt'),
      requestTimeoutMs: optional(int(100, 600_000), 10_000, 'whole-request timeout per attempt'),
      deadlineSeconds: optional(int(1, 3_600), 60, 'total time to keep retrying before falling back to the cache'),
      backoffBaseMs: optional(int(1, 60_000), 250, 'full-jitter exponential backoff between attempts: first delay'),
      backoffCapMs: optional(int(1, 600_000), 10_000, 'longest delay between attempts; at least `backoffBaseMs`'),
    }),
  }),
  export: object({
    envFile: optional(nullable(absPath()), '/run/cartridge-agent/payload.env', 'systemd `EnvironmentFile=` syntax; `null` disables'),
    jsonFile: optional(nullable(absPath()), '/run/cartridge-agent/payload.json', 'JSON object; `null` disables (then `cartridge-agent env` cannot work)'),
    shFile: optional(nullable(absPath()), '/etc/profile.d/cartridge-agent.sh', 'POSIX sh, sourced by login shells; `null` disables'),
    launchParamsFile: optional(nullable(absPath()), null, 'Stratos one-line `launch-params` file for compatibility; `null`: not written'),
    mode: optional(oneOf(['0600', '0640'] as const), '0640', 'file mode of the exports'),
    group: optional(nullable(str({ pattern: /^[A-Za-z_][A-Za-z0-9_-]*\$?$/, hint: 'must be a group name', label: 'group name' })), null,
      'group owning the files (who may read them with `0640`); `null`: root\'s group'),
  }),
  firewall: object({
    mode: optional(oneOf(['enforce', 'plan', 'off'] as const), 'enforce', '`enforce`: apply; `plan`: render and log only; `off`: do nothing'),
    backend: optional(oneOf(['auto', 'nft', 'iptables-nft', 'iptables-legacy'] as const), 'auto',
      '`auto`: native nft when iptables is nf_tables-based (`iptables -V`) and nft is installed, else iptables-legacy/-nft'),
    alwaysAllow: optional(arrayOf(allowRule), ['tcp/22'], 'rules ([firewall.md](firewall.md) syntax) always allowed, in the payload allowlist and in the baseline; SSH by default so nobody is locked out'),
    extraRules: optional(arrayOf(allowRule), [], 'more rules for the payload allowlist, e.g. `"tcp/9100 from 10.0.0.0/8"`'),
    allowIcmpEcho: optional(bool(), true, 'answer ICMP/ICMPv6 echo requests'),
    baseline: object({
      enabled: optional(bool(), true,
        'fail closed: with `enforce`, the baseline (`alwaysAllow`, `baseline.allow`, ICMP/ND infrastructure, established traffic) is in force while no payload allowlist is (first boot, damaged record, failed boot work)'),
      allow: optional(arrayOf(allowRule), [], 'rules only the baseline allows (besides `alwaysAllow`)'),
    }),
    guard: object({
      enabled: optional(bool(), true, 'lock-out guard: after applying, check the controller is still reachable (when it was before) or roll back'),
      timeoutMs: optional(int(100, 60_000), 3_000, 'how long the guard waits for the controller'),
    }),
    driftCheckSeconds: optional(int(5, 3_600), 30, 'how often the daemon reads our rules back and re-applies them on drift'),
  }),
  health: object({
    brokerUrls: optional(arrayOf(str({ pattern: /^mqtts?:\/\/[^\s]+$/, hint: 'must be an mqtt:// or mqtts:// URL', label: 'mqtt(s) URL' })), [],
      'broker URLs; empty: from the payload (`MB_URLS`, or `MB_IP` + `MB_PORT`) as Stratos does'),
    username: optional(nullable(str({ nonEmpty: true })), null, 'broker user name; `null`: the payload\'s `MB_USERNAME` when present'),
    passwordFile: optional(nullable(absPath()), null, 'a file holding the broker password (never the password itself in agent.json); `null`: the payload\'s `MB_PASSWORD`'),
    caFile: optional(nullable(absPath()), null, 'CA bundle (PEM) trusted for `mqtts://`'),
    certFile: optional(nullable(absPath()), null, 'client certificate (PEM)'),
    keyFile: optional(nullable(absPath()), null, 'client certificate key (PEM)'),
    protocolVersion: optional(oneOf(['5', '3.1.1'] as const), '5', 'MQTT protocol version'),
    topicPrefix: optional(str({ pattern: /^[^#+\s]+[^/#+\s]$/, hint: 'must be a topic path without wildcards or a trailing /', label: 'topic path' }), 'cartridge/v1',
      'topics are `<prefix>/<cluster>/<member>/{status,health,event}`'),
    intervalSeconds: optional(int(1, 3_600), 15, 'health report interval (±10 % jitter)'),
    keepaliveSeconds: optional(int(5, 3_600), 30, 'MQTT keepalive (the broker sends the last will after ~1.5×)'),
    reconnectBaseMs: optional(int(100, 60_000), 1_000, 'full-jitter reconnect backoff: first delay'),
    reconnectCapMs: optional(int(1_000, 600_000), 60_000, 'longest reconnect delay'),
    bufferMessages: optional(int(10, 100_000), 1_000, 'messages kept while the broker is unreachable (events are kept before health)'),
    stratosEvents: optional(bool(), false, 'also publish Stratos\' `instance/status/*` events'),
  }),
  readiness: object({
    enabled: optional(bool(), true, 'wait for the payload\'s `PORTS` to accept TCP connections locally before `activated`'),
    intervalMs: optional(int(50, 60_000), 1_000, 'pause between readiness probes'),
    timeoutSeconds: optional(int(1, 86_400), 300, 'give up waiting after this long'),
  }),
  hooks: object({
    dir: optional(absPath(), '/etc/cartridge-agent/hooks', 'executables in `<dir>/<event>.d/` run in name order for each lifecycle event ([daemon.md](daemon.md))'),
    timeoutSeconds: optional(int(1, 3_600), 60, 'longest a hook may run'),
  }),
  state: object({
    dir: optional(absPath(), '/var/lib/cartridge-agent', 'the agent\'s state; the payload cache lives in `cache/` here (0600 files)'),
  }),
  log: object({
    level: optional(oneOf(LOG_LEVELS), 'info', 'log level (`--log-level` overrides it)'),
  }),
  $schema: optional(nullable(str({ nonEmpty: true })), null,
    'the JSON Schema editors check this file against, e.g. `"file:///usr/share/cartridge-agent/agent.schema.json"`; the agent ignores it'),
});

export type AgentConfig = ReturnType<typeof CONFIG_RULE>;
export type NetworkSourceConfig = AgentConfig['sources']['ec2'];

export function parseConfig(raw: unknown, file?: string): AgentConfig {
  try {
    const cfg = CONFIG_RULE(raw, '');
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
 * Environment overrides (docs/config.md's table is generated from this). They are applied to
 * the raw JSON before validation, so a bad override is reported under its config key.
 */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; key: string[]; parse: (s: string) => unknown; syntax: string }> = [
  { env: 'CARTRIDGE_AGENT_LOG_LEVEL', key: ['log', 'level'], parse: (s) => s, syntax: 'a log level' },
  { env: 'CARTRIDGE_AGENT_SOURCES', key: ['sources', 'order'], parse: (s) => s.split(',').map((x) => x.trim()).filter(Boolean), syntax: 'comma-separated source names' },
  { env: 'CARTRIDGE_AGENT_WAIT_SECONDS', key: ['sources', 'waitSeconds'], parse: (s) => (/^\d+$/.test(s) ? Number(s) : s), syntax: 'seconds' },
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
/**
 * The config file's bytes and its JSON (the pure file reading loadConfig and the early
 * restore's record share). Absent: null, unless `required` (named with --config). Unreadable
 * or not JSON: a ConfigError naming the file.
 */
export function readConfigFile(hostPath: string, required: boolean): { bytes: Buffer; raw: unknown } | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(hostPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !required) return null;
    throw new ConfigError('(file)', `cannot read config: ${(err as Error).message}`, hostPath);
  }
  try {
    return { bytes, raw: JSON.parse(bytes.toString('utf8')) };
  } catch (err) {
    throw new ConfigError('(file)', `not valid JSON: ${(err as Error).message}`, hostPath);
  }
}

export function loadConfig(paths: RootedPaths, configPath: string | undefined, env: NodeJS.ProcessEnv): { config: AgentConfig; file: string | null } {
  const hostPath = paths.resolve(configPath ?? DEFAULT_CONFIG_PATH);
  const read = readConfigFile(hostPath, configPath !== undefined);
  const file = read ? hostPath : null;
  return { config: parseConfig(applyRootDefaults(applyEnvOverrides(read?.raw ?? {}, env), paths), file ?? undefined), file };
}

/**
 * Defaults that differ under --root (tests, image preparation): the host's block devices and
 * firewall are not the image's, so they are left alone unless the config asks explicitly.
 */
export const ROOT_DEFAULTS: ReadonlyArray<{ section: string; key: string; value: unknown }> = [
  { section: 'sources', key: 'scanDevices', value: false },
  { section: 'firewall', key: 'mode', value: 'plan' },
];

function applyRootDefaults(raw: unknown, paths: RootedPaths): unknown {
  if (paths.isHostRoot || !raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  return ROOT_DEFAULTS.reduce((out, d) => withDefault(out, d.section, d.key, d.value), raw as Record<string, unknown>);
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
