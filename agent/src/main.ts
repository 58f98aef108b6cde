/**
 * Entry point: parse the command line, load the config, run the command, map errors to
 * exit codes. Everything that decides something lives in the modules it calls.
 */
import { HELP, parseCli, type ParsedCli } from './cli';
import type { AgentConfig } from './config';
import { AgentError, ExitCode, UsageError } from './errors';
import type { FirewallState } from './firewall/types';
import type { BootResult } from './boot';
import type { Logger } from './log';
import { LOG_LEVELS, type LogLevel } from './log-levels';
import type { RootedPaths } from './paths';
import { redactUrl } from './redact';
import { isJournalStream, journalPrefix } from './io/journal';
import { VERSION } from './protocol/version';

// Every command loads what it uses, when it runs (`await import()`; the bundle keeps them in
// one file, evaluated on first use): `version` and `help` evaluate no library, only `once`,
// `discover` and `run` load the HTTP stack, and only `run` the MQTT stack, after READY=1
// (docs/daemon.md, "Start-up"). Types are imported with `import type`, which loads nothing.

export { VERSION } from './protocol/version';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  let cli: ParsedCli;
  try {
    cli = parseCli(argv);
  } catch (err) {
    return fail(err, io);
  }
  if (cli.help) {
    io.out(HELP[cli.helpTopic ?? (cli.command === 'help' ? 'main' : cli.command)] + '\n');
    return ExitCode.OK;
  }
  if (cli.command === 'version') {
    io.out(`cartridge-agent ${VERSION}\n`);
    return ExitCode.OK;
  }
  let log: Logger | undefined;
  try {
    if (cli.logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(cli.logLevel)) {
      throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${cli.logLevel}"`);
    }
    const [{ RootedPaths }, { loadConfig }, { createLogger }] = await Promise.all([import('./paths'), import('./config'), import('./log')]);
    const paths = new RootedPaths(cli.root);
    const { config, file } = loadConfig(paths, cli.config, io.env);
    log = createLogger((cli.logLevel as LogLevel | undefined) ?? config.log.level, 2, 'cartridge-agent', io.env);
    log.debug({ config: file ?? '(defaults)', root: paths.root }, 'config loaded');
    switch (cli.command) {
      case 'once':
        return await commandOnce(cli, config, paths, log, io);
      case 'discover':
        return await commandDiscover(cli, config, paths, log, io);
      case 'env':
        return await commandEnv(cli, config, paths, io);
      case 'firewall':
        return await commandFirewall(cli, config, paths, log, io);
      case 'run': {
        const { Daemon } = await import('./daemon/daemon');
        return await new Daemon({
          paths,
          env: io.env,
          log,
          version: VERSION,
          loadConfig: () => loadConfig(paths, cli.config, io.env).config,
        }).run();
      }
      case 'status':
        return await commandStatus(cli, paths, io);
      case 'config':
        // loadConfig above validated it (a ConfigError is exit 3 naming the key).
        // agent.json holds no secret values (passwords live in files); URLs may carry credentials.
        io.out(`${JSON.stringify(config, (_key, value: unknown) => (typeof value === 'string' ? redactUrl(value) : value), 2)}\n`);
        io.err(`cartridge-agent: config ok: ${file ?? '(no file: all defaults)'}\n`);
        return ExitCode.OK;
      default:
        throw new UsageError(`unhandled command ${cli.command}`);
    }
  } catch (err) {
    return fail(err, io, log);
  }
}

function fail(err: unknown, io: Io, log?: Logger): number {
  // The message line is an error in the journal too, like the JSON line before it.
  const journal = isJournalStream(2, io.env);
  if (err instanceof AgentError) {
    log?.error({ error: err.name, exitCode: err.exitCode, ...err.context }, err.message);
    io.err(`${journalPrefix(journal, 'error')}cartridge-agent: ${redactUrl(err.message)}\n`);
    return err.exitCode;
  }
  log?.fatal({ err }, 'internal error');
  const text = `cartridge-agent: internal error: ${redactUrl(err instanceof Error ? (err.stack ?? err.message) : String(err))}`;
  // Every line of the stack: the journal reads each line on its own.
  io.err(`${text.split('\n').map((line) => journalPrefix(journal, 'fatal') + line).join('\n')}\n`);
  return ExitCode.INTERNAL;
}

