#!/usr/bin/env node
import { main } from './main';

main(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
    // Safety net: a stray handle (keep-alive socket, timer) must not keep a finished command
    // alive. Unref'd, so a clean exit does not wait for it.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`cartridge-agent: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
