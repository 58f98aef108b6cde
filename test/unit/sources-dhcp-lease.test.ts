import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDhclientStatements, tokenizeDhclient } from '../../agent/src/sources/dhclient-lease';
import { parseDhclientLeases, parseKeyfile, parseKeyValueLease, parseNmDeviceState, serverAddressFromLease } from '../../agent/src/sources/dhcp-lease';
import { hexToIPv4, parseDefaultGateway } from '../../agent/src/sources/proc-route';

const NETWORKD = `# This is private data. Do not parse.
ADDRESS=10.1.1.23
NETMASK=255.255.255.0
ROUTER=10.1.1.1
SERVER_ADDRESS=10.1.1.1
T1=43200
LIFETIME=86400
DNS=10.1.1.1
`;

const DHCLIENT = `lease {
  interface "eth0";
  fixed-address 10.1.1.23;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 10.1.1.1;
  renew 2 2024/01/02 03:04:05;
}
lease {
  interface "eth0";
  fixed-address 10.2.2.50;
  # option dhcp-server-identifier 10.9.9.9;
  option dhcp-server-identifier 10.2.2.1;
  option domain-name "cs.example";
}
`;

test('networkd lease: SERVER_ADDRESS, not ROUTER or DNS', () => {
  assert.equal(parseKeyValueLease(NETWORKD), '10.1.1.1');
  assert.equal(parseKeyValueLease(NETWORKD.replace('SERVER_ADDRESS=10.1.1.1', 'SERVER_ADDRESS=10.7.0.9')), '10.7.0.9');
});

test('networkd lease without SERVER_ADDRESS or with a non-IPv4 value gives null', () => {
  assert.equal(parseKeyValueLease('ADDRESS=10.1.1.23\nROUTER=10.1.1.1\n'), null);
  assert.equal(parseKeyValueLease('SERVER_ADDRESS=not-an-ip\n'), null);
  assert.equal(parseKeyValueLease('SERVER_ADDRESS=10.1.1.300\n'), null);
  assert.equal(parseKeyValueLease(''), null);
});

test('NetworkManager spellings: internal lease SERVER_ADDRESS and dhcp_server_identifier, CRLF tolerated', () => {
  assert.equal(parseKeyValueLease('ADDRESS=192.168.5.9\r\nSERVER_ADDRESS=192.168.5.1\r\n'), '192.168.5.1');
  assert.equal(parseKeyValueLease('ip_address=192.168.5.9\ndhcp_server_identifier=192.168.5.254\n'), '192.168.5.254');
});

test('dhclient leases: the last lease wins; comments are ignored', () => {
  assert.equal(parseDhclientLeases(DHCLIENT), '10.2.2.1');
  // Only the first lease: its server.
  assert.equal(parseDhclientLeases(DHCLIENT.slice(0, DHCLIENT.indexOf('}') + 1)), '10.1.1.1');
});

test('dhclient: a later lease without a server identifier does not erase the earlier one', () => {
  const text = `${DHCLIENT}lease {\n  fixed-address 10.3.3.3;\n}\n`;
  assert.equal(parseDhclientLeases(text), '10.2.2.1');
});

test('dhclient: no lease blocks, or an option outside a lease block, gives null', () => {
  assert.equal(parseDhclientLeases(''), null);
  assert.equal(parseDhclientLeases('option dhcp-server-identifier 10.0.0.1;\n'), null);
});

test('serverAddressFromLease tells the formats apart by content', () => {
  assert.equal(serverAddressFromLease(NETWORKD), '10.1.1.1');
  assert.equal(serverAddressFromLease(DHCLIENT), '10.2.2.1');
  assert.equal(serverAddressFromLease('nothing here'), null);
});

// ---- dhclient: quoted strings hold braces, semicolons and hashes ----

test('dhclient: a `}` inside a quoted string does not end the lease (filename with ${netX})', () => {
  const text = `lease {
  interface "eth0";
  fixed-address 10.1.1.23;
  filename "http://boot.example/\${netX}/pxe}.cfg";
  option dhcp-server-identifier 10.1.1.1;
}
`;
  assert.equal(parseDhclientLeases(text), '10.1.1.1');
});

test('dhclient: `;`, `{` and `#` inside quoted strings, escaped quotes and backslashes', () => {
  const text = `lease {
  option domain-search "a;b", "c{d";
  option domain-name "x\\"y # not a comment; option dhcp-server-identifier 10.6.6.6;";
  server-name "back\\\\slash";
  option domain-name "#1"; option dhcp-server-identifier 10.4.4.1; # trailing comment with "quote and }
}
`;
  assert.equal(parseDhclientLeases(text), '10.4.4.1');
});

test('dhclient: the identifier hidden in a string of the last lease does not count; the earlier one stays', () => {
  const text = `lease {\n  option dhcp-server-identifier 10.1.1.1;\n}\nlease {\n  filename "} lease { option dhcp-server-identifier 10.6.6.6; }";\n}\n`;
  assert.equal(parseDhclientLeases(text), '10.1.1.1');
});

test('dhclient: a lease cut short mid-write is ignored; the last complete one wins', () => {
  const complete = 'lease {\n  option dhcp-server-identifier 10.1.1.1;\n}\n';
  assert.equal(parseDhclientLeases(`${complete}lease {\n  option dhcp-server-identifier 10.2.2.2;\n`), '10.1.1.1');
  assert.equal(parseDhclientLeases(`${complete}lease {\n  option dhcp-server-identifier 10.2.2.2;\n  filename "unterminated`), '10.1.1.1');
});

