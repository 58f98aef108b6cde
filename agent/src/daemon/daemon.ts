/**
 * `cartridge-agent run`: the boot work, READY=1, then health reporting, lifecycle events,
 * hooks, app readiness and firewall drift checks until SIGTERM. This file only decides the
 * order and what each signal means; every part is a component of its own.
 *
 * Order (DESIGN.md): READY=1 after exports and firewall, not after the broker connects — a
 * broker outage is state to report, never a reason to hold up the boot or restart.
 */
import type { AgentConfig } from '../config';
import { buildPolicy } from '../firewall/allowlist';
import { createFirewallKeeper, type FirewallKeeper } from '../firewall';
import type { FirewallState } from '../firewall/types';
import type { HealthReporter } from '../health/reporter';
import { allowPredicateFromPolicy, type AllowPredicate } from '../health/metrics';
import { bootOnce, lockRoot, type BootResult } from '../boot';
import type { RunLock } from '../io/run-lock';
import { HookRunner, type HookEvent } from '../lifecycle/hooks';
import { readinessPorts, waitForPorts } from '../lifecycle/readiness';
import type { Logger } from '../log';
import type { RootedPaths } from '../paths';
import { createNotifier, createWatchdog, type Notifier, type Watchdog } from '../systemd';
import { bootUntilDone } from './boot-retry';
import { STATUS_FILE, writeStatus, type DaemonStatus } from './status';

export interface DaemonDeps {
  paths: RootedPaths;
  env: NodeJS.ProcessEnv;
  log: Logger;
  version: string;
  /** Loads (and validates) the config; called at start and on SIGHUP. */
  loadConfig: () => AgentConfig;
}

/** How long shutdown may take before we exit anyway (systemd's TimeoutStopSec is longer). */
const STOP_BUDGET_MS = 8_000;
/** Main-loop tick: feeds the watchdog and refreshes the status file. */
const TICK_MS = 1_000;
const STATUS_REFRESH_MS = 2_000;

/** One running payload: everything that is rebuilt on SIGHUP. */
interface Generation {
  config: AgentConfig;
  boot: BootResult;
  allowed: AllowPredicate;
  reporter: HealthReporter | null;
  brokerKey: string;
  keeper: FirewallKeeper | null;
  readiness: AbortController;
}

export class Daemon {
  private readonly startedAt = new Date().toISOString();
  private readonly notifier: Notifier;
  private watchdog: Watchdog | null = null;
  private current: Generation | null = null;
  private firewallState: FirewallState | null = null;
  private hooks: HookRunner | null = null;
  private activity = 'starting';
  private app: DaemonStatus['app'] = 'not-checked';
  private tick: ReturnType<typeof setInterval> | null = null;
  private lastStatusWrite = 0;
  private readonly stopRequested = new AbortController();
  private reloading: Promise<void> = Promise.resolve();

  constructor(private readonly deps: DaemonDeps) {
    this.notifier = createNotifier({ env: deps.env, log: deps.log });
  }

