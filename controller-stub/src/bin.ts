#!/usr/bin/env node
/** Entry point of `cartridge-controller` (see cli.ts). */
import { main } from './cli';

// Signals are caught only by a command that waits for them (serve); others die on Ctrl-C as usual.
const waitForStop = () =>
  new Promise<string>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal));
  });

main(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  waitForStop,
}).then(
  (code) => {
    process.exitCode = code;
    // serve's sockets are closed by then; anything left (a stuck client) must not keep us alive.
    if (process.argv[2] === 'serve') setTimeout(() => process.exit(code), 2000).unref();
  },
  (err) => {
    process.stderr.write(`cartridge-controller: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
