/**
 * Who may do what on the broker (pure): the one rule both the embedded broker's hooks and the
 * generated mosquitto ACL (mosquitto-config.ts) enforce.
 *
 * A member logs in with its member id as username. Then:
 * - its MQTT client id is its member id (the agent's own choice, agent/src/health/create.ts),
 *   so nobody else can connect as it, take over its session or fire its will;
 * - it publishes only `<prefix>/<its cluster>/<its member id>/status|health|event` (its will
 *   included): the cluster is the one it was registered in, not any cluster it names;
 * - it subscribes only to its own status topic (the agent watches it for late wills).
 * Stratos' `instance/status/<EventName>` topics name no member, so no ACL can keep a member
 * from speaking for another there; they are allowed only when asked for (stratosEvents).
 */
import { DEFAULT_TOPIC_PREFIX, MEMBER_CHANNELS, memberTopic, STRATOS_EVENT_FOR, stratosTopic, type MemberId } from '../../../agent/src/protocol/mqtt';

/** A login the broker accepted: an operator (the controller, may do anything) or a member. */
export type BrokerLogin = { role: 'superuser' } | ({ role: 'member' } & MemberId);

export interface MemberAclRules {
  topicPrefix: string;
  /** Members may also publish Stratos' instance status events (not bound to the member). */
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
  return login.role === 'superuser' || clientId === login.memberId;
}

export function mayPublish(rules: MemberAclRules, login: BrokerLogin, topic: string): boolean {
  return login.role === 'superuser' || memberPublishTopics(rules, login).includes(topic);
}

export function maySubscribe(rules: MemberAclRules, login: BrokerLogin, filter: string): boolean {
  return login.role === 'superuser' || memberSubscribeFilters(rules, login).includes(filter);
}