/** SIGINT/SIGTERM abort the boot work cleanly (no half-written exports: writes are atomic). */
function stopSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort(new Error('stopped by signal'));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}

/** Run `work` holding the run lock of this root (docs/cli.md: exit 10 when another run holds it). */
async function locked<T>(deps: { config: AgentConfig; paths: RootedPaths; log: Logger; signal?: AbortSignal }, command: string, work: () => Promise<T>): Promise<T> {
  const { lockRoot } = await import('./boot');
  const lock = await lockRoot(deps, command);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

async function commandOnce(cli: ParsedCli, config: AgentConfig, paths: RootedPaths, log: Logger, io: Io): Promise<number> {
  const { bootOnce } = await import('./boot');
  const signal = stopSignal();
  const result = await locked({ config, paths, log, signal }, 'once', () => bootOnce({ config, paths, log, signal }));
  io.out(cli.json ? JSON.stringify(summary(result), null, 2) + '\n' : describeBoot(result));
  return ExitCode.OK;
}

function summary(r: BootResult) {
  return {
    source: r.discovery.source,
    origin: r.discovery.origin,
    instanceId: r.discovery.instanceId,
    via: r.via,
    ...(r.cachedAt ? { cachedAt: r.cachedAt } : {}),
    format: r.payload.format,
    digest: r.payload.digest,
    keys: [...r.payload.vars.keys()],
    written: r.written,
    shellOmitted: r.shellOmitted,
    firewall: r.firewall,
  };
}

function describeBoot(r: BootResult): string {
  const via =
    r.via === 'cache' ? `the CACHED payload (controller unreachable; saved ${r.cachedAt})` : r.via === 'inline' ? 'the inline payload' : 'the fetched payload';
  return [
    `pointer: ${r.discovery.source} (${r.discovery.origin}), instance ${r.discovery.instanceId}`,
    `payload: ${via}, ${r.payload.format}, ${r.payload.vars.size} variables, sha256 ${r.payload.digest}`,
    ...r.written.map((w) => `wrote:   ${w}`),
    ...(r.shellOmitted.length > 0 ? [`note:    special to a shell, so not in the sh export: ${r.shellOmitted.join(', ')}`] : []),
    `firewall: ${describeFirewall(r.firewall)}`,
    '',
  ].join('\n');
}

async function commandDiscover(cli: ParsedCli, config: AgentConfig, paths: RootedPaths, log: Logger, io: Io): Promise<number> {
  const { probeAll } = await import('./sources');
  const results = await probeAll({ config, paths, log, signal: stopSignal() });
  const rows = results.map((r) => {
    if ('error' in r) return { source: r.source, status: 'error', detail: r.error };
    if (r.result.status === 'absent') return { source: r.source, status: 'absent', detail: r.result.reason };
    const d = r.result.discovery;
    const what = d.content.kind === 'url' ? `url ${redactUrl(d.content.url)}` : `user data, ${d.content.bytes.length} bytes`;
    return { source: r.source, status: 'found', detail: `${what} from ${d.origin}${d.via ? ` (${d.via})` : ''}, instance ${d.instanceId}` };
  });
  if (cli.json) io.out(JSON.stringify(rows, null, 2) + '\n');
  else {
    const width = Math.max(...rows.map((r) => r.source.length));
    for (const r of rows) io.out(`${r.source.padEnd(width)}  ${r.status.padEnd(6)}  ${r.detail}\n`);
  }
  const firstFound = rows.find((r) => r.status === 'found');
  if (!cli.json) io.out(firstFound ? `\n'once' would use: ${firstFound.source}\n` : `\nno source yields a payload pointer\n`);
  return firstFound ? ExitCode.OK : ExitCode.NO_POINTER;
}

async function commandEnv(cli: ParsedCli, config: AgentConfig, paths: RootedPaths, io: Io): Promise<number> {
  const { renderExport } = await import('./export');
  io.out(renderExport(await readExportedVars(config, paths), cli.format));
  return ExitCode.OK;
}

/** The payload as last exported (export.jsonFile): what `env` and `firewall` work from. */
async function readExportedVars(config: AgentConfig, paths: RootedPaths): Promise<Map<string, string>> {
  if (!config.export.jsonFile) {
    throw new AgentError('this command reads export.jsonFile, which is disabled (null) in the config', ExitCode.CONFIG);
  }
  const { readExportedPayload } = await import('./export/read-back');
  return readExportedPayload(paths.resolve(config.export.jsonFile));
}

function describeFirewall(f: FirewallState): string {
  if (f.mode === 'off') return 'off (firewall.mode)';
  const what = `${f.backend ?? 'unknown backend'}, ${f.ruleCount} rules, sha256 ${f.digest ?? '-'}`;
  return f.mode === 'plan' ? `planned only (firewall.mode plan): ${what}` : `applied: ${what}`;
}

async function commandFirewall(cli: ParsedCli, config: AgentConfig, paths: RootedPaths, log: Logger, io: Io): Promise<number> {
  const deps = { config, paths, log };
  const { applyFirewall, checkFirewall, planFirewall, removeFirewall } = await import('./firewall');
  switch (cli.action) {
    case 'plan': {
      const plan = await planFirewall({ ...deps, payloadVars: await readExportedVars(config, paths) });
      if (plan.note) io.err(`cartridge-agent: note: ${plan.note}\n`);
      io.out(plan.text);
      return ExitCode.OK;
    }
    case 'apply': {
      // No controller endpoint is known outside the boot work, so the lock-out guard is skipped
      // here (and says so in the log); SSH stays allowed by firewall.alwaysAllow.
      const payloadVars = await readExportedVars(config, paths);
      const state = await locked(deps, 'firewall apply', () => applyFirewall({ ...deps, payloadVars, controllerEndpoints: [] }));
      io.out(`firewall: ${describeFirewall(state)}\n`);
      return ExitCode.OK;
    }
    case 'check': {
      const { applied, report } = await checkFirewall(deps);
      if (applied) io.out(`applied: ${applied.backend}, ${applied.ruleCount} rules, sha256 ${applied.digest}, at ${applied.appliedAt}\n`);
      else io.out(`applied: nothing recorded${report.baseline ? '; the baseline ruleset is in force (firewall.baseline)' : ''}\n`);
      io.out(report.drifted ? `DRIFT:\n${report.differences.map((d) => `  ${d}`).join('\n')}\n` : 'in force, no drift\n');
      return report.drifted ? ExitCode.DRIFT : ExitCode.OK;
    }
    case 'remove': {
      const removed = await locked(deps, 'firewall remove', () => removeFirewall(deps));
      io.out(`removed the agent's rules (${removed.join(', ')})\n`);
      return ExitCode.OK;
    }
    case 'restore':
      return locked(deps, 'firewall restore', () => restoreFirewall(deps, io));
    case 'baseline':
      return cli.write ? locked(deps, 'firewall baseline', () => writeBaseline(deps, io)) : printBaseline(deps, io);
    default:
      throw new UsageError(`'firewall' needs an action`);
  }
}

/**
 * `firewall restore`, the early-boot unit's command: runs on every boot before the network, so
 * it only reads the record and hands it to the kernel (no discovery, no fetch). Nothing
 * recorded is a fresh image's first boot: the baseline goes in (fail closed, the only case
 * that detects the backend), exit 0. A record that cannot be restored: the baseline, exit 8.
 */
async function restoreFirewall(deps: { config: AgentConfig; paths: RootedPaths; log: Logger }, io: Io): Promise<number> {
  const recordedText = (f: Pick<FirewallState, 'backend' | 'ruleCount' | 'digest' | 'appliedAt'>) =>
    `${f.backend ?? 'unknown backend'}, ${f.ruleCount} rules, sha256 ${f.digest ?? '-'} (applied ${f.appliedAt ?? '-'})`;
  const [{ readRecorded }, { describeBaseline }, { describeBaselineInForce, restoreAtBoot }] = await Promise.all([
    import('./firewall'),
    import('./firewall/baseline'),
    import('./firewall/fail-closed'),
  ]);
  const { mode, baseline } = deps.config.firewall;
  if (mode === 'off') {
    io.out('firewall: mode off (firewall.mode), nothing restored\n');
    return ExitCode.OK;
  }
  if (mode === 'plan') {
    const recorded = await readRecorded(deps);
    const none = baseline.enabled
      ? `nothing recorded (first boot?), would put the baseline ruleset in force; allows ${describeBaseline(deps.config.firewall)}\n`
      : 'nothing recorded, nothing would be restored (first boot?)\n';
    io.out(`firewall: mode plan (firewall.mode), the kernel is not touched; ${recorded ? `would restore the recorded ruleset: ${recordedText(recorded)}\n` : none}`);
    return ExitCode.OK;
  }
  const done = await restoreAtBoot(deps);
  if (done.kind === 'restored') io.out(`firewall: restored the recorded ruleset: ${recordedText(done.state)}\n`);
  else if (done.kind === 'baseline') io.out(`firewall: nothing recorded (first boot?); the baseline ruleset is in force: ${describeBaselineInForce(done.baseline)}\n`);
  else io.out('firewall: nothing recorded, nothing restored (first boot?); firewall.baseline.enabled is false\n');
  // This Node path runs at boot only when firewall-restore.sh handed over (e.g. the config
  // changed since the agent last recorded): record the decision, so the next boot needs no Node.
  const { writeBaselineRestore } = await import('./firewall/restore-record');
  await writeBaselineRestore(deps.paths.resolve(deps.config.state.dir), deps.paths).catch((err: unknown) =>
    deps.log.warn({ err }, `firewall: could not record the baseline for the early restore: ${(err as Error).message}`),
  );
  return ExitCode.OK;
}

/** `firewall baseline`: the baseline for every backend, as firewall-restore.sh would apply it. */
async function printBaseline(deps: { config: AgentConfig }, io: Io): Promise<number> {
  const { describeBaseline, renderBaseline } = await import('./firewall/baseline');
  const cfg = deps.config.firewall;
  const nft = renderBaseline(cfg, 'nft');
  const ipt = renderBaseline(cfg, 'iptables-legacy');
  io.out(`# baseline (firewall.baseline ${cfg.baseline.enabled ? 'enabled' : 'disabled'}); allows ${describeBaseline(cfg)}\n`);
  io.out(`# nft -f (backend nft), sha256 ${nft.digest}\n${nft.nft ?? ''}`);
  io.out(`# iptables-nft / iptables-legacy: iptables-restore --noflush (IPv4), sha256 ${ipt.digest}\n${ipt.ipv4 ?? ''}`);
  io.out(`# ip6tables-restore --noflush (IPv6)\n${ipt.ipv6 ?? ''}`);
  return ExitCode.OK;
}

/** `firewall baseline --write`: record the early restore's decision and baseline texts. */
async function writeBaseline(deps: { config: AgentConfig; paths: RootedPaths }, io: Io): Promise<number> {
  const { writeBaselineRestore } = await import('./firewall/restore-record');
  const written = await writeBaselineRestore(deps.paths.resolve(deps.config.state.dir), deps.paths);
  io.out(written.length > 0 ? written.map((f: string) => `wrote: ${f}\n`).join('') : 'firewall: the recorded baseline is current, nothing written\n');
  return ExitCode.OK;
}

async function commandStatus(cli: ParsedCli, paths: RootedPaths, io: Io): Promise<number> {
  const { describeStatus, readStatus, STATUS_FILE } = await import('./daemon/status');
  const read = await readStatus(paths.resolve(STATUS_FILE));
  if (!read.status) {
    io.err(`cartridge-agent: ${read.reason}\n`);
    return ExitCode.NOT_RUNNING;
  }
  io.out(cli.json ? JSON.stringify({ ...read.status, running: read.running }, null, 2) + '\n' : describeStatus(read.status, read.running));
  return read.running ? ExitCode.OK : ExitCode.NOT_RUNNING;
}
