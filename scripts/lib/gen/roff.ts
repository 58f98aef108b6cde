/**
 * Pure helpers for man pages: escaping for roff, markdown inline markup to roff, and the
 * programs' --help texts to man(7) paragraphs and tagged lists.
 */

/**
 * Text safe in a roff line: backslashes escaped, minus signs marked, non-ASCII characters as
 * groff's \[uXXXX] (troff reads Latin-1 input), no control-line start.
 */
export function esc(text: string): string {
  const out = text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/[^\x20-\x7e]/gu, (c) => `\\[u${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}]`);
  return /^[.']/.test(out) ? `\\&${out}` : out;
}

/** Markdown inline markup (code, bold, links) as roff fonts; everything else escaped. */
export function mdInline(md: string): string {
  let out = '';
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\([^)]+\)/g;
  let last = 0;
  for (let m = re.exec(md); m; m = re.exec(md)) {
    out += esc(md.slice(last, m.index));
    if (m[1] !== undefined) out += `\\fB${esc(m[1])}\\fR`;
    else if (m[2] !== undefined) out += `\\fB${esc(m[2])}\\fR`;
    else out += esc(m[3] as string);
    last = m.index + m[0].length;
  }
  return (out + esc(md.slice(last))).replace(/^([.'])/, '\\&$1');
}

/** Markdown inline markup removed (JSON Schema descriptions, plain text). */
export function mdPlain(md: string): string {
  return md.replace(/`([^`]+)`/g, '$1').replace(/\*\*([^*]+)\*\*/g, '$1').replace(/\[([^\]]+)\]\([^)]+\)/g, '$1');
}

export function heading(title: string): string {
  return `.SH ${title.toUpperCase()}`;
}

/** A tagged paragraph: the tag in bold, then the body (already roff). */
export function tagged(tag: string, body: string): string {
  return `.TP\n\\fB${esc(tag)}\\fR\n${body}`;
}

type Block = { kind: 'prose'; text: string } | { kind: 'item'; term: string; text: string };

/**
 * A --help text as blocks: prose lines (starting at column 0) join into paragraphs; lines
 * indented two spaces with a term, two or more spaces and a description are list items;
 * deeper-indented lines continue the item (or paragraph) above; blank lines separate.
 */
export function helpBlocks(help: string): Block[] {
  const blocks: Block[] = [];
  let open = false;
  for (const line of help.split('\n')) {
    if (line.trim() === '') {
      open = false;
      continue;
    }
    const item = /^ {2}(\S(?:.*?\S)??)(?: {2,}(\S.*))?$/.exec(line);
    const last = blocks[blocks.length - 1];
    if (item && !line.startsWith('   ')) {
      blocks.push({ kind: 'item', term: item[1] as string, text: item[2] ?? '' });
    } else if (open && last && /^\s/.test(line)) {
      last.text = `${last.text} ${line.trim()}`.trim();
    } else if (open && last?.kind === 'prose' && !/^\s/.test(line)) {
      last.text = `${last.text} ${line}`;
    } else {
      blocks.push({ kind: 'prose', text: line.trim() });
    }
    open = true;
  }
  return blocks;
}

/** Blocks as man(7): paragraphs are .PP, items .TP with the term in bold. */
export function helpToRoff(help: string): string {
  return helpBlocks(help)
    .map((b) => (b.kind === 'prose' ? `.PP\n${esc(b.text)}` : tagged(b.term, esc(b.text))))
    .join('\n');
}

/** The rows of the first markdown table after `## <title>` in `md`, cells trimmed (header row dropped). */
export function markdownTable(md: string, title: string): string[][] {
  const start = md.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`no "## ${title}" section`);
  const lines = md.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|')));
  }
  if (rows.length === 0) throw new Error(`no table under "## ${title}"`);
  return rows;
}
