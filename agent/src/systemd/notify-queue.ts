/**
 * The order notifications reach systemd in, with the fewest `systemd-notify` runs (each one
 * costs a fork and ~16 ms; docs/daemon.md "Start-up"):
 *  - one run at a time: two at once could arrive swapped;
 *  - every message goes out in the order it was asked for;
 *  - a STATUS= alone is held for `settleMs` first, and a newer one replaces it: the short
 *    phases of a boot never cost a child process on the way to READY=1, while a phase that
 *    lasts (a fetch retrying) still shows in `systemctl status`;
 *  - a held or queued STATUS= rides along with the next message (READY=1 and the latest
 *    STATUS= in one run), or is dropped when that message carries a STATUS= of its own.
 * Whoever asked for a STATUS= that was merged or replaced gets the result of the run that
 * superseded it. Pure scheduling: the run itself is `send`.
 */
export interface QueueOptions<R> {
  /** Runs one notification (all its assignments in one datagram). Must not reject. */
  send: (assignments: string[]) => Promise<R>;
  /** How long a STATUS= alone waits for something to ride along with or to replace it. */
  settleMs: number;
}

interface Entry<R> {
  assignments: string[];
  waiters: Array<(result: R) => void>;
}

const isStatus = (a: string): boolean => a.startsWith('STATUS=');
const statusOnly = (e: { assignments: string[] }): boolean => e.assignments.every(isStatus);

export class NotifyQueue<R> {
  private readonly pending: Array<Entry<R>> = [];
  private held: Entry<R> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly opts: QueueOptions<R>) {}

  /** STATUS=… (one assignment), held for settleMs unless something takes it along sooner. */
  status(assignment: string): Promise<R> {
    return new Promise((resolve) => {
      this.held = { assignments: [assignment], waiters: [...(this.held?.waiters ?? []), resolve] };
      this.timer ??= setTimeout(() => this.release(), this.opts.settleMs);
    });
  }

  /** Any message, queued now; a STATUS= still held or queued is merged into it. */
  message(assignments: string[]): Promise<R> {
    return new Promise((resolve) => {
      const entry: Entry<R> = { assignments, waiters: [resolve] };
      this.takeHeld(entry);
      this.push(entry);
    });
  }

  /** Sends anything held and resolves once everything asked for so far has run. */
  async drain(): Promise<void> {
    this.release();
    while (this.running) await this.running;
  }

  /** The held STATUS= joins the queue as a message of its own. */
  private release(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const held = this.held;
    this.held = null;
    if (held) this.push(held);
  }

  private takeHeld(entry: Entry<R>): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const held = this.held;
    this.held = null;
    if (held) this.merge(entry, held);
  }

  /** Folds `status` (STATUS= only) into `entry`, which was asked for after it. */
  private merge(entry: Entry<R>, status: Entry<R>): void {
    if (!entry.assignments.some(isStatus)) entry.assignments = [...entry.assignments, ...status.assignments];
    entry.waiters.unshift(...status.waiters);
  }

  private push(entry: Entry<R>): void {
    const last = this.pending[this.pending.length - 1];
    if (last && statusOnly(last)) {
      this.pending.pop();
      this.merge(entry, last);
    }
    this.pending.push(entry);
    this.running ??= this.run();
  }

  private async run(): Promise<void> {
    for (let entry = this.pending.shift(); entry; entry = this.pending.shift()) {
      const result = await this.opts.send(entry.assignments);
      for (const w of entry.waiters) w(result);
    }
    this.running = null;
  }
}
