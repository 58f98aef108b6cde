/**
 * The controller's HTTP side (node:http, no framework):
 *   GET  /payload/<member>?token=…   the member's payload, signed (X-Cartridge-Signature);
 *                                    admitted by the token or by an instance credential
 *   GET  /api/members                registered members joined with the fleet tracker's rows
 *   GET  /metrics                    Prometheus text
 *   POST /api/members/<cluster>/<member>/terminate   admin: Authorization: Bearer <admin-token>
 * Refusals say which rule refused (expired, reused, …) and never echo the token.
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../agent/src/log';
import {
  decodeInstanceId, INSTANCE_CREDENTIAL_HEADER, INSTANCE_ID_HEADER, PAYLOAD_SIGNATURE_HEADER, REFUSAL_HEADER,
} from '../../agent/src/protocol/payload-http';
import { checkCredential, type CredentialRefusal } from './credentials';
import { ControllerError, ControllerExit, describeError } from './errors';
import type { FleetMetrics, FleetRow, MemberState } from './fleet';
import type { ControllerKeys } from './keys';
import type { MemberRecord, MemberStore } from './members';
import { isCleanId } from './member-payload';
import { VERSION } from '../../agent/src/protocol/version';
import { newHttpErrorCounters, newPayloadCounters, renderMetrics, type PayloadResult } from './metrics';
import { BadRequestError, parseRequestTarget } from './request-target';
import { admitToken, verifyToken, type TokenRefusal } from './tokens';

/** What http needs of the FleetTracker (structural, so tests can hand in a fake). */
export interface FleetView {
  rows(): FleetRow[];
  metrics(): FleetMetrics;
  terminate(id: { clusterId: string; memberId: string }): Promise<void>;
}

export interface ControllerHttpDeps {
  store: MemberStore;
  keys: ControllerKeys;
  fleet?: FleetView;
  log: Logger;
  now?: () => number;
}

/** One row of GET /api/members. */
export interface MemberView {
  clusterId: string;
  memberId: string;
  /** The fleet state; UNKNOWN for a registered member never heard; GONE once terminated. */
  state: MemberState;
  registration: { registeredAt: number; format: string; tokenExpiresAt: number; singleUse: boolean; tokenUsedAt: number | null; terminatedAt: number | null } | null;
  fleet: FleetRow | null;
}

export interface MembersResponse {
  fleetTracking: boolean;
  members: MemberView[];
}

const REFUSAL_RESULT: Record<TokenRefusal, PayloadResult> = {
  malformed: 'malformed', forged: 'forged', 'wrong-member': 'wrong_member', expired: 'expired', reused: 'reused', revoked: 'revoked',
};

const CREDENTIAL_REFUSAL_RESULT: Record<Exclude<CredentialRefusal, 'unknown-credential'>, PayloadResult> = {
  revoked: 'revoked', 'no-instance-id': 'no_instance_id', 'wrong-instance': 'wrong_instance',
};

const key = (clusterId: string, memberId: string) => `${clusterId}/${memberId}`;

export function joinMembers(records: MemberRecord[], rows: FleetRow[]): MemberView[] {
  const byKey = new Map(rows.map((r) => [key(r.clusterId, r.memberId), r]));
  const views: MemberView[] = records.map((m) => {
    const row = byKey.get(key(m.clusterId, m.memberId)) ?? null;
    byKey.delete(key(m.clusterId, m.memberId));
    const state: MemberState = m.terminatedAt !== null ? 'GONE' : (row?.state ?? 'UNKNOWN');
    return {
      clusterId: m.clusterId,
      memberId: m.memberId,
      state,
      registration: {
        registeredAt: m.registeredAt, format: m.format, tokenExpiresAt: m.token.expiresAtS * 1000,
        singleUse: m.token.singleUse, tokenUsedAt: m.token.usedAt, terminatedAt: m.terminatedAt,
      },
      fleet: row,
    };
  });
  // Members that report but were never registered here (another controller's, or a stray image).
  for (const row of byKey.values()) views.push({ clusterId: row.clusterId, memberId: row.memberId, state: row.state, registration: null, fleet: row });
  return views.sort((a, b) => a.clusterId.localeCompare(b.clusterId) || a.memberId.localeCompare(b.memberId));
}

