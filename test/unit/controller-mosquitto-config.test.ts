/** The member rule (member-acl.ts) and the mosquitto files rendered from it, pure. */
import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { test } from 'node:test';
import { mayPublish, maySubscribe, mayUseClientId, type BrokerLogin } from '../../controller-stub/src/fleet';
import type { MemberRecord } from '../../controller-stub/src/members';
import { mosquittoPasswordLine, renderMosquittoConfig } from '../../controller-stub/src/mosquitto-config';

const P = 'cartridge/v1';
const ma: BrokerLogin = { role: 'member', clusterId: 'c1', memberId: 'ma' };

test('member rule: own client id, own cluster, own exact topics; Stratos only when asked', () => {
  assert.ok(mayUseClientId(ma, 'ma'));
  assert.ok(!mayUseClientId(ma, 'mb') && !mayUseClientId(ma, 'ma-2') && !mayUseClientId(ma, ''));
  assert.ok(mayUseClientId({ role: 'superuser' }, 'anything'));
  for (const ch of ['status', 'health', 'event']) assert.ok(mayPublish({ topicPrefix: P }, ma, `${P}/c1/ma/${ch}`), ch);
  for (const topic of [`${P}/evil/ma/status`, `${P}/c1/mb/status`, `${P}/c1/ma/status/x`, `${P}/c1/ma`, `${P}/+/ma/status`, 'instance/status/InstanceStartedEvent']) {
    assert.ok(!mayPublish({ topicPrefix: P }, ma, topic), topic);
  }
  assert.ok(mayPublish({ topicPrefix: P, stratosEvents: true }, ma, 'instance/status/InstanceStartedEvent'));
  assert.ok(!mayPublish({ topicPrefix: P, stratosEvents: true }, ma, 'instance/status/Anything'));
  assert.ok(maySubscribe({ topicPrefix: P }, ma, `${P}/c1/ma/status`));
  for (const f of [`${P}/+/ma/status`, `${P}/#`, `${P}/c1/ma/health`, '#']) assert.ok(!maySubscribe({ topicPrefix: P }, ma, f), f);
});

test('password lines are mosquitto_passwd $7$ (PBKDF2-SHA512, 101 rounds, 12-byte salt)', () => {
  const salt = Buffer.alloc(12, 1);
  const line = mosquittoPasswordLine('ma', 'pw', salt);
  const [user, hash] = line.split(':') as [string, string];
  assert.equal(user, 'ma');
  const [, seven, rounds, s, h] = hash.split('$');
  assert.deepEqual([seven, rounds, s], ['7', '101', salt.toString('base64')]);
  assert.equal(h, pbkdf2Sync('pw', salt, 101, 64, 'sha512').toString('base64'));
});

function member(memberId: string, clusterId: string, vars: Record<string, string>, terminated = false): MemberRecord {
  return { clusterId, memberId, payload: JSON.stringify(vars), format: 'json', registeredAt: 0, token: { nonce: 'n', expiresAtS: 1, singleUse: false, usedAt: null }, credentials: [], terminatedAt: terminated ? 1 : null };
}

test('rendered config: exact per-member ACL, no patterns, live members with credentials only, client id = username', () => {
  const cfg = renderMosquittoConfig({
    members: [
      member('ma', 'c1', { MB_USERNAME: 'ma', MB_PASSWORD: 'a' }),
      member('gone', 'c1', { MB_USERNAME: 'gone', MB_PASSWORD: 'g' }, true),
      member('nocreds', 'c1', {}),
      member('other', 'c2', { MB_USERNAME: 'someone', MB_PASSWORD: 'x' }),
    ],
    rules: { topicPrefix: P }, controllerUsers: ['ctl'], controllerPassword: 'c', listen: { host: '127.0.0.1', port: 1884 }, dir: '/etc/mosquitto/cartridge',
  });
  assert.deepEqual(cfg.members, ['ma']);
  assert.deepEqual(cfg.skipped.map((s) => s.memberId), ['nocreds', 'other']);
  assert.match(cfg.skipped[1]?.why ?? '', /MB_USERNAME "someone" is not its member id/);
  assert.deepEqual(cfg.passwd.trim().split('\n').map((l) => l.split(':')[0]), ['ctl', 'ma']);
  assert.ok(!/^pattern|^topic \w+ .*[+%]/m.test(cfg.acl), 'no pattern or wildcard lines for members');
  assert.match(cfg.acl, /^user ma\ntopic write cartridge\/v1\/c1\/ma\/status\ntopic write cartridge\/v1\/c1\/ma\/health\ntopic write cartridge\/v1\/c1\/ma\/event\ntopic read cartridge\/v1\/c1\/ma\/status$/m);
  assert.match(cfg.acl, /^user ctl\ntopic readwrite cartridge\/v1\/#$/m);
  assert.match(cfg.conf, /^listener 1884 127\.0\.0\.1\n(#.*\n)?use_username_as_clientid true$/m);
  assert.match(cfg.conf, /^password_file \/etc\/mosquitto\/cartridge\/passwd$/m);
  assert.match(cfg.conf, /^allow_anonymous false$/m);
  assert.throws(() => renderMosquittoConfig({ members: [], rules: { topicPrefix: P }, controllerUsers: ['a:b'], controllerPassword: null, listen: { host: '', port: 1 }, dir: '/x' }), /cannot be a mosquitto username/);
});
