/**
 * The Node runtimes the agent bundle must run on: this one (20) and Debian 12's own nodejs 18,
 * which image bakers use. scripts/debian-node18.sh (run by .ci/run) prepares the latter under
 * .cache/node18; CARTRIDGE_TEST_NODE18 may point elsewhere.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, test as nodeTest, type TestContext } from 'node:test';
import { runAgent, type RunResult } from '../../scripts/lib/fake-instance';
import { requireFile } from './env';

/** Runs the bundle on one runtime, optionally with another environment. */
export type AgentRunner = (args: string[], env?: NodeJS.ProcessEnv) => Promise<RunResult>;

export interface Runtime {
  name: string;
  /** Path of the node binary, or null when it is not available here. */
  node: string | null;
  /** Why it is missing (for the skip message). */
  missing?: string;
}

export function agentRuntimes(): Runtime[] {
  const node18 = process.env.CARTRIDGE_TEST_NODE18 ?? path.resolve('.cache/node18/node');
  return [
    { name: `node ${process.versions.node}`, node: process.execPath },
    existsSync(node18)
      ? { name: 'Debian node 18', node: node18 }
      : { name: 'Debian node 18', node: null, missing: `no Node 18 at ${node18}: run scripts/debian-node18.sh` },
  ];
}

/**
 * Declare the same scenarios once per runtime: `body` receives a `test` function whose
 * scenarios get `agent(args)` bound to that runtime. A missing runtime skips (fails under CI).
 */
export function forEachRuntime(
  body: (test: (name: string, fn: (agent: AgentRunner, t: TestContext) => Promise<void>) => void) => void,
): void {
  for (const runtime of agentRuntimes()) {
    describe(`on ${runtime.name}`, () => {
      body((name, fn) =>
        nodeTest(name, async (t) => {
          if (!requireFile(t, runtime.node, runtime.missing ?? '')) return;
          await fn((args, env) => runAgent(args, { node: runtime.node as string, ...(env ? { env } : {}) }), t);
        }),
      );
    });
  }
}
