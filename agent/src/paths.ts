import path from 'node:path';

/**
 * `--root DIR` support: every absolute path the agent reads or writes is resolved under the
 * root, so tests run unprivileged and bakers can prepare an image root.
 */
export class RootedPaths {
  readonly root: string;

  constructor(root = '/') {
    this.root = path.resolve(root);
  }

  /** Map an absolute in-image path (e.g. /etc/cartridge-agent/agent.json) to the host path. */
  resolve(imagePath: string): string {
    if (!path.isAbsolute(imagePath)) {
      throw new Error(`expected an absolute path, got "${imagePath}"`);
    }
    const normal = path.posix.normalize(imagePath);
    return this.root === '/' ? normal : path.join(this.root, normal);
  }

  get isHostRoot(): boolean {
    return this.root === '/';
  }
}
