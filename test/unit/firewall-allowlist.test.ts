import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, PayloadError } from '../../agent/src/errors';
import {
  RuleSyntaxError,
  buildPolicy,
  describeRule,
  mergeRules,
  parseFirewallAllowValue,
  parsePortMappingsValue,
  parsePortsValue,
  parseRule,
  type FirewallRuleConfig,
} from '../../agent/src/firewall/allowlist';
import type { AllowRule } from '../../agent/src/firewall/types';

const CFG: FirewallRuleConfig = { alwaysAllow: ['tcp/22'], extraRules: [], allowIcmpEcho: true };
const NO_CFG: FirewallRuleConfig = { alwaysAllow: [], extraRules: [], allowIcmpEcho: false };

const described = (rules: AllowRule[]) => rules.map(describeRule);

function payloadError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PayloadError, `expected PayloadError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('parseRule', () => {
  it('parses ports, ranges, sources of both families and normalises them', () => {
    const cases: Array<[string, string, AllowRule['source']?]> = [
      ['tcp/8080', 'tcp/8080'],
      ['UDP/5353', 'udp/5353'],
      ['tcp/8000-8100', 'tcp/8000-8100'],
      ['tcp/9000-9000', 'tcp/9000'],
      ['tcp/1-65535', 'tcp/1-65535'],
      ['tcp/0080', 'tcp/80'],
      ['  tcp/5432   FROM   10.0.0.0/8 ', 'tcp/5432 from 10.0.0.0/8', { family: 'ipv4', cidr: '10.0.0.0/8' }],
      ['tcp/443 from 2001:DB8:0::/32', 'tcp/443 from 2001:db8::/32', { family: 'ipv6', cidr: '2001:db8::/32' }],
      ['udp/53 from 192.0.2.7', 'udp/53 from 192.0.2.7/32', { family: 'ipv4', cidr: '192.0.2.7/32' }],
      ['udp/53 from 2001:db8::1', 'udp/53 from 2001:db8::1/128', { family: 'ipv6', cidr: '2001:db8::1/128' }],
      ['tcp/1 from 0.0.0.0/0', 'tcp/1 from 0.0.0.0/0', { family: 'ipv4', cidr: '0.0.0.0/0' }],
    ];
    for (const [text, canonical, source] of cases) {
      const rule = parseRule(text, 'test');
      assert.equal(describeRule(rule), canonical, text);
      assert.deepEqual(rule.source, source, text);
      assert.equal(rule.origin, 'test');
      // The canonical form parses back to the same rule.
      assert.deepEqual(parseRule(describeRule(rule), 'test'), rule);
    }
  });

  it('refuses bad rules with a detail naming what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty rule/],
      ['   ', /empty rule/],
      ['sctp/80', /unknown protocol "sctp" \(tcp or udp\)/],
      ['icmp/8', /unknown protocol "icmp"/],
      ['/80', /missing protocol/],
      ['tcp80', /missing "\/"/],
      ['80', /missing "\/"/],
      ['tcp/0', /port 0 is out of range \(1-65535\)/],
      ['tcp/65536', /port 65536 is out of range/],
      ['tcp/99999999999999999999', /out of range/],
      ['tcp/http', /"http" is not a port number/],
      ['tcp/-1', /bad port "-1"/],
      ['tcp/80-', /bad port "80-"/],
      ['tcp/9000-8000', /reversed port range 9000-8000/],
      ['tcp/8000-0', /port 0 is out of range/],
      ['tcp/80 to 10.0.0.0/8', /expected PROTO\/PORT\[-PORT\] \[from CIDR\]/],
      ['tcp/80 from', /expected PROTO/],
      ['tcp/80 from 10.0.0.0/8 extra', /expected PROTO/],
      ['tcp/80, tcp/81', /one rule per entry/],
      ['tcp/80 from 10.0.0.1/8', /host bits set; the network is 10\.0\.0\.0\/8/],
      ['tcp/80 from 2001:db8::1/32', /host bits set; the network is 2001:db8::\/32/],
      ['tcp/80 from 10.0.0.0/33', /prefix length must be 0-32 for IPv4/],
      ['tcp/80 from ::/129', /prefix length must be 0-128 for IPv6/],
      ['tcp/80 from 10.0.0/8', /not an IPv4 or IPv6 address/],
      ['tcp/80 from 256.1.1.1', /not an IPv4 or IPv6 address/],
      ['tcp/80 from 010.0.0.1', /not an IPv4 or IPv6 address/],
      ['tcp/80 from example.com', /not an IPv4 or IPv6 address/],
      ['tcp/80 from fe80::1%eth0', /not an IPv4 or IPv6 address/],
      ['tcp/80 from 1::2::3', /not an IPv4 or IPv6 address/],
      ['tcp/80 from ::ffff:192.0.2.1', /IPv4-mapped/],
    ];
    for (const [text, pattern] of cases) {
      assert.throws(() => parseRule(text, 'test'), (err: unknown) => {
        assert.ok(err instanceof RuleSyntaxError, `${text}: ${String(err)}`);
        assert.match(err.message, pattern, text);
        return true;
      });
    }
  });
});

describe('payload keys', () => {
  it('PORTS: TCP ports separated by |, empty entries and values ignored', () => {
    assert.deepEqual(described(parsePortsValue('80|443')), ['tcp/80', 'tcp/443']);
    assert.deepEqual(described(parsePortsValue(' 80 || 443| ')), ['tcp/80', 'tcp/443']);
    assert.deepEqual(parsePortsValue(''), []);
    assert.equal(parsePortsValue('8080')[0]?.origin, 'payload PORTS');
  });

  it('PORTS: a bad entry is a PayloadError naming the key, the entry number and its text', () => {
    payloadError(() => parsePortsValue('80|443|70000'), /^payload PORTS entry 3 \("70000"\): port 70000 is out of range/);
    payloadError(() => parsePortsValue('80||0'), /^payload PORTS entry 3 \("0"\)/);
    payloadError(() => parsePortsValue('80-90'), /payload PORTS entry 1 \("80-90"\): "80-90" is not a port number/);
    payloadError(() => parsePortsValue('tcp/80'), /entry 1 \("tcp\/80"\)/);
  });

  it('PORT_MAPPINGS: opens PORT (never PROXY_PORT) with the mapped protocol', () => {
    const rules = parsePortMappingsValue(
      'NAME:http|PROTOCOL:http|PORT:8080|PROXY_PORT:80;NAME:tls|PROTOCOL:HTTPS|PORT:8443|PROXY_PORT:443|TYPE:NodePort;' +
        'NAME:dns|PROTOCOL:udp|PORT:5353;PORT:9000;',
    );
    assert.deepEqual(described(rules), ['tcp/8080', 'tcp/8443', 'udp/5353', 'tcp/9000']);
    assert.deepEqual(rules.map((r) => r.origin), [
      'payload PORT_MAPPINGS (http)', 'payload PORT_MAPPINGS (tls)', 'payload PORT_MAPPINGS (dns)', 'payload PORT_MAPPINGS',
    ]);
    assert.deepEqual(parsePortMappingsValue(''), []);
    assert.deepEqual(parsePortMappingsValue(' ; '), []);
    assert.deepEqual(described(parsePortMappingsValue('PROTOCOL:tcp|PORT:22|PROXY_PORT:0')), ['tcp/22']);
  });

  it('PORT_MAPPINGS: bad entries name the entry and the field', () => {
    payloadError(() => parsePortMappingsValue('PORT:80;NAME:x|PROTOCOL:sctp|PORT:9'), /^payload PORT_MAPPINGS entry 2 \(.*\): PROTOCOL "sctp" is not http, https, tcp or udp/);
    payloadError(() => parsePortMappingsValue('NAME:x|PROTOCOL:http'), /entry 1 .*: no PORT field/);
    payloadError(() => parsePortMappingsValue('PORT:0'), /port 0 is out of range/);
    payloadError(() => parsePortMappingsValue('PORT:80|PROXY_PORT:abc'), /PROXY_PORT "abc" is not a port number \(0-65535\)/);
    payloadError(() => parsePortMappingsValue('PORT:80|PROXY_PORT:70000'), /PROXY_PORT "70000"/);
    payloadError(() => parsePortMappingsValue('PORT:80|http'), /field "http" is not KEY:VALUE/);
    payloadError(() => parsePortMappingsValue('PORT:80|PORT:81'), /field PORT given twice/);
  });

  it('FIREWALL_ALLOW: rules separated by ",", empty entries ignored', () => {
    const rules = parseFirewallAllowValue('tcp/8080, udp/5353,,tcp/8000-8100 , tcp/5432 from 10.0.0.0/8, tcp/443 from 2001:db8::/32,');
    assert.deepEqual(described(rules), ['tcp/8080', 'udp/5353', 'tcp/8000-8100', 'tcp/5432 from 10.0.0.0/8', 'tcp/443 from 2001:db8::/32']);
    assert.deepEqual(parseFirewallAllowValue('  '), []);
  });

  it('FIREWALL_ALLOW: a bad entry names its position, quoted and shortened', () => {
    payloadError(() => parseFirewallAllowValue('tcp/80,,tcp/9-1'), /^payload FIREWALL_ALLOW entry 3 \("tcp\/9-1"\): reversed port range 9-1/);
    payloadError(() => parseFirewallAllowValue(`tcp/80 from ${'a'.repeat(200)}`), /entry 1 \("tcp\/80 from a{48}…"\)/);
    // Control characters are escaped, not printed raw into the log.
    payloadError(() => parseFirewallAllowValue('tcp/8\u001b[0m0'), /\\u001b/);
  });
});

describe('buildPolicy', () => {
  it('merges config and every payload key, deduplicates and sorts', () => {
    const payload = new Map([
      ['PORTS', '443|80'],
      ['PORT_MAPPINGS', 'NAME:web|PROTOCOL:http|PORT:80|PROXY_PORT:80;NAME:dns|PROTOCOL:udp|PORT:53'],
      ['FIREWALL_ALLOW', 'tcp/5432 from 10.0.0.0/8, tcp/22, tcp/5432 from 2001:db8::/32, tcp/5432 from 9.0.0.0/8, udp/53'],
    ]);
    const policy = buildPolicy(payload, { alwaysAllow: ['tcp/22'], extraRules: ['tcp/9100 from 10.0.0.0/8'], allowIcmpEcho: false });
    assert.equal(policy.allowIcmpEcho, false);
    assert.deepEqual(described(policy.rules), [
      'tcp/22', 'tcp/80', 'tcp/443',
      'tcp/5432 from 9.0.0.0/8', 'tcp/5432 from 10.0.0.0/8', 'tcp/5432 from 2001:db8::/32',
      'tcp/9100 from 10.0.0.0/8', 'udp/53',
    ]);
    const origin = (text: string) => policy.rules.find((r) => describeRule(r) === text)?.origin;
    assert.equal(origin('tcp/22'), 'config firewall.alwaysAllow[0]; payload FIREWALL_ALLOW');
    assert.equal(origin('tcp/80'), 'payload PORTS; payload PORT_MAPPINGS (web)');
    assert.equal(origin('tcp/9100 from 10.0.0.0/8'), 'config firewall.extraRules[0]');
  });

  it('the same allowlist in any order gives an identical policy', () => {
    const ports = ['80', '443', '8080', '8443', '9000'];
    const allow = ['tcp/5432 from 10.0.0.0/8', 'udp/5353', 'tcp/8000-8100', 'tcp/443 from 2001:db8::/32', 'tcp/80', 'udp/53 from 192.0.2.1'];
    const mappings = ['NAME:a|PROTOCOL:http|PORT:8080|PROXY_PORT:80', 'NAME:b|PROTOCOL:udp|PORT:5353', 'NAME:a|PROTOCOL:tcp|PORT:9000'];
    const build = (p: string[], a: string[], m: string[]) =>
      buildPolicy(new Map([['FIREWALL_ALLOW', a.join(', ')], ['PORT_MAPPINGS', m.join(';')], ['PORTS', p.join('|')]]), CFG);
    const reference = build(ports, allow, mappings);
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const shuffle = <T>(xs: T[]) => xs.map((x) => [random(), x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x);
    for (let i = 0; i < 50; i++) {
      assert.deepEqual(build(shuffle(ports), shuffle(allow), shuffle(mappings)), reference);
    }
    assert.equal(reference.rules.length, 11); // 5 PORTS + 5 new FIREWALL_ALLOW + tcp/22; mappings are all duplicates
  });

  it('payload keys it does not know, and absent keys, add nothing', () => {
    const policy = buildPolicy(new Map([['APP_NAME', 'shop'], ['PORTS', '']]), CFG);
    assert.deepEqual(described(policy.rules), ['tcp/22']);
    assert.deepEqual(buildPolicy(new Map(), NO_CFG).rules, []);
  });

  it('a bad config entry is a ConfigError naming the key with its index', () => {
    assert.throws(
      () => buildPolicy(new Map(), { ...CFG, extraRules: ['tcp/80', 'udp/53', 'tcp/5432 from 10.0.0.1/8'] }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.key, 'firewall.extraRules[2]');
        assert.match(err.message, /config key "firewall\.extraRules\[2\]": "tcp\/5432 from 10\.0\.0\.1\/8": .*host bits set/);
        return true;
      },
    );
    assert.throws(() => buildPolicy(new Map(), { ...CFG, alwaysAllow: ['ssh'] }), (err: unknown) => err instanceof ConfigError && err.key === 'firewall.alwaysAllow[0]');
  });

  it('one bad payload entry refuses the whole allowlist', () => {
    payloadError(
      () => buildPolicy(new Map([['PORTS', '80|443'], ['FIREWALL_ALLOW', 'tcp/8080, tcp/70000']]), CFG),
      /^payload FIREWALL_ALLOW entry 2 \("tcp\/70000"\)/,
    );
    assert.throws(() => buildPolicy(new Map([['PORTS', '80'], ['PORT_MAPPINGS', 'PORT:x']]), CFG), PayloadError);
  });
});

describe('mergeRules', () => {
  it('keeps rules that differ only in source or protocol apart', () => {
    const rules = ['tcp/80', 'udp/80', 'tcp/80 from 10.0.0.0/8', 'tcp/80 from 10.0.0.0/16', 'tcp/80-81', 'tcp/80'].map((t) => parseRule(t, 'x'));
    assert.deepEqual(described(mergeRules(rules)), ['tcp/80', 'tcp/80 from 10.0.0.0/8', 'tcp/80 from 10.0.0.0/16', 'tcp/80-81', 'udp/80']);
  });

  it('orders sources numerically, IPv4 before IPv6, and never mutates its input', () => {
    const texts = ['tcp/1 from 2001:db8::/32', 'tcp/1 from 192.168.0.0/16', 'tcp/1 from 10.0.0.0/8', 'tcp/1 from ::/0', 'tcp/1 from 9.9.9.9'];
    const rules = texts.map((t) => parseRule(t, 'x'));
    const before = JSON.stringify(rules);
    assert.deepEqual(described(mergeRules(rules)), [
      'tcp/1 from 9.9.9.9/32', 'tcp/1 from 10.0.0.0/8', 'tcp/1 from 192.168.0.0/16', 'tcp/1 from ::/0', 'tcp/1 from 2001:db8::/32',
    ]);
    assert.equal(JSON.stringify(rules), before);
  });
});