test('dhclient: lease6 blocks nest, and nested blocks do not end the lease early', () => {
  const text = `default-duid "\\000\\001\\000\\001";
lease6 {
  interface "eth0";
  ia-na 1a:2b:3c:4d {
    iaaddr 2001:db8::5 { preferred-life 3600; }
  }
  option dhcp6.server-id 0:1:0:1;
}
lease {
  interface "eth0";
  option vendor-encapsulated-options 1:2:3;
  option dhcp-server-identifier 10.8.8.1;
}
`;
  assert.equal(parseDhclientLeases(text), '10.8.8.1');
  assert.equal(serverAddressFromLease(text), '10.8.8.1');
});

test('dhclient tokenizer: strings decode escapes, comments are dropped only outside strings', () => {
  const tokens = tokenizeDhclient('a "b\\"c#d" ; # gone }\n{ "\\101\\x42\\n" }');
  assert.deepEqual(tokens, [
    { kind: 'word', text: 'a' },
    { kind: 'string', text: 'b"c#d' },
    { kind: ';' },
    { kind: '{' },
    { kind: 'string', text: 'AB\n' },
    { kind: '}' },
  ]);
  assert.deepEqual(parseDhclientStatements(tokens), [{ words: ['a', 'b"c#d'], block: null }, { words: [], block: [] }]);
});

// ---- NetworkManager device state (/run/NetworkManager/devices/<ifindex>, NM >= 1.40) ----

/** As nm_config_device_state_write writes it: a GLib keyfile, DHCP options in [dhcp4] as dhcp4.<name>. */
const NM_DEVICE = `[device]
managed=true
connection-uuid=4c7d1a0e-9a3e-4b53-8a3b-5f0a0d9b1c2e
route-metric-default-effective=100
next-server=10.1.1.254
dhcp-bootfile=pxelinux.0

[dhcp4]
dhcp4.broadcast_address=10.1.1.255
dhcp4.dhcp_lease_time=86400
dhcp4.dhcp_server_identifier=10.1.1.1
dhcp4.domain_name=cs.example
dhcp4.domain_name_servers=10.1.1.1
dhcp4.expiry=1718000000
dhcp4.ip_address=10.1.1.23
dhcp4.next_server=10.1.1.254
dhcp4.routers=10.1.1.9
dhcp4.subnet_mask=255.255.255.0
`;

test('NetworkManager device state: dhcp4.dhcp_server_identifier in [dhcp4], not next_server or routers', () => {
  assert.equal(parseNmDeviceState(NM_DEVICE), '10.1.1.1');
  assert.equal(serverAddressFromLease(NM_DEVICE), '10.1.1.1');
});

test('NetworkManager device state without DHCPv4 (unmanaged, static, or [dhcp6] only) gives null', () => {
  assert.equal(serverAddressFromLease('[device]\nmanaged=false\n'), null);
  assert.equal(serverAddressFromLease('[device]\nmanaged=true\n\n[dhcp6]\ndhcp6.dhcp_server_identifier=10.1.1.1\n'), null);
  // The key outside its group does not count.
  assert.equal(serverAddressFromLease('[device]\ndhcp4.dhcp_server_identifier=10.1.1.1\n'), null);
  assert.equal(serverAddressFromLease('[dhcp4]\ndhcp4.dhcp_server_identifier=not-an-ip\n'), null);
});

test('NetworkManager internal client lease file names no server: null', () => {
  // What nm-dhcp-nettools.c lease_save writes, all of it.
  assert.equal(serverAddressFromLease('# This is private data. Do not parse.\nADDRESS=10.1.1.23\n'), null);
});

test('keyfile parser: comments, spaces around =, GLib escapes, later duplicates win', () => {
  const kf = parseKeyfile('# head\n[g]\n a = \\sb\\tc\\\\d \nk=1\nk=2\n[h]\nx=y\n[g]\nz=3\n');
  assert.deepEqual(Object.fromEntries([...kf].map(([g, m]) => [g, Object.fromEntries(m)])), {
    g: { a: ' b\tc\\d', k: '2', z: '3' },
    h: { x: 'y' },
  });
});

// ---- /proc/net/route ----

const ROUTES = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0001010A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth0\t00000000\t0101010A\t0003\t0\t0\t100\t00000000\t0\t0\t0
`;

test('default gateway: little-endian hex, the lowest-metric default route', () => {
  assert.equal(hexToIPv4('0101A8C0'), '192.168.1.1');
  assert.equal(hexToIPv4('FE01A8C0'), '192.168.1.254');
  assert.equal(parseDefaultGateway(ROUTES), '10.1.1.1');
});

test('default gateway: none without a default route, a down one, or one without a gateway', () => {
  const header = ROUTES.split('\n')[0];
  assert.equal(parseDefaultGateway(`${header}\neth0\t0001010A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n`), null);
  assert.equal(parseDefaultGateway(`${header}\neth0\t00000000\t0101010A\t0002\t0\t0\t100\t00000000\t0\t0\t0\n`), null);
  assert.equal(parseDefaultGateway(`${header}\neth0\t00000000\t00000000\t0001\t0\t0\t100\t00000000\t0\t0\t0\n`), null);
  assert.equal(parseDefaultGateway(`${header}\neth0\t00000000\tZZ01010A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n`), null);
  assert.equal(parseDefaultGateway(''), null);
});
