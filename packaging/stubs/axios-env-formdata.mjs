// Stands in for axios' env/classes/FormData.js in the agent bundle: touching the global
// FormData makes Node load undici at start. The agent never sends form bodies.
export default null;
