/**
 * Parsers for the /proc files health reports are made of. Pure: text in, values out; a line
 * that does not parse is skipped (the kernel's formats are stable, but a partial read must
 * not take the whole report down). Formats: proc(5), Documentation/networking/proc_net_tcp.
 */

/** /proc/loadavg: "0.42 0.30 0.25 1/123 4567". */
export function parseLoadavg(text: string): [number, number, number] {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (![a, b, c].every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error(`unreadable loadavg: "${text.slice(0, 60)}"`);
  return [a as number, b as number, c as number];
}

/** /proc/uptime: "12345.67 45678.90" → whole seconds. */
export function parseUptime(text: string): number {
  const up = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isFinite(up)) throw new Error(`unreadable uptime: "${text.slice(0, 60)}"`);
  return Math.floor(up);
}

/** /proc/meminfo MemTotal and MemAvailable, in bytes (the file says kB, meaning KiB). */
export function parseMeminfo(text: string): { totalB: number; availB: number } {
  const kb = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const totalB = kb('MemTotal');
  if (totalB === null) throw new Error('meminfo has no MemTotal');
  // Kernels before 3.14 have no MemAvailable: estimate as free + buffers + page cache.
  const availB = kb('MemAvailable') ?? (kb('MemFree') ?? 0) + (kb('Buffers') ?? 0) + (kb('Cached') ?? 0);
  return { totalB, availB };
}

/** /proc/cpuinfo: number of "processor" entries (0 when the file has none, e.g. some ARM kernels). */
export function countCpus(text: string): number {
  return (text.match(/^processor\s*:/gm) ?? []).length;
}

/** /proc/net/dev: bytes received and sent on every interface except loopback. */
export function parseNetDev(text: string): { rxB: number; txB: number } {
  let rxB = 0;
  let txB = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = (m[2] as string).trim().split(/\s+/).map(Number);
    // Receive: bytes packets errs drop fifo frame compressed multicast | Transmit: bytes …
    if (f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) continue;
    rxB += f[0] as number;
    txB += f[8] as number;
  }
  return { rxB, txB };
}

/** Hex address of /proc/net/{tcp,udp}[6]: 32-bit words in host (little-endian) order. */
export function decodeProcAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes: number[] = [];
  for (const w of words) {
    const n = parseInt(w, 16);
    bytes.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) throw new Error(`unreadable socket address "${hex}"`);
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { at: i, len: j - i };
    i = j;
  }
  if (best.at < 0) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.len).join(':')}`;
}

export function isLoopbackAddress(addr: string): boolean {
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

export interface Listener {
  proto: 'tcp' | 'udp';
  addr: string;
  port: number;
}

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07'; // TCP_CLOSE: a bound UDP socket with no peer

/**
 * Listening sockets from one /proc/net/{tcp,tcp6,udp,udp6} file: TCP in LISTEN, UDP bound and
 * not connected to a peer (a connected UDP socket is a client, not a service).
 */
export function parseProcNetSockets(text: string, proto: 'tcp' | 'udp'): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [local, remote, state] = [f[1] as string, f[2] as string, f[3] as string];
    const wanted = proto === 'tcp' ? state === TCP_LISTEN : state === UDP_UNCONNECTED && /:0000$/.test(remote);
    if (!wanted) continue;
    const [addrHex, portHex] = local.split(':');
    if (!addrHex || !portHex) continue;
    try {
      out.push({ proto, addr: decodeProcAddress(addrHex), port: parseInt(portHex, 16) });
    } catch {
      continue;
    }
  }
  return out;
}

/** Deduplicated by (proto, addr, port) and sorted by proto, port, addr: stable reports. */
export function uniqueListeners(all: Listener[]): Listener[] {
  const seen = new Map<string, Listener>();
  for (const l of all) seen.set(`${l.proto} ${l.addr} ${l.port}`, l);
  // Plain code-unit comparison: localeCompare would pull ICU collation data (~2.5 MB RSS) into the daemon.
  return [...seen.values()].sort((a, b) => byText(a.proto, b.proto) || a.port - b.port || byText(a.addr, b.addr));
}

/** /proc/mounts: mount points of block-device filesystems (what `df` would show), first occurrence. */
export function parseBlockMounts(text: string): Array<{ mount: string; fsType: string }> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [dev, mnt, fsType] = line.split(' ');
    if (!dev || !mnt || !fsType || !dev.startsWith('/dev/') || fsType === 'squashfs') continue;
    // Octal escapes for space, tab, newline and backslash in mount points.
    const mount = mnt.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (!out.has(mount)) out.set(mount, fsType);
  }
  return [...out].map(([mount, fsType]) => ({ mount, fsType }));
}

/** statfs numbers → what `df` reports: used% of the space non-root users can have. */
export function diskUsage(blocks: number, bfree: number, bavail: number, bsize: number): { sizeB: number; availB: number; usedPct: number } {
  const used = blocks - bfree;
  const denom = used + bavail;
  return { sizeB: blocks * bsize, availB: bavail * bsize, usedPct: denom > 0 ? Math.round((used / denom) * 1000) / 10 : 0 };
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
