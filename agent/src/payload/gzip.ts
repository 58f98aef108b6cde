/**
 * Gunzip as a stream, the output counted against the decode's DecodeBudget as it arrives:
 * a gzip bomb stops at the first chunk past the budget, zlib works off the event loop, and
 * the agent's stop signal destroys the stream at once.
 */
import { createGunzip } from 'node:zlib';
import { AgentError, PayloadError } from '../errors';
import type { DecodeBudget } from './decode-budget';

export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** The whole inflated content of `buf`. `where` names it in errors. */
export async function gunzipBudgeted(buf: Buffer, budget: DecodeBudget, where: string): Promise<Buffer> {
  return (await inflate(buf, budget, where)) as Buffer;
}

/**
 * Inflate only as far as needed to decide: after `headBytes` (or the end), `wanted(head)`
 * says whether the rest matters. Undefined when it does not — a foreign gzip part then costs
 * only its head.
 */
export async function gunzipIfWanted(
  buf: Buffer,
  budget: DecodeBudget,
  where: string,
  peek: { headBytes: number; wanted: (head: Buffer) => boolean },
): Promise<Buffer | undefined> {
  return inflate(buf, budget, where, peek);
}

async function inflate(
  buf: Buffer,
  budget: DecodeBudget,
  where: string,
  peek?: { headBytes: number; wanted: (head: Buffer) => boolean },
): Promise<Buffer | undefined> {
  budget.check(where);
  // Small chunks while peeking, so deciding from the head costs about the head.
  const gunzip = createGunzip({ chunkSize: peek ? Math.max(64, peek.headBytes) : 64 * 1024 });
  const onStop = (): void => void gunzip.destroy();
  budget.signal?.addEventListener('abort', onStop, { once: true });
  const chunks: Buffer[] = [];
  let total = 0;
  let decided = peek === undefined;
  try {
    gunzip.end(buf);
    for await (const chunk of gunzip) {
      const piece = chunk as Buffer;
      budget.spend(piece.length, where);
      budget.check(where);
      chunks.push(piece);
      total += piece.length;
      if (!decided && total >= (peek as { headBytes: number }).headBytes) {
        decided = true;
        if (!peek?.wanted(Buffer.concat(chunks, total))) return undefined;
      }
    }
  } catch (err) {
    if (err instanceof AgentError) throw err;
    budget.check(where); // destroyed by a stop: say so, not "does not decompress"
    throw new PayloadError(`${where} starts with the gzip magic bytes (1f 8b) but does not decompress: ${(err as Error).message}`);
  } finally {
    budget.signal?.removeEventListener('abort', onStop);
    gunzip.destroy();
  }
  const out = Buffer.concat(chunks, total);
  return decided || peek?.wanted(out) ? out : undefined;
}
