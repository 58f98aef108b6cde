/**
 * A member's payload as register accepts it (pure): from a file's text or from KEY=VALUE
 * flags, checked with the AGENT's own parser, name validator, allowlist parser and export
 * check (imported, not copied) so a payload an agent with the default config would refuse is
 * refused here, at register time, with the agent's error.
 */
import { parseConfig } from '../../agent/src/config';
import { assertExportable } from '../../agent/src/export/exportable';
import { buildPolicy } from '../../agent/src/firewall/allowlist';
import { buildPayload } from '../../agent/src/payload';
import { parsePayload } from '../../agent/src/payload/parse';
import type { PayloadFormat } from '../../agent/src/payload/types';
import { memberIdFromPayload } from '../../agent/src/protocol/mqtt';
import { ControllerError, ControllerExit, describeError } from './errors';

/** An agent with the default config (agent/src/config.ts): what every image accepts unless its config says more. */
const AGENT_DEFAULTS = parseConfig({});
export const AGENT_PAYLOAD_LIMITS = { maxKeys: AGENT_DEFAULTS.payload.maxKeys, maxBytes: AGENT_DEFAULTS.payload.maxBytes } as const;

export interface PreparedPayload {
  /** The exact text served (and signed). */
  text: string;
  format: PayloadFormat;
  keys: string[];
}

export interface PayloadCheckOptions {
  /** Names the image's agent config allows beyond the default (payload.allowNames). */
  allowNames?: readonly string[];
}

function payloadError(message: string): ControllerError {
  return new ControllerError(message, ControllerExit.PAYLOAD);
}

/**
 * An id register takes: 1-128 of A-Z a-z 0-9 . _ : @ = -. The wire takes any id (topics encode
 * it, agent/src/protocol/mqtt.ts), but these ids are also URL path segments and mosquitto
 * usernames, so register keeps to Stratos-style ids.
 */
export function isCleanId(value: string): boolean {
  return /^[A-Za-z0-9._:@=-]{1,128}$/.test(value);
}

/** `--cluster` / `--member` become MQTT topic levels and URL path segments: they must already be clean. */
export function checkMemberIds(clusterId: string, memberId: string): void {
  for (const [flag, value] of [['--cluster', clusterId], ['--member', memberId]] as const) {
    if (!isCleanId(value)) {
      throw payloadError(`${flag} ${JSON.stringify(value)} is not a valid id: use 1-128 characters of A-Z a-z 0-9 . _ : @ = -`);
    }
  }
}

/**
 * KEY=VALUE flags → a JSON payload (JSON keeps any value byte-exact: commas, `|`, newlines,
 * quotes). CLUSTER_ID and MEMBER_ID are added from the ids unless given, so the agent
 * reports under the ids the fleet table shows.
 */
export function payloadFromAssignments(assignments: readonly string[], clusterId: string, memberId: string): string {
  const vars = new Map<string, string>();
  for (const a of assignments) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw payloadError(`--set ${JSON.stringify(a.split('=')[0])}: expected KEY=VALUE`);
    const key = a.slice(0, eq);
    if (vars.has(key)) throw payloadError(`--set ${key} is given twice`);
    vars.set(key, a.slice(eq + 1));
  }
  if (vars.size === 0) throw payloadError('no --set KEY=VALUE given');
  const out: Record<string, string> = {};
  if (!vars.has('CLUSTER_ID')) out.CLUSTER_ID = clusterId;
  if (!vars.has('MEMBER_ID')) out.MEMBER_ID = memberId;
  for (const [k, v] of vars) out[k] = v;
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** Validate with the agent's parser and check the payload's ids match the member's. */
export function preparePayload(text: string, clusterId: string, memberId: string, opts: PayloadCheckOptions = {}): PreparedPayload {
  checkMemberIds(clusterId, memberId);
  const bytes = Buffer.from(text, 'utf8');
  let payload;
  try {
    // The checks the agent's boot makes before it writes anything: names and limits, the
    // allowlist (PORTS, PORT_MAPPINGS, FIREWALL_ALLOW; every agent with a firewall parses it),
    // and whether every value can be exported.
    payload = buildPayload(bytes, { format: 'auto', allowNames: opts.allowNames ?? [], ...AGENT_PAYLOAD_LIMITS });
    buildPolicy(payload.vars, AGENT_DEFAULTS.firewall);
    assertExportable(payload.vars);
  } catch (err) {
    throw payloadError(`the agent would refuse this payload: ${describeError(err)}`);
  }
  // The agent reports health under the payload's CLUSTER_ID / MEMBER_ID (or INSTANCE_ID);
  // a mismatch would make the member show up twice in the fleet, once never reporting.
  const reported = memberIdFromPayload(payload.vars, memberId);
  if (reported.clusterId !== clusterId || reported.memberId !== memberId) {
    throw payloadError(
      `the payload makes the agent report as ${reported.clusterId}/${reported.memberId}, not ${clusterId}/${memberId}: ` +
        'set CLUSTER_ID and MEMBER_ID in the payload to the --cluster and --member values',
    );
  }
  return { text, format: payload.format, keys: [...payload.vars.keys()] };
}

/** MB_USERNAME / MB_PASSWORD of a member's payload, as the agent will log in with them (null: none). */
export function memberCredentials(m: { payload: string }): { username: string; password: string } | null {
  try {
    const vars = new Map(parsePayload(Buffer.from(m.payload), 'auto').entries);
    const username = vars.get('MB_USERNAME');
    const password = vars.get('MB_PASSWORD');
    return username && password ? { username, password } : null;
  } catch {
    return null;
  }
}
