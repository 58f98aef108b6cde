/**
 * A throwaway "instance" on this machine: an image root (for --root) holding a personality
 * file and an agent.json, and a local HTTP server standing in for the controller. Used by
 * the demo, the benchmark and integration tests of `once`.
 */
import { execFile } from 'node:child_process';
import { sign, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PAYLOAD_SIGNATURE_HEADER } from '../../agent/src/protocol/payload-http';

export const SAMPLE_PAYLOAD =
  'APPLICATION_ID=shop,SERVICE_NAME=php,CLUSTER_ID=php.shop.domain,MEMBER_ID=php.member-1,' +
  'PORTS=80|443,MB_IP=10.0.0.5,MB_PORT=1883,MB_USERNAME=php.member-1,MB_PASSWORD=s3cr3t,DB_URL=mysql://db:3306/shop?ssl=true';

export interface PayloadServer {
  url: string;
  requests: number;
  close(): Promise<void>;
}

export interface PayloadServerOptions {
  token?: string;
  /** Ed25519 private key: responses carry the signature header, as a controller sends it. */
  signWith?: KeyObject;
  /** Change the body after signing (tamper tests). */
  tamper?: (body: Buffer) => Buffer;
}

/** Serves `body` at /payload/<member>?token=t; anything else is 404, a wrong token 403. */
export async function startPayloadServer(body: string | Buffer, opts: PayloadServerOptions = {}): Promise<PayloadServer> {
  const token = opts.token ?? 'demo-token';
  const bytes = Buffer.from(body);
  const headers: Record<string, string> = { 'content-type': 'text/plain' };
  if (opts.signWith) headers[PAYLOAD_SIGNATURE_HEADER] = sign(null, bytes, opts.signWith).toString('base64');
  const served = opts.tamper ? opts.tamper(bytes) : bytes;
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.startsWith('/payload/')) return void res.writeHead(404).end('not found\n');
    if (url.searchParams.get('token') !== token) return void res.writeHead(403).end('bad token\n');
    res.writeHead(200, headers).end(served);
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/payload/php.member-1?token=${token}`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface ImageRoot {
  root: string;
  /** Host path of an in-image absolute path. */
  at(imagePath: string): string;
  remove(): void;
}

/** A temp image root with a personality file pointing at `url` and a test-friendly agent.json. */
export function makeImageRoot(url: string | null, config: Record<string, unknown> = {}): ImageRoot {
  const root = mkdtempSync(path.join(tmpdir(), 'cartridge-root-'));
  const at = (p: string) => path.join(root, p);
  mkdirSync(at('/etc/cartridge-agent'), { recursive: true });
  if (url !== null) writeFileSync(at('/etc/cartridge-agent/payload-url'), url + '\n');
  const base = {
    sources: { order: ['personality'], waitSeconds: 0, scanDevices: false },
    payload: { fetch: { deadlineSeconds: 5, backoffBaseMs: 50, backoffCapMs: 500, connectTimeoutMs: 500, requestTimeoutMs: 2000 } },
    export: { launchParamsFile: '/var/lib/cartridge-agent/launch-params' },
  };
  writeFileSync(at('/etc/cartridge-agent/agent.json'), JSON.stringify(deepMerge(base, config), null, 2));
  return { root, at, remove: () => rmSync(root, { recursive: true, force: true }) };
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export const BUNDLE = 'dist/cartridge-agent.js';

export interface RunResult {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Run a command asynchronously. Callers host the payload server in their own process, so a
 * synchronous spawn would stall the server and the agent would time out against it.
 */
export function runCommand(file: string, args: string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, out, err });
    });
  });
}

/** Run the bundled agent with `args`, on this Node or another one (e.g. Debian's Node 18). */
export function runAgent(args: string[], opts: { node?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return runCommand(opts.node ?? process.execPath, [BUNDLE, ...args], opts.timeoutMs, opts.env);
}
