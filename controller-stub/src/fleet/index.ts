/**
 * The fleet side of the controller stub: the contract the rest of controller-stub uses.
 * - FleetTracker: MQTT subscriptions → member states (ONLINE/STALE/OFFLINE/GONE), rows and metrics.
 * - EmbeddedBroker: aedes on a port (MQTT 3.1.1), optional auth and per-member ACL.
 * The state machine itself (state.ts, book.ts) is exported for tests and tools.
 */
export type { MemberState } from './state';
export { MEMBER_STATES, DEFAULT_INTERVAL_S, STALE_INTERVALS } from './state';
export type { FleetRow, FleetMetrics } from './book';
export { FleetBook, firewallSummary } from './book';
export { FleetTracker, type FleetTrackerDeps } from './tracker';
export { EmbeddedBroker, memberMayPublish, memberMaySubscribe, type EmbeddedBrokerOptions } from './broker';
export { parseHealthReport } from '../../../agent/src/protocol/mqtt';
