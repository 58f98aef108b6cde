/**
 * When to try the broker again. Pure.
 *
 * mqtt.js only knows a fixed reconnectPeriod; a fleet whose broker restarts would reconnect in
 * lockstep. We run mqtt.js with reconnectPeriod 0 and schedule attempts ourselves with full
 * jitter: uniform in [0, min(cap, base·2^n)).
 *
 * A CONNACK refusing us for who we are (bad credentials, not authorized, banned, bad auth
 * method, client id rejected) will not change by retrying soon: the credential was revoked or
 * is wrong. Those are reported and retried only after `refusedRetryMs` (default 10 × cap, i.e.
 * 10 min at the default cap), in [½, 1] × that, so a credential fixed by the controller is
 * eventually picked up without the agent hammering the broker meanwhile. Other refusals
 * (server unavailable/busy/shutting down) back off like a network error.
 */
import { backoffDelayMs } from '../payload/backoff';

/** MQTT 5 CONNACK reason codes and MQTT 3.1.1 return codes meaning "you may not connect". */
const IDENTITY_REFUSALS_V5 = new Set([0x85, 0x86, 0x87, 0x8a, 0x8c]);
const IDENTITY_REFUSALS_V3 = new Set([2, 4, 5]);

const REASONS: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad username or password',
  5: 'not authorized',
  0x80: 'unspecified error',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x83: 'implementation specific error',
  0x84: 'unsupported protocol version',
  0x85: 'client identifier not valid',
  0x86: 'bad user name or password',
  0x87: 'not authorized',
  0x88: 'server unavailable',
  0x89: 'server busy',
  0x8a: 'banned',
  0x8b: 'server shutting down',
  0x8c: 'bad authentication method',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over',
  0x90: 'topic name invalid',
  0x95: 'packet too large',
  0x97: 'quota exceeded',
  0x99: 'payload format invalid',
  0x9a: 'retain not supported',
  0x9b: 'QoS not supported',
  0x9c: 'use another server',
  0x9d: 'server moved',
  0x9f: 'connection rate exceeded',
};

/** `0x86 bad user name or password` (v5) / `4 bad username or password` (v3). */
export function describeReasonCode(code: number, protocolVersion: 4 | 5): string {
  const text = (protocolVersion === 5 || code < 6 ? REASONS[code] : undefined) ?? 'unknown reason';
  return protocolVersion === 5 ? `reason code 0x${code.toString(16).padStart(2, '0')} ${text}` : `return code ${code} ${text}`;
}

export function isIdentityRefusal(code: number, protocolVersion: 4 | 5): boolean {
  return protocolVersion === 5 ? IDENTITY_REFUSALS_V5.has(code) : IDENTITY_REFUSALS_V3.has(code);
}

export interface ReconnectTiming {
  baseMs: number;
  capMs: number;
  /** Wait after an identity refusal; default 10 × capMs. */
  refusedRetryMs?: number;
}

/**
 * Delay before the next connect attempt. `failures` counts consecutive failed attempts
 * (1 after the first failure); `refused` is set when the last CONNACK refused our identity.
 */
export function reconnectDelayMs(failures: number, refused: boolean, t: ReconnectTiming, random: () => number = Math.random): number {
  if (refused) {
    const long = t.refusedRetryMs ?? t.capMs * 10;
    return Math.floor(long / 2 + random() * (long / 2));
  }
  return backoffDelayMs(Math.max(0, failures - 1), t.baseMs, t.capMs, random);
}
