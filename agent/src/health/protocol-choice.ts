/**
 * Which MQTT version to CONNECT with, and what to say when a broker will not take it. Pure.
 *
 * Brokers that speak only 3.1.1 answer an MQTT 5 CONNECT differently: RabbitMQ 3.10 and
 * ActiveMQ 5.17 close the connection before any CONNACK, NATS 2.9 answers CONNACK 1
 * (unacceptable protocol version). So once, when the configured MQTT 5 is not accepted that
 * way, the next attempt uses 3.1.1; if the broker accepts it, 3.1.1 stays for the rest of the
 * run (the log says so, and to set health.protocolVersion). If 3.1.1 is not accepted either,
 * the protocol was not the cause: back to 5, and no second fallback.
 */

export type ProtocolVersion = 4 | 5;

export const versionName = (v: ProtocolVersion): string => (v === 5 ? 'MQTT 5' : 'MQTT 3.1.1');

export class ProtocolChoice {
  private state: 'configured' | 'trying-3.1.1' | 'on-3.1.1' | 'spent' = 'configured';

  constructor(readonly configured: ProtocolVersion) {}

  get version(): ProtocolVersion {
    return this.state === 'trying-3.1.1' || this.state === 'on-3.1.1' ? 4 : this.configured;
  }

  /** The broker closed before CONNACK or refused the protocol version; what changes for the next attempt. */
  notAccepted(): 'fall-back' | 'give-up' | null {
    if (this.state === 'configured' && this.configured === 5) {
      this.state = 'trying-3.1.1';
      return 'fall-back';
    }
    if (this.state === 'trying-3.1.1') {
      this.state = 'spent';
      return 'give-up';
    }
    return null;
  }

  /** CONNACK accepted: 'kept' the first time a fallback worked. */
  accepted(): 'kept' | null {
    if (this.state !== 'trying-3.1.1') return null;
    this.state = 'on-3.1.1';
    return 'kept';
  }
}

/** Why a broker closes a connection before CONNACK, most likely first, for the log. */
export function preConnackCauses(version: ProtocolVersion, tls: boolean): string {
  const causes = [
    ...(version === 5 ? ['the broker does not speak MQTT 5 (RabbitMQ 3.10, ActiveMQ 5.17, aedes: set health.protocolVersion "3.1.1")'] : []),
    'it refused something in the CONNECT without saying so (NATS drops a connection whose will topic it cannot map; some brokers close on a client id or credentials they refuse)',
    tls ? 'a TLS problem the broker did not report' : 'the port is not an MQTT listener (or expects TLS: use mqtts://)',
  ];
  return causes.join('; or ');
}

/** At most one `true` per interval: for warnings that would otherwise repeat on every attempt. */
export class RateLimit {
  private last = Number.NEGATIVE_INFINITY;
  constructor(readonly intervalMs: number) {}
  allow(now: number): boolean {
    if (now - this.last < this.intervalMs) return false;
    this.last = now;
    return true;
  }
}
