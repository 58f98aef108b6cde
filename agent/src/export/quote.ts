/**
 * Quoting for the two text formats a value is read back from. Both quoters are total over the
 * strings `assertExportable` lets through; they do not check anything themselves.
 */

/**
 * POSIX sh single quoting. Inside '…' every byte is literal — no `$`, backtick, `\`, `!` or
 * glob meaning in sh, bash, dash or zsh-as-sh — so the only thing to handle is `'` itself,
 * which ends the quote: `'` → `'\''` (close, escaped quote, reopen). Newlines, CR, tabs and
 * multibyte UTF-8 are kept as they are (UTF-8 continuation bytes are never ASCII, so none of
 * them can be mistaken for a quote).
 */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Quoting for systemd's EnvironmentFile= parser (src/basic/env-file.c, systemd 252).
 *
 * We always use one double-quoted string, because that is the one state of the parser in which
 * every byte is kept:
 * - unquoted values lose leading and trailing whitespace, a backslash escapes the next byte and
 *   backslash-newline is a line continuation; a CR ends the line (NEWLINE is "\n\r");
 * - single-quoted values cannot contain `'` at all;
 * - inside "…" a backslash before one of `"` `\` `` ` `` `$` yields that character, a backslash
 *   before a newline is eaten (continuation) and a backslash before anything else is kept
 *   together with that character. Every other byte, newline and CR included, is literal.
 * So escaping exactly `"` `\` `` ` `` `$` with a backslash, and nothing else, reads back as the
 * original value; no backslash can be followed by a raw newline, so no continuation happens.
 * There is no variable expansion in EnvironmentFile=, `$` is escaped only because the parser
 * strips a backslash in front of it.
 */
export function systemdQuote(value: string): string {
  return `"${value.replace(/["\\`$]/g, (c) => `\\${c}`)}"`;
}
