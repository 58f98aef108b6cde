/**
 * Pure parsers for the files that name CloudStack's virtual router (the DHCP server is the
 * VR). The formats in the wild:
 *  - systemd-networkd, /run/systemd/netif/leases/<ifindex>: `SERVER_ADDRESS=10.1.1.1`
 *  - NetworkManager ≥ 1.40 device state, /run/NetworkManager/devices/<ifindex>: a GLib
 *    keyfile whose `[dhcp4]` group holds every DHCP option as `dhcp4.<option>=` (NM's
 *    src/core/nm-config.c, nm_config_device_state_write), the server as
 *    `dhcp4.dhcp_server_identifier=10.1.1.1`. This is the only place NM's internal DHCP
 *    client (the default since 1.22) records the server: its lease file,
 *    /var/lib/NetworkManager/internal-*.lease, holds nothing but `ADDRESS=`.
 *  - ISC dhclient (also NetworkManager with dhcp=dhclient), *.leases / dhclient-*.lease:
 *    see dhclient-lease.ts.
 */
import { isIPv4 } from 'node:net';
import { looksLikeDhclient, parseDhclientLeases } from './dhclient-lease';

export { parseDhclientLeases } from './dhclient-lease';

/**
 * Keys that name the server in KEY=VALUE lease files: networkd's (also written by NetworkManager's
 * older sd-dhcp based client), and NetworkManager's own option name in the same format.
 */
const KEY_VALUE_KEYS = ['SERVER_ADDRESS', 'dhcp_server_identifier'];

/** networkd-style KEY=VALUE lease: the server address, or null. */
export function parseKeyValueLease(text: string): string | null {
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || !KEY_VALUE_KEYS.includes(m[1] as string)) continue;
    const value = (m[2] as string).replace(/^"(.*)"$/, '$1');
    if (isIPv4(value)) return value;
  }
  return null;
}

const KEYFILE_ESCAPES: Record<string, string> = { s: ' ', n: '\n', t: '\t', r: '\r', '\\': '\\' };

/**
 * A GLib keyfile (the format g_key_file_save_to_file writes): `[group]` headers, `key=value`
 * lines, `#` comment lines; values unescaped (\s \n \t \r \\). Later duplicates win, as in GLib.
 */
export function parseKeyfile(text: string): Map<string, Map<string, string>> {
  const groups = new Map<string, Map<string, string>>();
  let current: Map<string, string> | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      const name = header[1] as string;
      current = groups.get(name) ?? new Map<string, string>();
      groups.set(name, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq <= 0) continue;
    const value = line.slice(eq + 1).trimStart().replace(/\\(.)/g, (all, c: string) => KEYFILE_ESCAPES[c] ?? all);
    current.set(line.slice(0, eq).trimEnd(), value);
  }
  return groups;
}

/** NetworkManager device state file: the DHCPv4 server identifier, or null. */
export function parseNmDeviceState(text: string): string | null {
  const value = parseKeyfile(text).get('dhcp4')?.get('dhcp4.dhcp_server_identifier')?.trim();
  return value && isIPv4(value) ? value : null;
}

/** Any of the formats above, told apart by content (file names differ between distros). */
export function serverAddressFromLease(text: string): string | null {
  if (looksLikeDhclient(text)) return parseDhclientLeases(text);
  if (/^\s*\[[^\]\r\n]+\]\s*$/m.test(text)) return parseNmDeviceState(text);
  return parseKeyValueLease(text);
}
