/**
 * Wiring from config + payload to a ready (not started) HealthReporter, for the daemon. The
 * pieces stay separately constructible for tests and other wiring.
 */
import path from 'node:path';
import type { AgentConfig } from '../config';
import type { Logger } from '../log';
import type { RootedPaths } from '../paths';
import { memberClientId, memberIdFromPayload, memberTopics, type MemberId } from '../protocol/mqtt';
import { resolveBrokerSettings, type BrokerSettings } from './broker-settings';
import { MqttConnection } from './connection';
import { MetricsCollector } from './metrics';
import { HealthReporter, type HealthContext } from './reporter';
import { PersistedSessionCounter, SESSION_FILE } from './session';

export interface CreateHealthReporterInput {
  config: AgentConfig;
  paths: RootedPaths;
  vars: ReadonlyMap<string, string>;
  /** From the pointer source; the member id fallback when the payload has no MEMBER_ID/INSTANCE_ID. */
  instanceId: string;
  agentVersion: string;
  log: Logger;
  context: () => HealthContext;
}

/** null when neither config nor payload names a broker (reporting is off; the caller logs that). */
export function createHealthReporter(input: CreateHealthReporterInput): { reporter: HealthReporter; connection: MqttConnection; member: MemberId; settings: BrokerSettings } | null {
  const { config, paths, vars, log } = input;
  const h = config.health;
  const settings = resolveBrokerSettings(h, vars, paths);
  if (!settings) return null;
  const member = memberIdFromPayload(vars, input.instanceId);
  const topics = memberTopics(h.topicPrefix, member);
  const connection = new MqttConnection({
    settings,
    clientId: memberClientId(member),
    statusTopic: topics.status,
    sessions: new PersistedSessionCounter(path.join(paths.resolve(config.state.dir), SESSION_FILE), log),
    agentVersion: input.agentVersion,
    intervalS: h.intervalSeconds,
    timing: { baseMs: h.reconnectBaseMs, capMs: Math.max(h.reconnectCapMs, h.reconnectBaseMs) },
    log: log.child({ component: 'mqtt' }),
  });
  const reporter = new HealthReporter({
    connection,
    metrics: new MetricsCollector(paths),
    topics,
    context: input.context,
    intervalS: h.intervalSeconds,
    bufferMessages: h.bufferMessages,
    stratosEvents: h.stratosEvents,
    agentVersion: input.agentVersion,
    log: log.child({ component: 'health' }),
  });
  return { reporter, connection, member, settings };
}
