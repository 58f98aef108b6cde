/**
 * The fleet side of the controller stub: the contract the rest of controller-stub uses.
 * - FleetTracker: MQTT subscriptions → member states (ONLINE/STALE/OFFLINE/GONE), rows and metrics.
 * - EmbeddedBroker: aedes on a port (MQTT 3.1.1), optional auth and per-member ACL (member-acl.ts).
 * The state machine itself (state.ts, book.ts) is exported for tests and tools.
 */
export type { MemberState } from './state';
export { MEMBER_STATES, DEFAULT_INTERVAL_S, STALE_INTERVALS } from './state';
export type { FleetRow, FleetMetrics } from './book';
export { FleetBook, firewallSummary } from './book';
export { FleetTracker, type FleetTrackerDeps } from './tracker';
export { EmbeddedBroker, type EmbeddedBrokerOptions } from './broker';
export { mayPublish, maySubscribe, mayUseClientId, memberPublishTopics, memberSubscribeFilters, STRATOS_TOPICS, type BrokerLogin, type MemberAclRules } from './member-acl';
export { parseHealthReport } from '../../../agent/src/protocol/mqtt';
