/**
 * Which payloads can be exported at all. A value that a shell or systemd could not read back
 * byte for byte, or that could not be handed to a process, refuses the whole payload — with the
 * key and the reason, never the value (it may be a secret).
 */
import { PayloadError } from '../errors';

/**
 * Linux MAX_ARG_STRLEN (32 pages of 4 KiB): the longest single string execve() accepts in argv
 * or envp, including its terminating NUL. A longer `KEY=VALUE` makes every exec of a program
 * that inherits it fail with E2BIG.
 */
export const MAX_ARG_STRLEN = 131_072;

/**
 * Bound on the whole export, counted the way execve() counts the environment: for each entry
 * the bytes of `KEY=VALUE`, its NUL and its 8-byte envp pointer. Linux allows argv + envp
 * together a quarter of the stack limit, i.e. 2 MiB with the usual 8 MiB stack (and as little
 * as 128 KiB of strings on small stacks, which we cannot know in advance). Keeping the payload
 * to half of the usual 2 MiB leaves the other half for what a unit or login shell adds (PATH,
 * systemd's own variables, a user's profile) and for command lines, so programs started with
 * the payload in their environment can still exec. It also keeps payload.env (at most twice
 * this after escaping) far below systemd's limit on how much of an env file it reads.
 */
export const MAX_EXPORT_ENV_BYTES = 1024 * 1024;

const ENV_POINTER_BYTES = 8;
const NAME = /^[A-Z_][A-Z0-9_]*$/;

/** Unicode noncharacters: U+FDD0..U+FDEF and the last two code points of every plane. */
const PLANE_ENDS = Array.from({ length: 17 }, (_, plane) => {
  const fffe = plane * 0x10000 + 0xfffe;
  return `\\u{${fffe.toString(16)}}-\\u{${(fffe + 1).toString(16)}}`;
}).join('');
const NONCHARACTER = new RegExp(`[\\u{FDD0}-\\u{FDEF}${PLANE_ENDS}]`, 'u');
/** With the u flag, a surrogate class only matches surrogates that are not part of a pair. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function byteOffset(value: string, index: number): number {
  return Buffer.byteLength(value.slice(0, index), 'utf8');
}

function refuse(name: string, why: string): never {
  throw new PayloadError(`payload key "${name}" cannot be exported: ${why}`, { key: name });
}

/** Why one entry cannot be exported, or null. Pure; `name` is assumed not secret, `value` is. */
export function unexportableReason(name: string, value: string): string | null {
  if (!NAME.test(name)) return 'the name is not an environment variable name ([A-Z_][A-Z0-9_]*)';
  const nul = value.indexOf('\0');
  if (nul >= 0) {
    return `the value contains a NUL byte (at byte ${byteOffset(value, nul)}), which no process environment can hold`;
  }
  const surrogate = value.search(LONE_SURROGATE);
  if (surrogate >= 0) {
    const unit = value.charCodeAt(surrogate).toString(16).toUpperCase();
    return `the value contains a lone UTF-16 surrogate U+${unit} (at byte ${byteOffset(value, surrogate)}), which cannot be written as UTF-8`;
  }
  const nonchar = value.search(NONCHARACTER);
  if (nonchar >= 0) {
    const cp = (value.codePointAt(nonchar) ?? 0).toString(16).toUpperCase();
    return `the value contains the Unicode noncharacter U+${cp} (at byte ${byteOffset(value, nonchar)}); systemd rejects the whole EnvironmentFile when a value holds one`;
  }
  const entryBytes = Buffer.byteLength(name, 'utf8') + 1 + Buffer.byteLength(value, 'utf8') + 1;
  if (entryBytes > MAX_ARG_STRLEN) {
    return `NAME=VALUE is ${entryBytes} bytes with its NUL, over Linux's per-string exec limit MAX_ARG_STRLEN (${MAX_ARG_STRLEN}); programs could not be started with it`;
  }
  return null;
}

/** Bytes the entry takes in a process environment (string, NUL and pointer). */
function envCost(name: string, value: string): number {
  return Buffer.byteLength(name, 'utf8') + 1 + Buffer.byteLength(value, 'utf8') + 1 + ENV_POINTER_BYTES;
}

/**
 * Throw PayloadError for the first entry that cannot be exported, or when the payload as a
 * whole would not fit in a process environment (MAX_EXPORT_ENV_BYTES).
 */
export function assertExportable(vars: ReadonlyMap<string, string>): void {
  let total = 0;
  for (const [name, value] of vars) {
    const reason = unexportableReason(name, value);
    if (reason !== null) refuse(name, reason);
    total += envCost(name, value);
  }
  if (total > MAX_EXPORT_ENV_BYTES) {
    throw new PayloadError(
      `payload cannot be exported: its ${vars.size} variables take ${total} bytes of process environment, over the ${MAX_EXPORT_ENV_BYTES}-byte limit that keeps programs able to exec`,
      { variables: vars.size, bytes: total },
    );
  }
}
