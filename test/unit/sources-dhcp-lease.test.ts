import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDhclientLeases, parseKeyValueLease, serverAddressFromLease } from '../../agent/src/sources/dhcp-lease';

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
