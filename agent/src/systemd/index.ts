/** systemd integration: sd_notify through the systemd-notify binary, and the gated watchdog. */
export { createNotifier, NotifyError, runNotifyBinary, statusLine, watchdogUsecFromEnv, NOTIFY_BINARY } from './notify';
export type { Notifier, NotifierDeps, NotifyRunner, NotifyRunResult } from './notify';
export { createWatchdog, decidePing, pingPeriodMs, Watchdog } from './watchdog';
export type { MonotonicClock, PingDecision, WatchdogDeps } from './watchdog';
