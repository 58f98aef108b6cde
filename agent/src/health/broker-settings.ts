/**
 * Where and how to connect, from config `health.*` and, failing that, from the payload as
 * Stratos does (MB_URLS, or MB_IP + MB_PORT; MB_USERNAME / MB_PASSWORD). Config wins over
 * the payload key by key. Files (password, CA, client cert/key) are image paths resolved under
 * --root; they are checked here, and read again at every connect so rotated certificates are
 * picked up.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, PayloadError } from '../errors';
import type { AgentConfig } from '../config';
import type { RootedPaths } from '../paths';

export type HealthConfig = AgentConfig['health'];

export interface BrokerSettings {
  /** mqtt:// or mqtts:// URLs, tried in turn (failover). No credentials in them. */
  urls: string[];
  username: string | null;
  password: string | null;
  /** Host paths (already resolved under --root). */
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
  protocolVersion: 4 | 5;
  keepaliveS: number;
  /** Where the URLs came from, for status and errors. */
  origin: 'config health.brokerUrls' | 'payload MB_URLS' | 'payload MB_IP';
}

/** Stratos' `tcp://host:port` / `ssl://host:port` (paho style) → mqtt.js URL. */
export function normalizeBrokerUrl(raw: string, where: string): string {
  const text = raw.trim();
  const m = /^([a-z]+):\/\/([^\s/?#]+)\/?$/i.exec(text);
  if (!m) throw new PayloadError(`${where}: "${text}" is not a broker URL (expected tcp://host:port or mqtt(s)://host:port)`);
  const scheme = (m[1] as string).toLowerCase();
  const authority = m[2] as string;
  if (authority.includes('@')) throw new PayloadError(`${where}: broker URLs must not carry credentials (use MB_USERNAME / MB_PASSWORD)`);
  const mapped = ({ tcp: 'mqtt', mqtt: 'mqtt', ssl: 'mqtts', tls: 'mqtts', mqtts: 'mqtts' } as Record<string, string>)[scheme];
  if (!mapped) throw new PayloadError(`${where}: unsupported scheme "${scheme}://" (tcp, ssl, mqtt, mqtts)`);
  try {
    new URL(`${mapped}://${authority}`);
  } catch {
    throw new PayloadError(`${where}: "${text}" has an invalid host or port`);
  }
  return `${mapped}://${authority}`;
}

/** Broker URLs from the payload, or [] when it names none. */
export function brokerUrlsFromPayload(vars: ReadonlyMap<string, string>): { urls: string[]; origin: BrokerSettings['origin'] } | null {
  const list = vars.get('MB_URLS');
  if (list && list.trim()) {
    return { urls: list.split(',').filter((u) => u.trim()).map((u, i) => normalizeBrokerUrl(u, `payload MB_URLS[${i}]`)), origin: 'payload MB_URLS' };
  }
  const ip = vars.get('MB_IP')?.trim();
  if (ip) {
    const port = vars.get('MB_PORT')?.trim() || '1883';
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new PayloadError(`payload MB_PORT: "${port}" is not a port number`);
    const host = ip.includes(':') && !ip.startsWith('[') ? `[${ip}]` : ip;
    return { urls: [normalizeBrokerUrl(`tcp://${host}:${port}`, 'payload MB_IP/MB_PORT')], origin: 'payload MB_IP' };
  }
  return null;
}

function checkReadable(paths: RootedPaths, key: string, imagePath: string | null): string | null {
  if (!imagePath) return null;
  const host = paths.resolve(imagePath);
  try {
    readFileSync(host);
  } catch (err) {
    throw new ConfigError(`health.${key}`, `cannot read ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return host;
}

/**
 * The settings, or null when neither config nor payload names a broker (health reporting is
 * then off; the caller says so). Throws ConfigError / PayloadError naming the bad key.
 */
export function resolveBrokerSettings(cfg: HealthConfig, vars: ReadonlyMap<string, string>, paths: RootedPaths): BrokerSettings | null {
  let urls: string[];
  let origin: BrokerSettings['origin'];
  if (cfg.brokerUrls.length > 0) {
    urls = cfg.brokerUrls.map((u, i) => {
      try {
        return normalizeBrokerUrl(u, `health.brokerUrls[${i}]`);
      } catch (err) {
        throw new ConfigError(`health.brokerUrls[${i}]`, (err as Error).message.replace(/^[^:]*: /, ''));
      }
    });
    origin = 'config health.brokerUrls';
  } else {
    const fromPayload = brokerUrlsFromPayload(vars);
    if (!fromPayload) return null;
    ({ urls, origin } = fromPayload);
  }
  if (urls.length === 0) return null;

  let password: string | null = null;
  const passwordHost = checkReadable(paths, 'passwordFile', cfg.passwordFile);
  if (passwordHost) {
    // One line; a trailing newline from `echo pw > file` is not part of the password.
    password = readFileSync(passwordHost, 'utf8').replace(/\r?\n$/, '');
    if (password === '') throw new ConfigError('health.passwordFile', `${passwordHost} is empty`);
  } else if (vars.get('MB_PASSWORD')) {
    password = vars.get('MB_PASSWORD') as string;
  }
  const username = cfg.username ?? (vars.get('MB_USERNAME') || null);
  if (password !== null && username === null) throw new ConfigError('health.username', 'a broker password is set but no username (health.username or payload MB_USERNAME)');

  const certFile = checkReadable(paths, 'certFile', cfg.certFile);
  const keyFile = checkReadable(paths, 'keyFile', cfg.keyFile);
  if ((certFile === null) !== (keyFile === null)) throw new ConfigError(certFile ? 'health.keyFile' : 'health.certFile', 'a client certificate needs both health.certFile and health.keyFile');

  return {
    urls,
    username,
    password,
    caFile: checkReadable(paths, 'caFile', cfg.caFile),
    certFile,
    keyFile,
    protocolVersion: cfg.protocolVersion === '3.1.1' ? 4 : 5,
    keepaliveS: cfg.keepaliveSeconds,
    origin,
  };
}
