/**
 * The shipped JSON Schema (packaging/generated/agent.schema.json) checked by a real JSON Schema
 * validator, python3-jsonschema (Debian's package; .ci/run installs it; the agent bundle carries
 * no schema library): the schema is a valid draft-07 schema, the shipped default config, the
 * docs' examples and the effective configs are valid, and for bad configs the schema and the
 * agent's own validator agree — both refuse, at the same key.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parseConfig } from '../../agent/src/config';
import { ConfigError } from '../../agent/src/errors';
import { REPO } from '../../scripts/gen-docs';
import { hasCommand, requireFile } from '../helpers/env';

const SCHEMA = path.join(REPO, 'packaging/generated/agent.schema.json');

// Reads {"schema": …, "instances": […]} on stdin; prints one line per instance: "ok", or the
// best-matching error's path (dotted, [i] for items) and message.
const CHECKER = `
import json, sys
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
req = json.load(sys.stdin)
Draft7Validator.check_schema(req["schema"])
v = Draft7Validator(req["schema"])
for inst in req["instances"]:
    err = best_match(v.iter_errors(inst))
    if err is None:
        print(json.dumps({"ok": True}))
    else:
        p = "".join(("[%d]" % x) if isinstance(x, int) else ("." + x) for x in err.absolute_path).lstrip(".")
        print(json.dumps({"ok": False, "path": p, "message": err.message}))
`;

type Verdict = { ok: true } | { ok: false; path: string; message: string };

function jsonschemaAvailable(): boolean {
  return hasCommand('python3') && spawnSync('python3', ['-c', 'import jsonschema'], { stdio: 'ignore' }).status === 0;
}

function checkWithJsonschema(instances: unknown[]): Verdict[] {
  const r = spawnSync('python3', ['-c', CHECKER], {
    input: JSON.stringify({ schema: JSON.parse(readFileSync(SCHEMA, 'utf8')), instances }),
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Verdict);
}

function ready(t: TestContext): boolean {
  return requireFile(t, jsonschemaAvailable() ? 'jsonschema' : null, "needs python3 with jsonschema (Debian's python3-jsonschema; .ci/run installs it)");
}

/** The validator's verdict: null when valid, else the dotted key it names. */
function agentKey(raw: unknown): string | null {
  try {
    parseConfig(raw);
    return null;
  } catch (err) {
    if (err instanceof ConfigError) return err.key;
    throw err;
  }
}

/** Every ```json block of docs/config.md: the docs' agent.json examples. */
function docExamples(): unknown[] {
  const md = readFileSync(path.join(REPO, 'docs/config.md'), 'utf8');
  return [...md.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] as string));
}

const BAD: unknown[] = [
  [],
  { exports: {} },
  { sources: { personaliy: {} } },
  { firewall: { guard: { enabeld: true } } },
  { sources: { waitSeconds: '5' } },
  { sources: { waitSeconds: -1 } },
  { sources: { waitSeconds: 1.5 } },
  { health: { intervalSeconds: 0 } },
  { payload: { maxBytes: 64 * 1024 * 1024 + 1 } },
  { export: { mode: '0644' } },
  { export: { mode: 640 } },
  { export: { group: '1abc' } },
  { sources: { order: [] } },
  { sources: { order: ['ec2', 'ec2'] } },
  { sources: { order: ['personality', 'nosuch'] } },
  { payload: { allowNames: ['lower'] } },
  { sources: { ec2: { baseUrl: 'ftp://x' } } },
  { sources: { ec2: { baseUrl: 'http://' } } },
  { sources: { cloudstack: { dataServerName: '-bad' } } },
  { health: { brokerUrls: ['http://broker'] } },
  { health: { topicPrefix: 'a/#' } },
  { health: { topicPrefix: 'a/' } },
  { hooks: { dir: null } },
  { hooks: { dir: 'relative' } },
  { readiness: { enabled: 'yes' } },
  { firewall: { alwaysAllow: [''] } },
  { firewall: 'enforce' },
  { $schema: 5 },
];

const GOOD: unknown[] = [
  {},
  { sources: { cloudstack: { baseUrl: null, dataServerName: null, routeFile: null } } },
  { export: { group: 'Admins$', envFile: null }, health: { protocolVersion: '3.1.1', brokerUrls: ['mqtts://b.example:8883'] } },
  { sources: { ec2: { baseUrl: 'http://[fd00::1]:8080/' } }, log: { level: 'silent' } },
];

describe('the JSON Schema, checked by python3-jsonschema', () => {
  it('is a valid draft-07 schema and accepts the shipped default config, the docs examples and the effective configs', (t) => {
    if (!ready(t)) return;
    const shipped = JSON.parse(readFileSync(path.join(REPO, 'agent/bootstrap/agent.json'), 'utf8'));
    const examples = docExamples();
    assert.ok(examples.length >= 1, 'docs/config.md has an example');
    // What `config check` prints (every key, defaults filled in) must itself be a valid file.
    const effective = [parseConfig({}), parseConfig(shipped), ...examples.map((e) => parseConfig(e))];
    const all = [shipped, ...examples, ...effective, ...GOOD];
    for (const c of all) assert.equal(agentKey(c), null, `the agent accepts ${JSON.stringify(c).slice(0, 80)}`);
    assert.deepEqual(checkWithJsonschema(all), all.map(() => ({ ok: true })));
  });

  it('refuses what the agent refuses, at the key the agent names', (t) => {
    if (!ready(t)) return;
    const verdicts = checkWithJsonschema(BAD);
    BAD.forEach((bad, i) => {
      const key = agentKey(bad);
      const v = verdicts[i] as Verdict;
      const what = JSON.stringify(bad);
      assert.notEqual(key, null, `the agent refuses ${what}`);
      assert.equal(v.ok, false, `the schema refuses ${what}`);
      if (v.ok) return;
      // The schema reports an unknown key at its object and a duplicate at its array; the agent
      // names the key or the item itself. Everything else: the same key.
      const agentAt = key === '(top level)' ? '' : (key as string);
      const within = v.path === '' || agentAt.startsWith(`${v.path}.`) || agentAt.startsWith(`${v.path}[`);
      assert.ok(agentAt === v.path || within, `${what}: agent names "${key}", schema "${v.path}" (${v.message})`);
      if (v.path !== agentAt) assert.match(v.message, /Additional properties are not allowed|non-unique elements/, `${what}: ${v.message}`);
    });
  });

  it("agrees with the agent's cross-field rule only where a schema can: backoffCapMs < backoffBaseMs passes the schema (documented)", (t) => {
    if (!ready(t)) return;
    const raw = { payload: { fetch: { backoffBaseMs: 500, backoffCapMs: 100 } } };
    assert.equal(agentKey(raw), 'payload.fetch.backoffCapMs');
    assert.deepEqual(checkWithJsonschema([raw]), [{ ok: true }]);
    assert.match(readFileSync(SCHEMA, 'utf8'), /backoffCapMs >= backoffBaseMs/);
  });
});
