/**
 * Group name → gid from the image's own /etc/group (under --root), not the host's: when baking
 * an image root, the build host's groups say nothing about the image's.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors';
import type { RootedPaths } from '../paths';

export const GROUP_FILE = '/etc/group';

/** Parse group(5) text into name → gid. Malformed lines are skipped, as getgrnam does. */
export function parseGroupFile(text: string): Map<string, number> {
  const groups = new Map<string, number>();
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    const [name, , gid] = fields;
    if (fields.length < 3 || !name || !gid || !/^\d+$/.test(gid)) continue;
    if (!groups.has(name)) groups.set(name, Number(gid));
  }
  return groups;
}

/** Resolve config `export.group`; an unknown group or unreadable file names that key. */
export async function resolveGroupId(paths: RootedPaths, group: string): Promise<number> {
  const file = paths.resolve(GROUP_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError('export.group', `cannot look up group "${group}": cannot read ${file}: ${(err as Error).message}`);
  }
  const gid = parseGroupFile(text).get(group);
  if (gid === undefined) throw new ConfigError('export.group', `group "${group}" does not exist in ${file}`);
  return gid;
}
