/**
 * The Node runtimes the agent bundle must run on: this one (20) and Debian 12's own nodejs 18,
 * which image bakers use. scripts/debian-node18.sh (run by .ci/run) prepares the latter under
 * .cache/node18; CARTRIDGE_TEST_NODE18 may point elsewhere.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

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
