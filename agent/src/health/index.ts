/** MQTT health reporting: what the daemon wires together (see reporter.ts, connection.ts). */
export { resolveBrokerSettings, normalizeBrokerUrl, brokerUrlsFromPayload, type BrokerSettings, type HealthConfig } from './broker-settings';
export { MqttConnection, PublishRefusedError, NotConnectedError, type MqttConnectionDeps, type ConnectionSnapshot } from './connection';
export { MetricsCollector, allowPredicateFromPolicy, type AllowPredicate, type MachineMetrics } from './metrics';
export { Outbox, type OutboxMessage, type OutboxEntry, type DropCounts } from './outbox';
export { reconnectDelayMs, describeReasonCode, isIdentityRefusal, type ReconnectTiming } from './reconnect-policy';
export { HealthReporter, type HealthReporterDeps, type HealthContext, type HealthStatus } from './reporter';
export { PersistedSessionCounter, nextSession, SESSION_FILE, type SessionSource } from './session';
export { createHealthReporter, type CreateHealthReporterInput } from './create';
