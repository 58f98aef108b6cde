import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { applyEnvOverrides, loadConfig, parseConfig } from '../../agent/src/config';
import { ConfigError } from '../../agent/src/errors';
import { RootedPaths } from '../../agent/src/paths';

function errorKey(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.key;
  }
  assert.fail('expected a ConfigError');
}

test('an empty config gives the documented defaults', () => {
  const cfg = parseConfig({});
  assert.deepEqual(cfg.sources.order, ['personality', 'configdrive', 'nocloud']);
  assert.equal(cfg.sources.waitSeconds, 60);
  assert.deepEqual(cfg.sources.personality.paths, ['/etc/cartridge-agent/payload-url']);
  assert.equal(cfg.export.envFile, '/run/cartridge-agent/payload.env');
  assert.equal(cfg.export.shFile, '/etc/profile.d/cartridge-agent.sh');
  assert.equal(cfg.export.launchParamsFile, null);
  assert.equal(cfg.payload.publicKey, null);
  assert.equal(cfg.sources.ec2.baseUrl, 'http://169.254.169.254');
});

test('nested values override defaults without losing sibling defaults', () => {
  const cfg = parseConfig({ sources: { ec2: { retries: 5 } }, payload: { fetch: { deadlineSeconds: 5 } } });
  assert.equal(cfg.sources.ec2.retries, 5);
  assert.equal(cfg.sources.ec2.connectTimeoutMs, 1000);
  assert.equal(cfg.payload.fetch.deadlineSeconds, 5);
  assert.equal(cfg.payload.fetch.backoffBaseMs, 250);
});

test('invalid values name the offending key', () => {
  assert.equal(errorKey(() => parseConfig({ sources: { order: ['personality', 'nosuch'] } })), 'sources.order[1]');
  assert.equal(errorKey(() => parseConfig({ sources: { order: [] } })), 'sources.order');
  assert.equal(errorKey(() => parseConfig({ sources: { order: ['ec2', 'ec2'] } })), 'sources.order[1]');
  assert.equal(errorKey(() => parseConfig({ sources: { waitSeconds: -1 } })), 'sources.waitSeconds');
  assert.equal(errorKey(() => parseConfig({ sources: { waitSeconds: '5' } })), 'sources.waitSeconds');
  assert.equal(errorKey(() => parseConfig({ sources: { personality: { paths: ['relative/path'] } } })), 'sources.personality.paths[0]');
  assert.equal(errorKey(() => parseConfig({ sources: { ec2: { baseUrl: 'ftp://x' } } })), 'sources.ec2.baseUrl');
  assert.equal(errorKey(() => parseConfig({ payload: { allowNames: ['lower'] } })), 'payload.allowNames[0]');
  assert.equal(errorKey(() => parseConfig({ export: { mode: '0644' } })), 'export.mode');
  assert.equal(errorKey(() => parseConfig({ log: { level: 'loud' } })), 'log.level');
  assert.equal(errorKey(() => parseConfig([])), '(top level)');
  assert.equal(errorKey(() => parseConfig({ payload: { fetch: { backoffBaseMs: 500, backoffCapMs: 100 } } })), 'payload.fetch.backoffCapMs');
});

test('unknown keys are refused (a typo must not silently fall back to a default)', () => {
  assert.equal(errorKey(() => parseConfig({ sources: { personaliy: {} } })), 'sources.personaliy');
  assert.throws(() => parseConfig({ exports: {} }), /known keys here: sources, payload, export, firewall, health, readiness, hooks, state, log/);
});

test('the message names the file and the key', () => {
  assert.throws(() => parseConfig({ sources: { waitSeconds: 'x' } }, '/etc/cartridge-agent/agent.json'), {
    message: '/etc/cartridge-agent/agent.json: config key "sources.waitSeconds": expected an integer from 0 to 3600, got "x"',
  });
});

test('environment overrides apply before validation and are reported under their key', () => {
  const raw = applyEnvOverrides({ log: { level: 'info' } }, { CARTRIDGE_AGENT_LOG_LEVEL: 'debug', CARTRIDGE_AGENT_SOURCES: 'ec2, nocloud' });
  const cfg = parseConfig(raw);
  assert.equal(cfg.log.level, 'debug');
  assert.deepEqual(cfg.sources.order, ['ec2', 'nocloud']);
  assert.equal(errorKey(() => parseConfig(applyEnvOverrides({}, { CARTRIDGE_AGENT_WAIT_SECONDS: 'soon' }))), 'sources.waitSeconds');
});

test('loadConfig resolves the file under --root; default path may be missing, an explicit one may not', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-config-'));
  const paths = new RootedPaths(root);
  assert.equal(loadConfig(paths, undefined, {}).file, null);
  assert.throws(() => loadConfig(paths, '/etc/other.json', {}), /cannot read config/);
  mkdirSync(path.join(root, 'etc/cartridge-agent'), { recursive: true });
  writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), '{"sources": {"waitSeconds": 3}}');
  const loaded = loadConfig(paths, undefined, {});
  assert.equal(loaded.config.sources.waitSeconds, 3);
  assert.equal(loaded.file, path.join(root, 'etc/cartridge-agent/agent.json'));
  writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), '{"sources": ');
  assert.throws(() => loadConfig(paths, undefined, {}), /not valid JSON/);
});

test('under --root the host block devices are not scanned unless the config says so', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'ca-config-'));
  assert.equal(loadConfig(new RootedPaths(root), undefined, {}).config.sources.scanDevices, false);
  assert.equal(parseConfig({}).sources.scanDevices, true);
  mkdirSync(path.join(root, 'etc/cartridge-agent'), { recursive: true });
  writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), '{"sources": {"scanDevices": true}}');
  assert.equal(loadConfig(new RootedPaths(root), undefined, {}).config.sources.scanDevices, true);
});

test('firewall defaults: enforce with SSH always allowed; plan under --root unless configured', () => {
  const cfg = parseConfig({});
  assert.equal(cfg.firewall.mode, 'enforce');
  assert.deepEqual(cfg.firewall.alwaysAllow, ['tcp/22']);
  assert.equal(errorKey(() => parseConfig({ firewall: { mode: 'on' } })), 'firewall.mode');
  const root = mkdtempSync(path.join(tmpdir(), 'ca-config-'));
  assert.equal(loadConfig(new RootedPaths(root), undefined, {}).config.firewall.mode, 'plan');
  mkdirSync(path.join(root, 'etc/cartridge-agent'), { recursive: true });
  writeFileSync(path.join(root, 'etc/cartridge-agent/agent.json'), '{"firewall": {"mode": "off"}}');
  assert.equal(loadConfig(new RootedPaths(root), undefined, {}).config.firewall.mode, 'off');
});
