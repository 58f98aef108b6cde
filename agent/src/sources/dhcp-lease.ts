/**
 * Pure parsers for the DHCP lease files that name CloudStack's virtual router (the DHCP
 * server is the VR). Three formats are in the wild:
 *  - systemd-networkd, /run/systemd/netif/leases/<ifindex>: `SERVER_ADDRESS=10.1.1.1`
 *  - NetworkManager internal client, /var/lib/NetworkManager/internal-*.lease: the same
 *    KEY=VALUE format (`SERVER_ADDRESS=`); NM's device state files spell it
 *    `dhcp_server_identifier=`, accepted too
 *  - ISC dhclient, *.leases / dhclient-*.lease: `lease { … option dhcp-server-identifier
 *    10.1.1.1; … }` blocks, appended over time, so the last block is the current lease.
 */
import { isIPv4 } from 'node:net';

const KEY_VALUE_KEYS = ['SERVER_ADDRESS', 'dhcp_server_identifier'];

/** networkd / NetworkManager KEY=VALUE lease: the server address, or null. */
export function parseKeyValueLease(text: string): string | null {
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || !KEY_VALUE_KEYS.includes(m[1] as string)) continue;
    const value = (m[2] as string).replace(/^"(.*)"$/, '$1');
    if (isIPv4(value)) return value;
  }
  return null;
}

/** dhclient lease file: the server identifier of the last lease that has one, or null. */
export function parseDhclientLeases(text: string): string | null {
  const noComments = text.replace(/#[^\n]*/g, '');
  let last: string | null = null;
  // Lease blocks do not nest; option values never contain braces.
  for (const block of noComments.matchAll(/\blease\s*\{([^}]*)\}/g)) {
    const m = /\boption\s+dhcp-server-identifier\s+([0-9.]+)\s*;/.exec(block[1] as string);
    if (m && isIPv4(m[1] as string)) last = m[1] as string;
  }
  return last;
}

/** Any of the formats above, told apart by content (file names differ between distros). */
export function serverAddressFromLease(text: string): string | null {
  return /\blease\s*\{/.test(text) ? parseDhclientLeases(text) : parseKeyValueLease(text);
}
