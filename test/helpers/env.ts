/**
 * Preconditions for tests that need root or a system tool. Unprivileged runs skip with the
 * reason; under CI (CI set) a missing precondition fails instead, so CI never passes by skipping.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const inCI = Boolean(process.env.CI);

function unmet(t: TestContext, reason: string): false {
  if (inCI) assert.fail(`precondition not met under CI: ${reason}`);
  t.skip(reason);
  return false;
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** True when the test may go on; otherwise it has been skipped (or failed under CI). */
export function requireRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  return unmet(t, 'needs root (run as root, or under CI where this is required)');
}

export function requireCommands(t: TestContext, ...cmds: string[]): boolean {
  const missing = cmds.filter((c) => !hasCommand(c));
  if (missing.length === 0) return true;
  return unmet(t, `needs ${missing.join(', ')} on PATH (.ci/run installs them)`);
}

/** True when `file` is available; otherwise skip with `why` (fail under CI). */
export function requireFile(t: TestContext, file: string | null, why: string): file is string {
  if (file) return true;
  return unmet(t, why);
}
