// Stands in for thread-stream in the agent bundle (see packaging/build.mjs): pino needs it only
// for worker-thread transports, which the agent does not use (it logs synchronously to a file
// descriptor); loading it would pull worker_threads into every start.
module.exports = class ThreadStreamNotBundled {
  constructor() {
    throw new Error('pino transports are not supported by the cartridge-agent bundle');
  }
};
