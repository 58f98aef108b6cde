/** Reconnect timing, CONNACK classification, broker settings from config/payload, session numbers. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { brokerUrlsFromPayload, normalizeBrokerUrl, resolveBrokerSettings } from '../../agent/src/health/broker-settings';
import { describeReasonCode, isIdentityRefusal, reconnectDelayMs } from '../../agent/src/health/reconnect-policy';
import { nextSession, PersistedSessionCounter } from '../../agent/src/health/session';
import { parseConfig } from '../../agent/src/config';
import { silentLogger } from '../../agent/src/log';
import { RootedPaths } from '../../agent/src/paths';

const timing = { baseMs: 1_000, capMs: 60_000 };

test('full jitter: uniform below min(cap, base·2^(n-1)); the cap holds', () => {
  assert.equal(reconnectDelayMs(1, false, timing, () => 0), 0);
  assert.equal(reconnectDelayMs(1, false, timing, () => 0.5), 500);
  assert.equal(reconnectDelayMs(3, false, timing, () => 0.5), 2_000);
  assert.equal(reconnectDelayMs(30, false, timing, () => 0.5), 30_000);
  assert.equal(reconnectDelayMs(30, false, timing, () => 0.999999), 59_999);
  const spread = new Set(Array.from({ length: 200 }, () => reconnectDelayMs(8, false, timing)));
  assert.ok(spread.size > 150, 'attempts of a fleet spread out');
  for (const d of spread) assert.ok(d >= 0 && d < 60_000);
});

test('identity refusals wait long (default 10 × cap, in [½, 1] of it)', () => {
  assert.equal(reconnectDelayMs(1, true, timing, () => 0), 300_000);
  assert.equal(reconnectDelayMs(1, true, timing, () => 0.999), 599_700);
  assert.equal(reconnectDelayMs(1, true, { ...timing, refusedRetryMs: 1_000 }, () => 0.5), 750);
});

test('CONNACK codes: which are identity refusals, and how they read', () => {
  for (const c of [0x86, 0x87, 0x8a, 0x8c, 0x85]) assert.equal(isIdentityRefusal(c, 5), true, c.toString(16));
  for (const c of [0x88, 0x89, 0x8b, 0x9f]) assert.equal(isIdentityRefusal(c, 5), false, c.toString(16));
  for (const c of [2, 4, 5]) assert.equal(isIdentityRefusal(c, 4), true);
  for (const c of [1, 3]) assert.equal(isIdentityRefusal(c, 4), false);
  assert.equal(describeReasonCode(0x86, 5), 'reason code 0x86 bad user name or password');
  assert.equal(describeReasonCode(5, 4), 'return code 5 not authorized');
  assert.equal(describeReasonCode(0x42, 5), 'reason code 0x42 unknown reason');
});

test('broker URLs from the payload, Stratos style', () => {
  assert.equal(normalizeBrokerUrl('tcp://10.0.0.1:1883', 'x'), 'mqtt://10.0.0.1:1883');
  assert.equal(normalizeBrokerUrl('ssl://mb.example:8883/', 'x'), 'mqtts://mb.example:8883');
  assert.throws(() => normalizeBrokerUrl('http://h:1', 'payload MB_URLS[0]'), /payload MB_URLS\[0\]: unsupported scheme "http:\/\/"/);
  assert.throws(() => normalizeBrokerUrl('tcp://u:p@h:1', 'w'), /must not carry credentials/);
  assert.throws(() => normalizeBrokerUrl('tcp://h:99999', 'w'), /invalid host or port/);
  assert.deepEqual(brokerUrlsFromPayload(new Map([['MB_URLS', 'tcp://a:1883, tcp://b:1884']])), { urls: ['mqtt://a:1883', 'mqtt://b:1884'], origin: 'payload MB_URLS' });
  assert.deepEqual(brokerUrlsFromPayload(new Map([['MB_IP', '10.1.1.1']])), { urls: ['mqtt://10.1.1.1:1883'], origin: 'payload MB_IP' });
  assert.deepEqual(brokerUrlsFromPayload(new Map([['MB_IP', 'fd00::1'], ['MB_PORT', '1999']]))?.urls, ['mqtt://[fd00::1]:1999']);
  assert.throws(() => brokerUrlsFromPayload(new Map([['MB_IP', 'h'], ['MB_PORT', 'x']])), /payload MB_PORT: "x" is not a port number/);
  assert.equal(brokerUrlsFromPayload(new Map()), null);
});

test('resolveBrokerSettings: config wins, payload credentials, files under --root, clear errors', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'health-settings-'));
  const paths = new RootedPaths(root);
  const vars = new Map([['MB_URLS', 'tcp://p:1883'], ['MB_USERNAME', 'pu'], ['MB_PASSWORD', 'ppw']]);
  const fromPayload = resolveBrokerSettings(parseConfig({}).health, vars, paths);
  assert.deepEqual({ ...fromPayload }, { urls: ['mqtt://p:1883'], username: 'pu', password: 'ppw', caFile: null, certFile: null, keyFile: null, protocolVersion: 5, keepaliveS: 30, origin: 'payload MB_URLS' });
  assert.equal(resolveBrokerSettings(parseConfig({}).health, new Map(), paths), null, 'no broker anywhere: reporting off');

  writeFileSync(path.join(root, 'pw'), 'secret\n');
  const cfg = parseConfig({ health: { brokerUrls: ['mqtts://c:8883'], username: 'cu', passwordFile: '/pw', protocolVersion: '3.1.1' } }).health;
  const s = resolveBrokerSettings(cfg, vars, paths);
  assert.deepEqual([s?.urls, s?.username, s?.password, s?.protocolVersion], [['mqtts://c:8883'], 'cu', 'secret', 4]);

  assert.throws(() => resolveBrokerSettings(parseConfig({ health: { brokerUrls: ['mqtt://c:1'], caFile: '/missing.pem' } }).health, vars, paths), (e: Error) => /config key "health.caFile": cannot read .*missing\.pem: ENOENT/.test(e.message));
  assert.throws(() => resolveBrokerSettings(parseConfig({ health: { brokerUrls: ['mqtt://c:1'], certFile: '/pw' } }).health, vars, paths), /health.keyFile.*needs both/);
  assert.throws(() => resolveBrokerSettings(parseConfig({}).health, new Map([['MB_IP', 'h'], ['MB_PASSWORD', 'x']]), paths), (e: Error) => /health.username/.test(e.message) && !e.message.includes('"x"'));
  rmSync(root, { recursive: true, force: true });
});

test('session numbers only grow: persisted counter, wall clock as floor', () => {
  assert.equal(nextSession(5, 3), 6);
  assert.equal(nextSession(5, 1_000), 1_000);
  assert.equal(nextSession(2_000, 1_000), 2_001, 'a clock behind the last boot still moves forward');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'health-session-'));
  const file = path.join(dir, 'state', 'mqtt-session');
  let clock = 1_000;
  const a = new PersistedSessionCounter(file, silentLogger(), () => clock);
  assert.deepEqual([a.next(), a.next()], [1_000, 1_001]);
  assert.equal(readFileSync(file, 'utf8'), '1001\n');
  clock = 10; // rebooted with a wrong clock
  const b = new PersistedSessionCounter(file, silentLogger(), () => clock);
  assert.equal(b.next(), 1_002);
  writeFileSync(file, 'garbage');
  assert.equal(new PersistedSessionCounter(file, silentLogger(), () => 77).next(), 77, 'unreadable counter: the clock still gives a sane floor');
  rmSync(dir, { recursive: true, force: true });
});
