/**
 * What the daemon bench needs from the agent's systemd unit, to run the daemon as it is
 * deployed: the node flags of `ExecStart=`, the `Environment=` assignments and `WatchdogSec=`.
 * Pure (text in, values out); a line it cannot read is an error naming the file and line, so
 * the bench never measures something other than what the unit says.
 *
 * systemd syntax handled: [Service] section only, comments (# ;), continuation lines (\),
 * the ExecStart prefixes (- @ : + !), double/single quotes and backslash escapes in command
 * lines and Environment= lists, time spans ("30s", "1min 30s", "500ms", "30").
 */

export interface UnitDeployment {
  /** Flags between the node binary and the script in ExecStart=. */
  nodeFlags: string[];
  /** ExecStart='s program (argv[0]), e.g. /usr/bin/node. */
  program: string;
  /** Environment= assignments in order (later ones win, as in systemd); values unexpanded (%C…). */
  environment: Array<[name: string, value: string]>;
  /** WatchdogSec= in microseconds (what systemd puts in WATCHDOG_USEC), or null when unset/0. */
  watchdogUsec: number | null;
}

export class UnitFileError extends Error {
  constructor(file: string, line: number | null, message: string) {
    super(`${file}${line === null ? '' : ` line ${line}`}: ${message}`);
    this.name = 'UnitFileError';
  }
}

interface Setting {
  key: string;
  value: string;
  line: number;
}

/** [Service] key=value settings, continuation lines joined, comments dropped. */
function serviceSettings(text: string, file: string): Setting[] {
  const out: Setting[] = [];
  let section = '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1;
    let line = (lines[i] as string).trim();
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1) + ' ' + (lines[++i] as string).trim();
    }
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1] as string;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UnitFileError(file, first, `not a key=value line: "${line}"`);
    if (section === 'Service') out.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), line: first });
  }
  return out;
}

/** Split a systemd command line / assignment list into words (quotes and \ escapes). */
export function splitWords(text: string, where: () => string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
    if (i >= text.length) break;
    let word = '';
    while (i < text.length && !/\s/.test(text[i] as string)) {
      const c = text[i] as string;
      if (c === '"' || c === "'") {
        const end = text.indexOf(c, i + 1);
        if (end < 0) throw new Error(`${where()}: unterminated ${c} quote`);
        word += c === '"' ? text.slice(i + 1, end).replace(/\\(.)/g, '$1') : text.slice(i + 1, end);
        i = end + 1;
      } else if (c === '\\' && i + 1 < text.length) {
        word += text[i + 1];
        i += 2;
      } else {
        word += c;
        i++;
      }
    }
    words.push(word);
  }
  return words;
}

const TIME_UNITS_US: Record<string, number> = {
  us: 1, usec: 1, ms: 1e3, msec: 1e3, '': 1e6, s: 1e6, sec: 1e6, second: 1e6, seconds: 1e6,
  m: 60e6, min: 60e6, minute: 60e6, minutes: 60e6, h: 3600e6, hr: 3600e6, hour: 3600e6, hours: 3600e6,
};

/** A systemd time span ("30s", "1min 30s", "500ms", bare seconds) in microseconds. */
export function parseTimeSpanUsec(text: string): number | null {
  const parts = text.trim().match(/\d+(?:\.\d+)?\s*[a-z]*/g);
  if (!parts || parts.join('').replace(/\s/g, '') !== text.replace(/\s/g, '')) return null;
  let total = 0;
  for (const part of parts) {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(part) as RegExpExecArray;
    const unit = TIME_UNITS_US[m[2] as string];
    if (unit === undefined) return null;
    total += Number(m[1]) * unit;
  }
  return Math.round(total);
}

export function parseUnitDeployment(text: string, file: string): UnitDeployment {
  const settings = serviceSettings(text, file);
  const starts = settings.filter((s) => s.key === 'ExecStart' && s.value !== '');
  if (starts.length !== 1) throw new UnitFileError(file, null, `expected one ExecStart= in [Service], found ${starts.length}`);
  const start = starts[0] as Setting;
  const words = splitWords(start.value.replace(/^[-@:+!]+/, ''), () => `${file} line ${start.line}`);
  const program = words[0] ?? '';
  if (!/(^|\/)node(js)?$/.test(program)) throw new UnitFileError(file, start.line, `ExecStart= runs "${program}", not node`);
  const scriptAt = words.findIndex((w, i) => i > 0 && !w.startsWith('-'));
  if (scriptAt < 0) throw new UnitFileError(file, start.line, 'ExecStart= names no script after the node flags');

  const environment: Array<[string, string]> = [];
  for (const s of settings.filter((x) => x.key === 'Environment')) {
    for (const word of splitWords(s.value, () => `${file} line ${s.line}`)) {
      const eq = word.indexOf('=');
      if (eq <= 0) throw new UnitFileError(file, s.line, `Environment= entry "${word}" is not NAME=value`);
      environment.push([word.slice(0, eq), word.slice(eq + 1)]);
    }
  }

  let watchdogUsec: number | null = null;
  const watchdog = settings.filter((s) => s.key === 'WatchdogSec').at(-1);
  if (watchdog) {
    const usec = parseTimeSpanUsec(watchdog.value);
    if (usec === null) throw new UnitFileError(file, watchdog.line, `WatchdogSec=${watchdog.value} is not a time span`);
    watchdogUsec = usec > 0 ? usec : null;
  }
  return { nodeFlags: words.slice(1, scriptAt), program, environment, watchdogUsec };
}

/**
 * Expand the specifiers the bench can stand in for (%C: the cache directory root, %%), or
 * say which one it cannot.
 */
export function expandSpecifiers(value: string, known: Record<string, string>): { value: string } | { unknown: string } {
  let unknown: string | null = null;
  const out = value.replace(/%(.)/g, (all, c: string) => {
    if (c === '%') return '%';
    if (known[c] !== undefined) return known[c] as string;
    unknown ??= all;
    return all;
  });
  return unknown === null ? { value: out } : { unknown };
}