function send(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(body);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value)}\n`, { 'content-type': 'application/json' });
}

function bearerToken(header: string | undefined): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? null;
}

function bearerMatches(header: string | undefined, expected: string): boolean {
  const given = bearerToken(header);
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

const CONTENT_TYPE_OF_FORMAT: Record<string, string> = {
  json: 'application/json', dotenv: 'text/plain; charset=utf-8', 'launch-params': 'text/plain; charset=utf-8',
};

export class ControllerHttp {
  readonly server: http.Server;
  readonly payloadRequests = newPayloadCounters();
  readonly httpErrors = newHttpErrorCounters();
  private readonly now: () => number;

  constructor(private readonly deps: ControllerHttpDeps) {
    this.now = deps.now ?? Date.now;
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err) => {
        const bad = err instanceof BadRequestError;
        const status = bad ? '400' : '500';
        this.httpErrors[status] = (this.httpErrors[status] ?? 0) + 1;
        if (req.url?.startsWith('/payload/')) this.payloadRequests.error++;
        const where = (req.url ?? '').split('?')[0]?.slice(0, 200);
        if (bad) deps.log.warn({ path: where }, `bad request: ${err.message}`);
        else deps.log.error({ err: describeError(err), path: where }, 'request failed');
        if (res.headersSent) res.destroy();
        else if (bad) send(res, 400, `bad request: ${err.message}\n`);
        else send(res, 500, 'internal error; see the controller log\n');
      });
    });
    // What node's parser refuses (a raw NUL in the request line, oversized headers) is answered
    // here as node would, but counted.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431' : '400';
      this.httpErrors[status] = (this.httpErrors[status] ?? 0) + 1;
      deps.log.warn({ code: err.code }, `bad request: ${err.message}`);
      const reason = status === '431' ? 'Request Header Fields Too Large' : 'Bad Request';
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad request: the HTTP request could not be parsed\n`);
    });
    // Agents fetch once per boot; idle keep-alive sockets only hold shutdown up.
    this.server.keepAliveTimeout = 1000;
  }

  /** Listen; resolves with the base URL (port 0 → the port the OS chose). */
  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new ControllerError(`cannot listen for HTTP on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`, ControllerExit.USAGE));
      };
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${shown}:${addr.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { pathname, parts, query } = parseRequestTarget(req.url);
    const url = { pathname, searchParams: query };
    const method = req.method ?? 'GET';
    if (parts[0] === 'payload' && parts.length === 2) {
      if (method !== 'GET') return send(res, 405, 'use GET\n', { allow: 'GET' });
      if (!isCleanId(parts[1] as string)) throw new BadRequestError('the path does not name a member id (1-128 characters of A-Z a-z 0-9 . _ : @ = -)');
      return this.servePayload(parts[1] as string, url.searchParams.get('token'), req, res);
    }
    if (url.pathname === '/api/members') {
      if (method !== 'GET') return send(res, 405, 'use GET\n', { allow: 'GET' });
      const body: MembersResponse = { fleetTracking: this.deps.fleet !== undefined, members: joinMembers(this.deps.store.list(), this.deps.fleet?.rows() ?? []) };
      return sendJson(res, 200, body);
    }
    if (url.pathname === '/metrics') {
      if (method !== 'GET') return send(res, 405, 'use GET\n', { allow: 'GET' });
      return send(res, 200, this.metricsText(), { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    }
    if (parts[0] === 'api' && parts[1] === 'members' && parts.length === 5 && parts[4] === 'terminate') {
      if (method !== 'POST') return send(res, 405, 'use POST\n', { allow: 'POST' });
      if (!bearerMatches(req.headers.authorization, this.deps.keys.adminToken)) {
        return send(res, 401, 'admin token required: Authorization: Bearer <contents of the state dir\'s admin-token>\n', { 'www-authenticate': 'Bearer' });
      }
      return this.terminate(parts[2] as string, parts[3] as string, res);
    }
    send(res, 404, 'not found\n');
  }

  metricsText(): string {
    const members = this.deps.store.list();
    const terminated = members.filter((m) => m.terminatedAt !== null).length;
    return renderMetrics({
      build: { version: VERSION, node: process.version },
      fleet: this.deps.fleet?.metrics() ?? null,
      registered: { active: members.length - terminated, terminated },
      payloadRequests: this.payloadRequests,
      httpErrors: this.httpErrors,
    });
  }

  /**
   * A valid instance credential (Authorization: Bearer) admits the request whatever state the
   * token is in; one presented by the wrong instance, or after terminate, is refused outright.
   * A credential the store does not know (forged, or lost with the store) admits nothing, and
   * the token decides. A fetch admitted by the token that names its instance gets a credential.
   */
  private async servePayload(memberId: string, token: string | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const refuse = (status: number, result: PayloadResult, detail: string) => {
      this.payloadRequests[result]++;
      this.deps.log.warn({ memberId, result }, `payload request refused: ${detail}`);
      send(res, status, `${status === 404 ? 'not found' : 'forbidden'}: ${detail}\n`, { [REFUSAL_HEADER]: result.replace(/_/g, '-') });
    };
    const member = this.deps.store.get(memberId);
    if (!member) return refuse(404, 'unknown_member', 'no such member');
    const instanceId = decodeInstanceId(req.headers[INSTANCE_ID_HEADER.toLowerCase()]);
    const presented = bearerToken(req.headers.authorization);
    let credentialNote = '';
    if (presented !== null) {
      const cred = checkCredential(presented, instanceId, member);
      if (cred.ok) return this.sendPayload(member, res, { via: 'credential', instanceId });
      if (cred.reason !== 'unknown-credential') return refuse(403, CREDENTIAL_REFUSAL_RESULT[cred.reason], `${cred.reason}: ${cred.detail}`);
      credentialNote = ` (and ${cred.detail})`;
    }
    if (!token) return refuse(403, 'missing_token', `the token query parameter is missing${credentialNote}`);
    const nowMs = this.now();
    let check = verifyToken(this.deps.keys.tokenSecret, token, { memberId, nowS: Math.floor(nowMs / 1000) });
    if (check.ok) check = admitToken(check.claims, { ...member.token, revokedAt: member.terminatedAt });
    if (!check.ok) return refuse(403, REFUSAL_RESULT[check.reason], `${check.reason}: ${check.detail}${credentialNote}`);
    const recorded = await this.deps.store.recordTokenFetch(memberId, check.claims.nonce, instanceId);
    if (!recorded.admitted) {
      // Spent (or revoked) between the check and now, e.g. by a concurrent request.
      return refuse(403, 'reused', `reused: the single-use token was already used${credentialNote}`);
    }
    this.sendPayload(member, res, { via: 'token', instanceId, credential: recorded.credential });
  }

  private sendPayload(member: MemberRecord, res: http.ServerResponse, how: { via: 'token' | 'credential'; instanceId: string | null; credential?: string | null }): void {
    const body = Buffer.from(member.payload, 'utf8');
    this.payloadRequests.ok++;
    this.deps.log.info(
      { memberId: member.memberId, clusterId: member.clusterId, bytes: body.length, via: how.via, instanceId: how.instanceId, credentialIssued: !!how.credential },
      'payload served',
    );
    res.writeHead(200, {
      'content-type': CONTENT_TYPE_OF_FORMAT[member.format] ?? 'text/plain; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
      [PAYLOAD_SIGNATURE_HEADER]: this.deps.keys.sign(body),
      ...(how.credential ? { [INSTANCE_CREDENTIAL_HEADER]: how.credential } : {}),
    });
    res.end(body);
  }

  private async terminate(clusterId: string, memberId: string, res: http.ServerResponse): Promise<void> {
    try {
      await this.deps.store.terminate(clusterId, memberId);
    } catch (err) {
      if (err instanceof ControllerError && err.exitCode === ControllerExit.NOT_FOUND) return sendJson(res, 404, { error: err.message });
      throw err;
    }
    this.deps.log.info({ clusterId, memberId }, 'member terminated: token revoked');
    if (!this.deps.fleet) return sendJson(res, 200, { clusterId, memberId, tokenRevoked: true, retainedCleared: false });
    try {
      await this.deps.fleet.terminate({ clusterId, memberId });
    } catch (err) {
      return sendJson(res, 502, { clusterId, memberId, tokenRevoked: true, retainedCleared: false, error: `clearing the retained topics failed: ${describeError(err)}` });
    }
    sendJson(res, 200, { clusterId, memberId, tokenRevoked: true, retainedCleared: true });
  }
}
