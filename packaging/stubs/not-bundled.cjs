// Stands in for packages mqtt.js pulls in for transports the agent never uses (see
// packaging/build.mjs): `ws` (MQTT over WebSocket), `socks` (SOCKS proxies), `worker-timers`
// (browsers). The agent only speaks mqtt:// and mqtts://; leaving them out keeps ~10 MB of
// RSS and start-up work off every instance. Using one of those transports fails at connect.
module.exports = {};
