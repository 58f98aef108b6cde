/**
 * NoCloud `meta-data` reader. The file is YAML, but all we need is top-level scalar keys
 * (`instance-id`, `local-hostname`), so this reads the subset seeds actually use instead of
 * pulling in a YAML library: `key: value` lines with plain, 'single' or "double" quoted values,
 * comments, `|`/`>` block scalars, and JSON / flow-mapping documents (cloud-localds writes JSON
 * when given no meta-data file). Nested structures are skipped.
 */

function unquote(raw: string): string {
  const v = raw.trim();
  if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) return v.slice(1, -1).replace(/''/g, "'");
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0', '"': '"', '\\': '\\', '/': '/', ' ': ' ' };
    return v.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/g, (_m, e: string) =>
      e.length > 1 ? String.fromCharCode(parseInt(e.slice(1), 16)) : (escapes[e] ?? e),
    );
  }
  return v;
}

/** Strip a trailing ` # comment` from a plain scalar; quoted scalars keep their `#`. */
function plainValue(raw: string): string {
  const v = raw.trim();
  if (v.startsWith('"') || v.startsWith("'")) {
    // A quoted scalar may still be followed by a comment: cut after the closing quote.
    const q = v[0] as string;
    let end = 1;
    while (end < v.length) {
      if (v[end] === q) {
        if (q === "'" && v[end + 1] === "'") end += 2;
        else break;
      } else if (q === '"' && v[end] === '\\') end += 2;
      else end += 1;
    }
    return unquote(v.slice(0, end + 1));
  }
  return v.replace(/\s+#.*$/, '').trim();
}

function parseFlowMapping(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const inner = text.trim().replace(/^\{/, '').replace(/\}$/, '');
  for (const part of inner.split(',')) {
    const m = /^\s*("[^"]*"|'[^']*'|[^:]+?)\s*:\s*(.*)$/.exec(part);
    if (m) out.set(unquote(m[1] as string), plainValue(m[2] as string));
  }
  return out;
}

/** Top-level scalar keys of a NoCloud meta-data document. Never throws: unknown shapes are skipped. */
export function parseMetaData(text: string): Map<string, string> {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed.startsWith('{')) {
    try {
      const doc = JSON.parse(trimmed) as unknown;
      const out = new Map<string, string>();
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) {
        for (const [k, v] of Object.entries(doc)) {
          if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out.set(k, String(v));
        }
      }
      return out;
    } catch {
      return parseFlowMapping(trimmed);
    }
  }

  const out = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    // Indented lines belong to a nested value; comments, directives and document markers carry no keys.
    if (/^\s/.test(line) || line.startsWith('#') || line.startsWith('%') || /^(---|\.\.\.)(\s|$)/.test(line)) continue;
    const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"][^:]*?)\s*:(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    const key = unquote(m[1] as string);
    const rest = (m[2] ?? '').trim();
    const block = /^([|>])[-+0-9]*(\s+#.*)?$/.exec(rest);
    if (block) {
      const body: string[] = [];
      while (i + 1 < lines.length && (/^\s/.test(lines[i + 1] as string) || (lines[i + 1] as string) === '')) {
        body.push((lines[++i] as string).trim());
      }
      while (body.length && body[body.length - 1] === '') body.pop();
      out.set(key, block[1] === '|' ? body.join('\n') : body.join(' '));
      continue;
    }
    if (rest === '' || rest.startsWith('#')) {
      out.set(key, '');
      continue;
    }
    out.set(key, plainValue(rest));
  }
  return out;
}
