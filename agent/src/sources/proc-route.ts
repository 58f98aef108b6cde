/**
 * The IPv4 default gateway from /proc/net/route (pure). The kernel prints one route per line,
 * tab-separated, with Destination, Gateway and Mask as 8 hex digits of the address in host
 * byte order, which is little-endian on every platform we run on: `0101A8C0` is 192.168.1.1.
 */

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/** `0101A8C0` → `192.168.1.1`; null for anything but 8 hex digits. */
export function hexToIPv4(hex: string): string | null {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return null;
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

/**
 * The gateway of the default route (destination and mask 0.0.0.0, up, via a gateway) with the
 * lowest metric; the first such line on a tie. null when there is none.
 */
export function parseDefaultGateway(text: string): string | null {
  let best: { gateway: string; metric: number } | null = null;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [, dest, gw, flagsHex, , , metricText, mask] = f as [string, string, string, string, string, string, string, string];
    const flags = parseInt(flagsHex, 16);
    const metric = Number(metricText);
    const gateway = hexToIPv4(gw);
    if (dest !== '00000000' || mask !== '00000000' || !gateway || gateway === '0.0.0.0') continue;
    if (!Number.isInteger(metric) || (flags & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY)) continue;
    if (!best || metric < best.metric) best = { gateway, metric };
  }
  return best?.gateway ?? null;
}
