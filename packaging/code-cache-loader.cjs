/**
 * Start-up loader of the agent bundle (packaging/build.mjs puts the agent's code below, as a
 * string already wrapped in the CommonJS module function). Every boot runs the agent once,
 * and compiling its ~250 KB of JavaScript is a good part of the start-up time; V8 can reuse
 * compiled code from a cache file instead. Node 22 has this built in
 * (module.enableCompileCache); the images run Node 18, so this is our own.
 *
 * Opt-in: only when CARTRIDGE_AGENT_CODE_CACHE names a directory (the systemd unit sets it to
 * its CacheDirectory). The cache holds compiled code that will run as root, so it is used only
 * when the directory and the file belong to us and nobody else can write them; otherwise the
 * agent says why and runs without it. A cache V8 rejects (other Node, other agent version,
 * corrupt) is simply rewritten.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const AGENT_CODE = '@@AGENT_CODE@@';
const AGENT_CODE_ID = '@@AGENT_CODE_ID@@';

function warn(text) {
  process.stderr.write(`cartridge-agent: code cache: ${text}\n`);
}

/** Why a path must not be trusted with code that runs as us, or null when it may be. */
function unsafe(stat, what) {
  const uid = typeof process.getuid === 'function' ? process.getuid() : stat.uid;
  if (stat.uid !== uid) return `${what} is owned by uid ${stat.uid}, not ${uid}`;
  if ((stat.mode & 0o022) !== 0) return `${what} is writable by group or others (mode ${(stat.mode & 0o777).toString(8)})`;
  return null;
}

/**
 * V8 rejects a cache made under other V8 flags (its flag hash: --jitless, heap sizes …), so
 * the flags are part of the name: a unit with --jitless and a shell without it each keep their
 * own file instead of rewriting one on every start. FNV-1a: a name, not a secret.
 */
function flagsKey() {
  const text = JSON.stringify([process.execArgv, process.env.NODE_OPTIONS || '']);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

const CACHE_PREFIX = 'code-';
function cacheName() {
  return `${CACHE_PREFIX}${AGENT_CODE_ID}-node${process.version}-${process.arch}-flags${flagsKey()}.bin`;
}

function openCache(dir) {
  const file = path.join(dir, cacheName());
  let dirStat;
  try {
    dirStat = fs.statSync(dir);
  } catch (err) {
    if (err.code !== 'ENOENT') return { file, problem: `cannot use ${dir}: ${err.message}` };
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      dirStat = fs.statSync(dir);
    } catch (mkErr) {
      return { file, problem: `cannot create ${dir}: ${mkErr.message}` };
    }
  }
  const dirProblem = !dirStat.isDirectory() ? `${dir} is not a directory` : unsafe(dirStat, dir);
  if (dirProblem) return { file, problem: dirProblem };
  let data;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const problem = unsafe(fs.fstatSync(fd), file);
      if (problem) return { file, problem };
      data = fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (err.code !== 'ENOENT') return { file, problem: `cannot read ${file}: ${err.message}` };
  }
  return { file, data };
}

function saveCache(file, script) {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    warn(`cannot write ${file}: ${err.message}`);
    return;
  }
  pruneOtherBuilds(path.dirname(file));
}

/** Caches of other agent builds are never used again (their code id differs): remove them. */
function pruneOtherBuilds(dir) {
  const mine = `${CACHE_PREFIX}${AGENT_CODE_ID}-`;
  try {
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith(CACHE_PREFIX) && name.endsWith('.bin') && !name.startsWith(mine)) fs.unlinkSync(path.join(dir, name));
    }
  } catch (err) {
    warn(`cannot remove old caches in ${dir}: ${err.message}`);
  }
}

const dir = process.env.CARTRIDGE_AGENT_CODE_CACHE;
const cache = dir ? openCache(path.resolve(dir)) : null;
if (cache && cache.problem) warn(`${cache.problem}; running without it`);

// AGENT_CODE is wrapped at build time, so the script's source is the string literal itself:
// V8 keeps a script's source for as long as the daemon runs (lazy compilation), and
// Module.wrap() here would keep a second 550 KB copy.
const script = new vm.Script(AGENT_CODE, {
  filename: __filename,
  cachedData: cache && !cache.problem ? cache.data : undefined,
});
if (cache && !cache.problem && (!cache.data || script.cachedDataRejected)) {
  // Written at exit, so the cache also holds the functions this run compiled lazily.
  process.once('exit', () => saveCache(cache.file, script));
}
// Run the agent from the next tick, not from inside this file's top-level code: libraries
// that build Error objects while loading (follow-redirects' error classes) keep their stack
// frames, and a frame of this function would keep this whole file's source and the literal
// above alive next to the agent's own copy (~1.1 MB for as long as the daemon runs).
process.nextTick(script.runInThisContext(), exports, require, module, __filename, __dirname);
