export { Daemon, type DaemonDeps } from './daemon';
export { describeStatus, readStatus, STATUS_FILE, writeStatus, type DaemonStatus } from './status';
