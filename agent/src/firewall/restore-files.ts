/**
 * What the early firewall unit's POSIX sh script (agent/bootstrap/firewall-restore.sh) restores
 * from, so that the boot path costs no Node start: the exact texts nft / iptables-restore take,
 * each in a file named by its sha256, and two small manifests of `key=value` lines that a
 * `while read` loop parses without eval:
 *
 *  - firewall.restore: the last good ruleset (1:1 with firewall.json, written and removed with it):
 *    backend, its text file(s) by sha256, and for iptables the INPUT jump rule.
 *  - firewall-baseline.restore: the decision `firewall restore` would take from the image's
 *    config file (mode, baseline on/off, backend preference), the sha256 of that file (a
 *    config changed since makes the script hand over to the agent), and the baseline rendered
 *    for every backend.
 *
 * Content-addressed text files make the renames of one transaction safe in any order: a crash
 * between them leaves either manifest with every file it names. Pure: values in, texts out.
 */
import { createHash } from 'node:crypto';
import type { AgentConfig } from '../config';
import { describeBaseline, renderBaseline } from './baseline';
import { renderJumpRule } from './render-iptables';
import type { AppliedFirewall } from './state';

export const RESTORE_FILE = 'firewall.restore';
export const BASELINE_RESTORE_FILE = 'firewall-baseline.restore';
/** Beside the manifests: `<sha256>.nft`, `<sha256>.ipv4`, `<sha256>.ipv6`. */
export const RULES_DIR = 'firewall-rules';
export const RESTORE_FORMAT = '1';

export interface RestoreFiles {
  /** The manifest's text. */
  manifest: string;
  /** Text files to have in RULES_DIR: file name → content. */
  texts: Map<string, string>;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Manifest values stay on one line and never need quoting: the sh side reads them with `read -r`. */
function line(key: string, value: string | number): string {
  const v = String(value);
  if (/[\n\r]/.test(v)) throw new Error(`restore manifest value for ${key} has a line break`);
  return `${key}=${v}`;
}

class Builder {
  readonly lines: string[];
  readonly texts = new Map<string, string>();
  constructor(what: string) {
    this.lines = [`# cartridge-agent: ${what}, read by /usr/lib/cartridge-agent/firewall-restore.sh at early boot. Written by the agent; do not edit.`, line('format', RESTORE_FORMAT)];
  }
  add(key: string, value: string | number): this {
    this.lines.push(line(key, value));
    return this;
  }
  /** Record `text` as `<sha256>.<ext>` and its digest under `key`. */
  text(key: string, text: string, ext: 'nft' | 'ipv4' | 'ipv6'): this {
    const digest = sha256(text);
    this.texts.set(`${digest}.${ext}`, text);
    return this.add(key, digest);
  }
  done(): RestoreFiles {
    return { manifest: `${this.lines.join('\n')}\n`, texts: this.texts };
  }
}

function need(text: string | undefined, what: string): string {
  if (text === undefined) throw new Error(`the ruleset has no ${what} text`);
  return text;
}

/** firewall.restore for the last good ruleset `applied`. */
export function recordedRestoreFiles(applied: AppliedFirewall): RestoreFiles {
  const b = new Builder('the last good port allowlist (as in firewall.json)')
    .add('backend', applied.backend)
    .add('digest', applied.digest)
    .add('rules', applied.ruleCount)
    .add('applied_at', applied.appliedAt);
  if (applied.backend === 'nft') return b.text('nft_sha256', need(applied.rendered.nft, 'nft'), 'nft').done();
  return b
    .text('ipv4_sha256', need(applied.rendered.ipv4, 'ipv4'), 'ipv4')
    .text('ipv6_sha256', need(applied.rendered.ipv6, 'ipv6'), 'ipv6')
    .add('jump_rule', renderJumpRule())
    .done();
}

export interface ConfigSource {
  /** In-image path of the config file the early unit reads. */
  path: string;
  /** sha256 of its bytes; null: there is no such file (defaults). */
  sha256: string | null;
}

/** firewall-baseline.restore: the early restore's decision under `cfg` (read from `source`). */
export function baselineRestoreFiles(cfg: AgentConfig['firewall'], source: ConfigSource): RestoreFiles {
  const nft = renderBaseline(cfg, 'nft');
  // iptables-nft and iptables-legacy take the same restore texts (only the binaries differ).
  const ipt = renderBaseline(cfg, 'iptables-legacy');
  return new Builder('the early firewall restore decision and the baseline ruleset (firewall.*)')
    .add('config', source.path)
    .add('config_sha256', source.sha256 ?? 'absent')
    .add('mode', cfg.mode)
    .add('baseline', cfg.baseline.enabled ? 'enabled' : 'disabled')
    .add('backend', cfg.backend)
    .add('allows', describeBaseline(cfg))
    .add('nft_digest', nft.digest)
    .add('nft_rules', nft.ruleCount)
    .text('nft_sha256', need(nft.nft, 'nft'), 'nft')
    .add('iptables_digest', ipt.digest)
    .add('iptables_rules', ipt.ruleCount)
    .text('ipv4_sha256', need(ipt.ipv4, 'ipv4'), 'ipv4')
    .text('ipv6_sha256', need(ipt.ipv6, 'ipv6'), 'ipv6')
    .add('jump_rule', renderJumpRule())
    .done();
}

/** The text-file names a manifest refers to (for pruning the others); a malformed line refers to none. */
export function referencedTexts(manifest: string): string[] {
  const exts: Record<string, string> = { nft_sha256: 'nft', ipv4_sha256: 'ipv4', ipv6_sha256: 'ipv6' };
  const out: string[] = [];
  for (const l of manifest.split('\n')) {
    const m = /^([a-z0-9_]+)=([0-9a-f]{64})$/.exec(l);
    const ext = m ? exts[m[1] as string] : undefined;
    if (m && ext) out.push(`${m[2]}.${ext}`);
  }
  return out;
}
