/**
 * An image root booted with `systemd-nspawn --boot`: real systemd 252 as PID 1, inside a
 * network namespace the test made (so its veth peer can reach it and probe its firewall).
 * Commands run inside through nsenter into the container's init (no machined here: the host's
 * PID 1 is not systemd, hence --register=no --keep-unit). The console goes to a log file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand, type RunResult } from '../../../scripts/lib/fake-instance';
import { waitFor } from '../../helpers/wait';


export interface BootOptions {
  root: string;
  /** Name of a namespace under /run/netns the container joins. */
  netns: string;
  /** Container console output is appended here. */
  logFile: string;
}

export class Container {
  private exited: Promise<number | null>;

  private constructor(
    readonly root: string,
    private readonly nspawn: ChildProcess,
    /** The container's PID 1 (systemd), as the host sees it. */
    readonly initPid: number,
    exited: Promise<number | null>,
  ) {
    this.exited = exited;
  }

  static async boot(opts: BootOptions): Promise<Container> {
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    log.write(`\n===== boot ${new Date().toISOString()} =====\n`);
    const nspawn = spawn(
      'systemd-nspawn',
      [
        '--directory', opts.root, '--boot', '--register=no', '--keep-unit', '--console=read-only',
        `--network-namespace-path=/run/netns/${opts.netns}`,
        // A VM's root has CAP_NET_ADMIN; nspawn withholds it unless the network is private.
        '--capability=CAP_NET_ADMIN',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    nspawn.stdout?.pipe(log, { end: false });
    nspawn.stderr?.pipe(log, { end: false });
    const exited = new Promise<number | null>((resolve) => nspawn.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    let initPid: number | null = null;
    while (initPid === null) {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited (${nspawn.exitCode}) before the container booted; see ${opts.logFile}`);
      if (Date.now() > deadline) {
        nspawn.kill('SIGKILL');
        throw new Error(`the container's init did not appear within 30 s; see ${opts.logFile}`);
      }
      initPid = childNamed(nspawn.pid as number, 'systemd');
      if (initPid === null) await sleep(50);
    }
    return new Container(opts.root, nspawn, initPid, exited);
  }

  /** Run a command inside the container (all its namespaces). */
  exec(cmd: string, args: string[] = [], timeoutMs = 30_000): Promise<RunResult> {
    return runCommand('nsenter', ['--target', String(this.initPid), '--all', cmd, ...args], timeoutMs);
  }

  /** Like exec, but a non-zero exit is an error naming the command and its output. */
  async sh(script: string, timeoutMs = 30_000): Promise<string> {
    const r = await this.exec('/bin/sh', ['-c', script], timeoutMs);
    if (r.code !== 0) throw new Error(`in the container: sh -c ${JSON.stringify(script)} exited ${r.code}: ${r.err}${r.out}`);
    return r.out;
  }

  async unitProperties(unit: string, names: string[]): Promise<Record<string, string>> {
    const out = await this.sh(`systemctl show ${unit} ${names.map((n) => `-p ${n}`).join(' ')}`);
    const props: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return props;
  }

  /** Poll a unit until `ok` accepts its properties; the last properties and its journal on timeout in the error. */
  async waitUnit(unit: string, names: string[], ok: (p: Record<string, string>) => boolean, timeoutMs: number): Promise<Record<string, string>> {
    let props: Record<string, string> = {};
    // Early in boot systemctl may not reach PID 1 yet ("Failed to connect to bus"): keep polling.
    const accepted = async () => {
      props = await this.unitProperties(unit, names).catch((err: Error) => ({ error: err.message }));
      return !('error' in props) && ok(props);
    };
    try {
      await waitFor(unit, accepted, timeoutMs, () => JSON.stringify(props), 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}\njournal:\n${await this.journal(unit, 40)}`);
    }
    return props;
  }

  /** The unit's last `lines` journal messages; `priority` ("err" …): only those at it or above. */
  journal(unit: string, lines = 60, priority?: string): Promise<string> {
    const filter = priority ? ['-p', priority] : [];
    return this.exec('journalctl', ['-u', unit, '--no-pager', '-n', String(lines), '-o', 'cat', ...filter]).then((r) => r.out);
  }

  /** `systemctl poweroff` inside; resolves with nspawn's exit code once the container is gone. */
  async poweroff(timeoutMs = 90_000): Promise<number | null> {
    await this.exec('systemctl', ['poweroff']);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      await this.destroy();
      throw new Error(`the container did not power off within ${timeoutMs} ms`);
    }
    return result;
  }

  /**
   * Cleanup after a failed test: kill the container's init first — that ends its whole PID
   * namespace; killing only nspawn would leave the container running, orphaned.
   */
  async destroy(): Promise<void> {
    if (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null) return;
    try {
      process.kill(this.initPid, 'SIGKILL');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => this.nspawn.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The pid of a direct child of `parent` whose comm is `name`, if any. */
function childNamed(parent: number, name: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && comm === name) return Number(entry);
    } catch {
      // the process went away while we looked
    }
  }
  return null;
}
