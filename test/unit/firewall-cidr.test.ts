import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { CidrSyntaxError, cidrSortKey, parseCidr } from '../../agent/src/firewall/cidr';

/** Deterministic pseudo-random generator so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('parseCidr', () => {
  it('normalises to the spelling iptables-save and nft print', () => {
    const cases: Array<[string, string]> = [
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['192.0.2.7', '192.0.2.7/32'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['2001:DB8:0:0:0:0:0:0/32', '2001:db8::/32'],
      ['2001:db8::1', '2001:db8::1/128'],
      ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1/128'], // first of two equal runs
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1/128'], // the longest run, not the first
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1/128'], // a single zero group is not compressed
      ['::', '::/128'],
      ['::/0', '::/0'],
      ['::1', '::1/128'],
      ['fe80::/10', 'fe80::/10'],
      ['64:ff9b::192.0.2.1', '64:ff9b::c000:201/128'],
      ['::2:3', '::0.2.0.3/128'], // glibc's mixed notation for IPv4-compatible addresses
    ];
    for (const [text, cidr] of cases) {
      const parsed = parseCidr(text);
      assert.equal(parsed.cidr, cidr, text);
      assert.equal(parsed.family, text.includes(':') ? 'ipv6' : 'ipv4');
      assert.deepEqual(parseCidr(parsed.cidr), parsed, `${text}: canonical form is stable`);
    }
  });

  it('agrees with the WHATWG IPv6 serialiser (RFC 5952) on random addresses', () => {
    const random = rng(7);
    for (let i = 0; i < 2000; i++) {
      // Bias towards zero groups so compression is exercised.
      const groups = Array.from({ length: 8 }, () => (random() < 0.5 ? 0 : Math.floor(random() * 0x10000)));
      const text = groups.map((g) => g.toString(16)).join(':');
      const mixed = groups.slice(0, 6).every((g) => g === 0) || (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff);
      if (mixed) continue; // glibc prints these as ::a.b.c.d, WHATWG does not
      const expected = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      assert.equal(parseCidr(text).cidr, `${expected}/128`, text);
    }
  });

  it('accepts exactly what node:net accepts as addresses (on a corpus of near misses)', () => {
    const corpus = [
      '1.2.3.4', '1.2.3', '1.2.3.4.5', '1.2.3.256', '01.2.3.4', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4 ', '1..3.4',
      '::', ':::', '1::', '::1', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8',
      '1::2::3', '12345::', 'g::', '1:2:3:4:5:6:1.2.3.4', '::1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3', '1:2:3:4:5:6:7',
    ];
    for (const text of corpus) {
      let ours: boolean;
      try {
        parseCidr(text);
        ours = true;
      } catch (err) {
        assert.ok(err instanceof CidrSyntaxError);
        ours = false;
      }
      assert.equal(ours, isIP(text) !== 0, text);
    }
  });

  it('refuses host bits, naming the network and the host', () => {
    assert.throws(() => parseCidr('10.1.2.3/8'), /"10\.1\.2\.3\/8" has host bits set; the network is 10\.0\.0\.0\/8 \(or write a host as 10\.1\.2\.3\)/);
    assert.throws(() => parseCidr('192.168.1.1/31'), /the network is 192\.168\.1\.0\/31/);
    assert.throws(() => parseCidr('2001:db8::1/64'), /the network is 2001:db8::\/64/);
    assert.throws(() => parseCidr('fe80::1/10'), /the network is fe80::\/10/);
  });

  it('refuses bad prefixes, zones and IPv4-mapped hosts', () => {
    for (const text of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.0/08x', '::/129', '::/1234']) {
      assert.throws(() => parseCidr(text), CidrSyntaxError, text);
    }
    assert.throws(() => parseCidr('fe80::1%eth0'), /not an IPv4 or IPv6 address/);
    assert.throws(() => parseCidr('::ffff:10.0.0.1'), /IPv4-mapped/);
    assert.throws(() => parseCidr('::ffff:10.0.0.0/104'), /IPv4-mapped/);
  });

  it('random networks survive format → parse', () => {
    const random = rng(11);
    for (let i = 0; i < 1000; i++) {
      const v6 = random() < 0.5;
      const bits = v6 ? 128 : 32;
      const prefix = Math.floor(random() * (bits + 1));
      const bytes = Array.from({ length: bits / 8 }, (_, j) => {
        const keep = Math.max(0, Math.min(8, prefix - j * 8));
        return Math.floor(random() * 256) & ((0xff << (8 - keep)) & 0xff);
      });
      const text = v6
        ? Array.from({ length: 8 }, (_, j) => (((bytes[2 * j] ?? 0) << 8) | (bytes[2 * j + 1] ?? 0)).toString(16)).join(':')
        : bytes.join('.');
      if (v6 && prefix >= 96 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) continue;
      const parsed = parseCidr(`${text}/${prefix}`);
      assert.deepEqual(parseCidr(parsed.cidr), parsed, `${text}/${prefix}`);
      assert.ok(parsed.cidr.endsWith(`/${prefix}`));
    }
  });
});

describe('cidrSortKey', () => {
  it('orders numerically, IPv4 before IPv6, shorter prefix first', () => {
    const sorted = ['2001:db8::/32', '10.0.0.0/16', '9.0.0.0/8', '10.0.0.0/8', '::/0', '192.168.0.0/16']
      .map((c) => parseCidr(c).cidr)
      .sort((a, b) => (cidrSortKey(a) < cidrSortKey(b) ? -1 : 1));
    assert.deepEqual(sorted, ['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', '192.168.0.0/16', '::/0', '2001:db8::/32']);
  });
});
