// Stands in for the form-data package in the agent bundle (see packaging/build.mjs): the agent
// never sends multipart bodies, so constructing one is a bug and says so.
module.exports = class FormDataNotBundled {
  constructor() {
    throw new Error('multipart form bodies are not supported by the cartridge-agent bundle');
  }
};
