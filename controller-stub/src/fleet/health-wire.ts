/**
 * Validating a health report as the controller receives it. The wire types and the other
 * validators live in agent/src/protocol/mqtt.ts; the agent never parses health reports, so
 * this one lives on the consumer side. It checks what the fleet table reads (session, seq,
 * load, mem, listening, firewall) and leaves the rest as sent.
 */
import { WIRE_VERSION, WireFormatError, type HealthReport } from '../../../agent/src/protocol/mqtt';

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);

export function parseHealthReport(topic: string, body: Buffer | string): HealthReport {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new WireFormatError(topic, `not JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new WireFormatError(topic, 'not a JSON object');
  const bad = (field: string, what: string, got: unknown): never => {
    throw new WireFormatError(topic, `field "${field}" must be ${what}, got ${JSON.stringify(got) ?? 'nothing'}`);
  };
  if (value.v !== WIRE_VERSION) throw new WireFormatError(topic, `unsupported wire version ${JSON.stringify(value.v)} (expected ${WIRE_VERSION})`);
  for (const key of ['session', 'seq', 'ts'] as const) if (!isCount(value[key])) bad(key, 'a non-negative integer', value[key]);
  const load = value.load;
  if (!Array.isArray(load) || load.length !== 3 || !load.every(isNumber)) bad('load', 'three numbers', load);
  const mem = value.mem;
  if (!isObject(mem) || !isNumber(mem.totalB) || !isNumber(mem.availB)) bad('mem', '{ totalB, availB } numbers', mem);
  const listening = value.listening;
  if (!Array.isArray(listening)) bad('listening', 'an array', listening);
  (listening as unknown[]).forEach((p, i) => {
    if (!isObject(p) || !isCount(p.port) || typeof p.loopback !== 'boolean' || typeof p.allowed !== 'boolean') {
      bad(`listening[${i}]`, '{ port, loopback, allowed }', p);
    }
  });
  const fw = value.firewall;
  if (fw !== null && fw !== undefined) {
    if (!isObject(fw) || typeof fw.mode !== 'string' || !isCount(fw.ruleCount)) bad('firewall', 'null or { mode, backend, ruleCount, ... }', fw);
  }
  return value as unknown as HealthReport;
}
