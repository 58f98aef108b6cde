/**
 * Small helpers every source shares: bounded file reads that cannot be tricked into leaving
 * the tree they read from, and the instance-id check.
 */
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { SourceError } from '../errors';
import type { SourceName } from '../config';
import type { Discovery, SourceResult } from './types';

export function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export const absent = (reason: string): SourceResult => ({ status: 'absent', reason });
export const found = (discovery: Discovery): SourceResult => ({ status: 'found', discovery });

/**
 * Read a whole file of at most `maxBytes`. null when there is no such file. Anything else
 * that stops the read (too large, a directory, no permission) is a SourceError: the file is at
 * a path meant for us, so it is not "absent", it is broken.
 */
export async function readCapped(hostPath: string, maxBytes: number, source: SourceName, where: string): Promise<Buffer | null> {
  let handle;
  try {
    handle = await open(hostPath, 'r');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new SourceError(source, where, `cannot open: ${code ?? (err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new SourceError(source, where, 'is not a regular file');
    if (st.size > maxBytes) throw new SourceError(source, where, `is ${st.size} bytes, over the limit of ${maxBytes}`);
    // Read one byte past the limit: a file that grows while we read must still be refused.
    const buf = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buf.length) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) throw new SourceError(source, where, `is over the limit of ${maxBytes} bytes`);
    return buf.subarray(0, length);
  } catch (err) {
    if (err instanceof SourceError) throw err;
    throw new SourceError(source, where, `cannot read: ${errnoCode(err) ?? (err as Error).message}`);
  } finally {
    await handle.close();
  }
}

/**
 * Like readCapped, but `rel` must stay inside `treeDir` after following symlinks. Config drives
 * and cidata images are ISO 9660 with Rock Ridge, which can carry symlinks: without this check
 * a crafted image could make us read /etc/shadow as "user data".
 */
export async function readInsideTree(
  treeDir: string,
  rel: string,
  maxBytes: number,
  source: SourceName,
  where: string,
): Promise<Buffer | null> {
  const normal = path.posix.normalize(rel).replace(/^\/+/, '');
  if (normal === '..' || normal.startsWith('../')) throw new SourceError(source, where, `path "${rel}" leaves the tree`);
  const candidate = path.join(treeDir, normal);
  let real: string;
  let realTree: string;
  try {
    realTree = await realpath(treeDir);
    real = await realpath(candidate);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new SourceError(source, where, `cannot resolve: ${code ?? (err as Error).message}`);
  }
  if (real !== realTree && !real.startsWith(realTree.endsWith('/') ? realTree : `${realTree}/`)) {
    throw new SourceError(source, where, 'is a link that points outside the tree it belongs to');
  }
  return readCapped(real, maxBytes, source, where);
}

/**
 * The instance id keys the payload cache (and may become part of a file name there), so it
 * must be a short printable token. A source that hands us anything else is broken.
 */
export function checkInstanceId(raw: string, source: SourceName, where: string): string {
  const id = raw.trim();
  if (!/^[\x21-\x7e]{1,255}$/.test(id)) {
    throw new SourceError(source, where, `instance id must be 1-255 printable ASCII characters without spaces (got ${id.length} characters)`);
  }
  return id;
}

/** Join a configured base URL (no trailing slash guaranteed) and an absolute path. */
export function joinUrl(base: string, pathname: string): string {
  return `${base.replace(/\/+$/, '')}${pathname}`;
}
