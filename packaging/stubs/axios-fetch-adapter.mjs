// Stands in for axios' fetch adapter in the agent bundle (see packaging/build.mjs). The agent
// always uses axios' http adapter; the real module probes `fetch` at load time, which makes
// Node 20 load undici (~15 ms of every start) for nothing.
export const getFetch = () => false;
export default false;