  /** Resolves with the exit code once stopped (SIGTERM/SIGINT) or the boot work failed. */
  async run(): Promise<number> {
    const { log } = this.deps;
    // Fails loudly when systemd asked for a watchdog we cannot feed: what is visibly wrong at
    // once; whether a notification really goes through is checked beside the boot work (a
    // child process the boot need not wait for) and settled before READY=1.
    this.notifier.check();
    const verified = this.notifier.verify('starting');
    verified.catch(() => this.stopRequested.abort(new Error('systemd notifications cannot work')));
    const onStop = () => this.stopRequested.abort(new Error('stop requested'));
    const onHup = () => {
      this.reloading = this.reloading.then(() => this.reload());
    };
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', onHup);
    let lock: RunLock | null = null;
    try {
      const config = this.deps.loadConfig();
      // Held for the daemon's whole life: while it runs it owns the exports and the firewall
      // (a `once` or `firewall apply` beside it would be undone by the drift keeper).
      lock = await lockRoot({ config, paths: this.deps.paths, log, signal: this.stopRequested.signal }, 'run');
      this.hooks = HookRunner.fromConfig(config, this.deps.paths, log);
      const boot = await bootUntilDone({
        boot: () => bootOnce({ config, paths: this.deps.paths, log, signal: this.stopRequested.signal, onStatus: (t) => this.setActivity(t) }),
        log,
        signal: this.stopRequested.signal,
        say: (text) => this.setActivity(text),
        drain: () => this.notifier.drain(),
      });
      await verified; // throws the NotifyError, if any
      if (!boot) return 0; // stopped while retrying
      this.firewallState = boot.firewall;
      this.current = await this.startGeneration(config, boot);
      // READY=1 takes the latest STATUS= along (one systemd-notify run). The health stack waits
      // for it below (it is loaded after READY=1: with a notification still ahead in the queue,
      // not waiting let mqtt.js load first); the watchdog and the tick need not.
      const readySent = this.notifier.ready(this.describeReady(boot));
      this.setActivity(this.describeReady(boot), false);
      this.watchdog = createWatchdog(this.notifier, log);
      this.watchdog?.start();
      this.tick = setInterval(() => this.onTick(), TICK_MS);
      // Only now the MQTT stack is loaded (docs/daemon.md "Start-up"): a broker is state to
      // report, never something READY=1 waits for.
      await readySent;
      await this.connectHealth(this.current);
      void this.lifecycleEvents(this.current);

      await new Promise<void>((resolve) => {
        if (this.stopRequested.signal.aborted) resolve();
        this.stopRequested.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await this.shutdown();
      return 0;
    } catch (err) {
      await verified; // a failed start check stopped the boot work: it is the error to report
      throw err;
    } finally {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGHUP', onHup);
      if (this.tick) clearInterval(this.tick);
      this.watchdog?.stop();
      await lock?.release();
    }
  }

  private describeReady(boot: BootResult): string {
    const via = boot.via === 'cache' ? 'CACHED payload (controller unreachable)' : `${boot.via} payload`;
    return `ready: ${via} from ${boot.discovery.source}, ${boot.payload.vars.size} variables, firewall ${boot.firewall.mode}`;
  }

  /** Health context read fresh for every report: reflects SIGHUP reloads and firewall drift. */
  private healthContext() {
    const gen = this.current;
    return {
      firewall: this.firewallState,
      payloadDigest: gen?.boot.payload.digest ?? null,
      allowed: gen?.allowed ?? (() => false),
      vars: gen?.boot.payload.vars ?? new Map<string, string>(),
    };
  }

  /** Build the generation for a config + boot result: policy and firewall keeper (health: connectHealth). */
  private async startGeneration(config: AgentConfig, boot: BootResult, reuse?: Generation): Promise<Generation> {
    const { paths, log } = this.deps;
    const allowed = allowPredicateFromPolicy(buildPolicy(boot.payload.vars, config.firewall));
    reuse?.keeper?.stop();
    const keeper = await createFirewallKeeper({
      config,
      paths,
      log,
      onState: (s) => {
        this.firewallState = s;
        this.writeStatusSoon(true);
      },
    });
    keeper?.start();
    return { config, boot, allowed, reporter: null, brokerKey: brokerKey(config, boot.payload.vars), keeper, readiness: new AbortController() };
  }

  /**
   * The generation's health reporter. The broker connection (and its session) is kept when
   * `reuse` has the same broker settings; otherwise a new reporter is started.
   */
  private async connectHealth(gen: Generation, reuse?: Generation): Promise<void> {
    const { paths, log, version } = this.deps;
    if (reuse && reuse.brokerKey === gen.brokerKey) {
      gen.reporter = reuse.reporter;
      return;
    }
    await reuse?.reporter?.stop({ timeoutMs: STOP_BUDGET_MS / 2 });
    const { createHealthReporter } = await import('../health/create');
    const created = createHealthReporter({
      config: gen.config,
      paths,
      vars: gen.boot.payload.vars,
      instanceId: gen.boot.discovery.instanceId,
      agentVersion: version,
      log,
      context: () => this.healthContext(),
    });
    if (!created) log.warn('health: no broker configured (health.brokerUrls) and none in the payload (MB_URLS, MB_IP): health reporting is off');
    created?.reporter.start();
    gen.reporter = created?.reporter ?? null;
  }

  /** started → (app ports answer) activated, or a fault; hooks for each. */
  private async lifecycleEvents(gen: Generation): Promise<void> {
    await this.event(gen, 'started');
    const { readiness } = gen.config;
    if (!readiness.enabled) return;
    this.app = 'waiting';
    this.setActivity('waiting for the app ports (PORTS) to accept connections');
    const result = await waitForPorts({
      ports: readinessPorts(gen.boot.payload.vars),
      intervalMs: readiness.intervalMs,
      timeoutMs: readiness.timeoutSeconds * 1000,
      log: this.deps.log,
      signal: gen.readiness.signal,
    });
    if (result.outcome === 'cancelled') return;
    if (result.outcome === 'activated') {
      this.app = 'activated';
      this.setActivity(`activated: ports ${result.ports.join(', ') || '(none)'} answer`);
      await this.event(gen, 'activated');
    } else {
      this.app = 'timeout';
      const reason = `app ports ${result.missing.join(', ')} did not accept connections within ${readiness.timeoutSeconds} s`;
      this.setActivity(`fault: ${reason}`);
      await this.event(gen, 'fault', reason);
    }
  }

  /** Publish an event and run its hooks; a failing hook becomes a fault event. */
  private async event(gen: Generation, type: HookEvent, reason?: string): Promise<void> {
    gen.reporter?.publishEvent(type, reason);
    if (!this.hooks) return;
    const results = await this.hooks.run(type, gen.boot.payload.vars, reason ? { extra: { CARTRIDGE_FAULT_REASON: reason } } : {});
    for (const r of results.filter((x) => !x.ok)) {
      const why = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : r.error ?? `exit code ${r.code}`;
      gen.reporter?.publishEvent('fault', `hook ${type}.d/${r.hook} failed: ${why}`);
    }
  }

  /** SIGHUP: re-read config and payload; keep the running state if either is bad. */
  private async reload(): Promise<void> {
    const { log, paths } = this.deps;
    const old = this.current;
    if (!old || this.stopRequested.signal.aborted) return;
    log.info('SIGHUP: re-reading the config and the payload');
    await this.notifier.status('reloading config and payload');
    let config: AgentConfig;
    let boot: BootResult;
    try {
      config = this.deps.loadConfig();
      boot = await bootOnce({ config, paths, log, signal: this.stopRequested.signal, onStatus: (t) => this.setActivity(t) });
    } catch (err) {
      log.error({ err }, `reload failed; keeping the running config and payload: ${(err as Error).message}`);
      old.reporter?.publishEvent('fault', `reload failed: ${(err as Error).message}`);
      this.setActivity(this.describeReady(old.boot));
      return;
    }
    this.firewallState = boot.firewall;
    this.hooks = HookRunner.fromConfig(config, paths, log);
    old.readiness.abort();
    this.current = await this.startGeneration(config, boot, old);
    await this.connectHealth(this.current, old);
    this.setActivity(this.describeReady(boot));
    void this.lifecycleEvents(this.current);
  }

  private async shutdown(): Promise<void> {
    const { log } = this.deps;
    const gen = this.current;
    this.setActivity('stopping');
    await this.notifier.stopping('stopping: reporting offline');
    gen?.readiness.abort();
    gen?.keeper?.stop(); // stopping never removes the firewall rules
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, STOP_BUDGET_MS).unref());
    const work = (async () => {
      if (gen && this.hooks) await this.hooks.run('ready-to-shutdown', gen.boot.payload.vars);
      await gen?.reporter?.stop({ readyToShutdown: true, timeoutMs: STOP_BUDGET_MS / 2 });
    })().catch((err: unknown) => log.error({ err }, 'error while stopping'));
    await Promise.race([work, deadline]);
    this.hooks?.stop();
    this.activity = 'stopped';
    await this.writeStatusNow();
    await this.notifier.drain();
    log.info('stopped');
  }

