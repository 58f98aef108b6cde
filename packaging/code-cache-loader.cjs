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
  // --snapshot-blob F names Node's start-up state, not a V8 flag: the same cache serves both.
  const flags = process.execArgv.filter((a, i, all) => !a.startsWith('--snapshot-blob') && all[i - 1] !== '--snapshot-blob');
  const text = JSON.stringify([flags, process.env.NODE_OPTIONS || '']);
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

/** Compile the agent (with the cache when there is one) and run it from the next tick. */
function start(req, mod, filename) {
  const vm = req('vm');
  const dir = process.env.CARTRIDGE_AGENT_CODE_CACHE;
  const cache = dir ? openCache(path.resolve(dir)) : null;
  if (cache && cache.problem) warn(`${cache.problem}; running without it`);

  // AGENT_CODE is wrapped at build time, so the script's source is the string literal itself:
  // V8 keeps a script's source for as long as the daemon runs (lazy compilation), and
  // Module.wrap() here would keep a second 550 KB copy.
  const script = new vm.Script(AGENT_CODE, {
    filename,
    cachedData: cache && !cache.problem ? cache.data : undefined,
  });
  if (cache && !cache.problem && (!cache.data || script.cachedDataRejected)) {
    // Written at exit, so the cache also holds the functions this run compiled lazily.
    process.once('exit', () => saveCache(cache.file, script));
  }
  // Run the agent from the next tick, not from inside this file's code: libraries that build
  // Error objects while loading (follow-redirects' error classes) keep their stack frames, and
  // a frame of this file would keep its whole source and the literal above alive next to the
  // agent's own copy (~1.1 MB for as long as the daemon runs).
  process.nextTick(script.runInThisContext(), mod.exports, req, mod, filename, path.dirname(filename));
}

/**
 * Under `node --snapshot-blob F --build-snapshot <this file>` (a V8 startup snapshot: Node's
 * own start-up, this file already evaluated; docs/packaging.md): nothing of the agent runs
 * while the snapshot is built — http, tls and (on Node 18) child_process cannot be loaded
 * then — `node --snapshot-blob F ARGS…` runs it as `node <this file> ARGS…` would.
 */
function startFromSnapshot(snapshotRequire) {
  const filename = __filename;
  process.argv.splice(1, 0, filename);
  // Node 18's snapshot `require` warns about every built-in it was not verified with, even
  // when first loaded after the snapshot was deserialized (no state to get out of sync then).
  const emitWarning = process.emitWarning;
  const req = (id) => {
    process.emitWarning = (w, ...rest) => {
      if (!/(not yet supported|not yet fully verified) .*user snapshot/.test(String(w && w.message ? w.message : w))) emitWarning.call(process, w, ...rest);
    };
    try {
      return snapshotRequire(id);
    } finally {
      process.emitWarning = emitWarning;
    }
  };
  const mod = { exports: {}, id: '.', filename, loaded: false, children: [], paths: [] };
  start(req, mod, filename);
}

if (process.execArgv.includes('--build-snapshot')) {
  const snapshotRequire = require;
  require('v8').startupSnapshot.setDeserializeMainFunction(() => startFromSnapshot(snapshotRequire));
} else {
  start(require, module, __filename);
}
