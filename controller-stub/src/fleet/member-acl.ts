/**
 * Who may do what on the broker (pure): the one rule both the embedded broker's hooks and the
 * generated mosquitto ACL (mosquitto-config.ts) enforce.
 *
 * A member logs in with its member id as username. Then:
 * - its MQTT client id is its encoded member id (memberClientId, the agent's own choice,
 *   agent/src/health/create.ts), so nobody else can connect as it, take over its session or
 *   fire its will;
 * - it publishes only `<prefix>/<its cluster>/<its member id>/status|health|event` (ids
 *   encoded as topic levels; its will included): the cluster is the one it was registered in,
 *   not any cluster it names;
 * - it subscribes only to its own status topic (the agent watches it for late wills).
 * Stratos' `instance/status/<EventName>` topics name no member. Where the broker can read the
 * message (the embedded broker: mayPublish with the body), a member may publish there only a
 * Stratos event whose `clusterId` and `memberId` are its own, so it cannot speak for another.
 * A broker that checks topics only (the generated mosquitto ACL) allows them only when asked
 * for (stratosEvents), and then any member can speak for another there.
 */
import {
  DEFAULT_TOPIC_PREFIX, MEMBER_CHANNELS, memberClientId, memberTopic, STRATOS_EVENT_FOR, stratosTopic, type MemberId,
} from '../../../agent/src/protocol/mqtt';

/** A login the broker accepted: an operator (the controller, may do anything) or a member. */
export type BrokerLogin = { role: 'superuser' } | ({ role: 'member' } & MemberId);

export interface MemberAclRules {
  topicPrefix: string;
  /** Members may also publish Stratos' instance status events (checked against the body where the broker can). */
  stratosEvents?: boolean;
}

export const DEFAULT_ACL_RULES: MemberAclRules = { topicPrefix: DEFAULT_TOPIC_PREFIX };

/** The Stratos topics the agent publishes (health.stratosEvents). */
export const STRATOS_TOPICS: readonly string[] = [...new Set(Object.values(STRATOS_EVENT_FOR))].map((name) => stratosTopic(name));

/** Topics a member may publish to (exact names: no wildcard reaches another member). */
export function memberPublishTopics(rules: MemberAclRules, id: MemberId): string[] {
  const own = MEMBER_CHANNELS.map((channel) => memberTopic(rules.topicPrefix, id, channel));
  return rules.stratosEvents ? [...own, ...STRATOS_TOPICS] : own;
}

export function memberSubscribeFilters(rules: MemberAclRules, id: MemberId): string[] {
  return [memberTopic(rules.topicPrefix, id, 'status')];
}

export function mayUseClientId(login: BrokerLogin, clientId: string): boolean {
  return login.role === 'superuser' || clientId === memberClientId(login);
}

/** A Stratos event body naming exactly this member (the agent sends the payload's raw CLUSTER_ID / MEMBER_ID). */
function speaksForItself(id: MemberId, body: Buffer | string): boolean {
  try {
    const v = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
    const { clusterId, memberId } = v as Record<string, unknown>;
    return clusterId === id.clusterId && memberId === id.memberId;
  } catch {
    return false;
  }
}

/**
 * May this login publish to `topic`? With `body` (a broker that sees the message), a Stratos
 * event must name the member itself; without it the topic alone decides (topic-only ACLs).
 */
export function mayPublish(rules: MemberAclRules, login: BrokerLogin, topic: string, body?: Buffer | string): boolean {
  if (login.role === 'superuser') return true;
  if (!memberPublishTopics(rules, login).includes(topic)) return false;
  return body === undefined || !STRATOS_TOPICS.includes(topic) || speaksForItself(login, body);
}

export function maySubscribe(rules: MemberAclRules, login: BrokerLogin, filter: string): boolean {
  return login.role === 'superuser' || memberSubscribeFilters(rules, login).includes(filter);
}