  private onTick(): void {
    // The tick runs on the event loop: while it runs, the main loop is alive and making progress.
    this.watchdog?.heartbeat();
    this.writeStatusSoon(false);
  }

  private setActivity(text: string, notify = true): void {
    this.activity = text;
    if (notify) void this.notifier.status(text);
    this.writeStatusSoon(true);
  }

  private writeStatusSoon(force: boolean): void {
    if (!force && Date.now() - this.lastStatusWrite < STATUS_REFRESH_MS) return;
    void this.writeStatusNow();
  }

  private async writeStatusNow(): Promise<void> {
    this.lastStatusWrite = Date.now();
    try {
      await writeStatus(this.deps.paths.resolve(STATUS_FILE), this.snapshot());
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'cannot write the status file');
    }
  }

  snapshot(): DaemonStatus {
    const gen = this.current;
    const h = gen?.reporter?.status();
    return {
      v: 1,
      pid: process.pid,
      version: this.deps.version,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      activity: this.activity,
      source: gen ? { name: gen.boot.discovery.source, origin: gen.boot.discovery.origin, instanceId: gen.boot.discovery.instanceId } : null,
      payload: gen
        ? { digest: gen.boot.payload.digest, keys: gen.boot.payload.vars.size, via: gen.boot.via, ...(gen.boot.cachedAt ? { cachedAt: gen.boot.cachedAt } : {}) }
        : null,
      exports: gen?.boot.written ?? [],
      firewall: this.firewallState,
      broker: h
        ? {
            connected: h.connected,
            broker: h.broker,
            session: h.session === null ? null : String(h.session),
            lastReportAt: h.lastReportAt === null ? null : new Date(h.lastReportAt).toISOString(),
            buffered: h.buffered,
            dropped: h.dropped.health + h.dropped.event,
            refused: h.refused.health + h.refused.event,
            lastError: h.lastError,
          }
        : null,
      app: this.app,
    };
  }
}

/** What decides the broker connection: a change means reconnecting. */
function brokerKey(config: AgentConfig, vars: ReadonlyMap<string, string>): string {
  const mb = [...vars].filter(([k]) => k.startsWith('MB_') || k === 'MEMBER_ID' || k === 'CLUSTER_ID' || k === 'INSTANCE_ID');
  return JSON.stringify([config.health, mb]);
}
