#!/bin/sh
# firewall-restore.sh — the early firewall restore of cartridge-agent, without starting Node.
#
# Run by cartridge-agent-firewall.service before network-pre.target. It does what
# `cartridge-agent firewall restore` does (docs/firewall.md, fail closed), from files the agent
# recorded in its state dir (agent/src/firewall/restore-files.ts):
#   firewall.restore           the last good ruleset: backend, sha256 of each text, INPUT jump
#   firewall-baseline.restore  the decision for the config file (mode, baseline, backend
#                              preference, the file's sha256) and the baseline for each backend
#   firewall-rules/<sha256>.{nft,ipv4,ipv6}  the exact texts nft / iptables-restore take
# Every text is checked against its sha256 before use. Whatever the files cannot decide (no
# baseline record, the config file changed since it was recorded, a damaged baseline record, a
# record from an agent that wrote no firewall.restore) is handed over to the agent itself.
# POSIX sh (dash, bash, busybox sh); needs sha256sum (coreutils) and nft or iptables.
set -u

PROG=firewall-restore.sh
LIB_DIR=/usr/lib/cartridge-agent
E_USAGE=2 E_FIREWALL=8

usage() {
  cat <<EOF
Usage: $PROG [--root DIR] [--state-dir DIR] [--node PATH] [--bundle FILE] [-h|--help]

Put the last good port allowlist recorded by cartridge-agent back into the kernel, exactly as
recorded (nft -f; iptables-restore -w 5 --noflush and ip6tables-restore, one transaction per
family, the INPUT jump added when missing), or on a first boot the baseline ruleset. Only the
agent's own table / chain and jump are touched. A damaged or edited record puts the baseline
in force and exits 8 naming the file. firewall.mode plan: only says what it would do; off:
does nothing (as recorded by the agent for the config file).

  --root DIR       resolve the paths below under DIR (default /; tests)
  --state-dir DIR  the agent's state dir (default /var/lib/cartridge-agent)
  --node PATH      the Node.js to hand over to (default /usr/bin/node)
  --bundle FILE    the agent bundle (default $LIB_DIR/cartridge-agent.js)
  -h, --help       this help

Exit codes: 0 restored (or nothing to do), 2 usage, 8 the record could not be restored (the
baseline is in force instead, unless firewall.baseline.enabled is false); after a hand-over,
those of 'cartridge-agent firewall restore'.
EOF
}

out() { printf 'firewall: %s\n' "$*"; }
err() { printf 'cartridge-agent: %s\n' "$*" >&2; }
usage_error() {
  printf '%s: %s; see %s --help\n' "$PROG" "$*" "$PROG" >&2
  exit $E_USAGE
}

root=/
state_dir=/var/lib/cartridge-agent
node=/usr/bin/node
bundle=$LIB_DIR/cartridge-agent.js
config_path=/etc/cartridge-agent/agent.json
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --root | --state-dir | --node | --bundle)
      [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"
      case $1 in
        --root) root=$2 ;;
        --state-dir) state_dir=$2 ;;
        --node) node=$2 ;;
        --bundle) bundle=$2 ;;
      esac
      shift 2
      ;;
    *) usage_error "unknown argument \"$1\"" ;;
  esac
done

# Paths under --root, without a subshell (every fork counts before the network).
prefix=${root%/}
state=$prefix$state_dir
rules_dir=$state/firewall-rules
recorded_file=$state/firewall.restore
baseline_file=$state/firewall-baseline.restore
json_file=$state/firewall.json
config_file=$prefix$config_path

# ---- hand-over: what only the agent can decide ----------------------------------------------
handover() {
  if [ -x "$node" ] && [ -f "$bundle" ]; then
    printf '%s: %s; handing over to cartridge-agent firewall restore\n' "$PROG" "$1" >&2
    # --jitless: the unit denies writable+executable memory (MemoryDenyWriteExecute=yes).
    exec "$node" --jitless --no-expose-wasm "$bundle" firewall restore --root "$root"
  fi
  err "firewall restore: $1, and the agent ($node $bundle) is not there to decide; nothing restored"
  exit $E_FIREWALL
}

# ---- manifests: key=value lines, read without eval of any value --------------------------
KEYS='format config config_sha256 mode baseline backend allows digest rules applied_at nft_digest nft_rules nft_sha256 iptables_digest iptables_rules ipv4_sha256 ipv6_sha256 jump_rule'
problem=
# read_manifest FILE PREFIX: sets PREFIX_<key> for every key (empty when absent); sets
# $problem and returns 1 when a line is not one of ours.
read_manifest() {
  for k in $KEYS; do eval "${2}_$k="; done
  problem=
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      '#'* | '') continue ;;
      *=*) ;;
      *) problem="a line is not key=value: \"$line\""; return 1 ;;
    esac
    k=${line%%=*}
    case $k in
      '' | *[!a-z0-9_]*) problem="a key is not a name: \"$k\""; return 1 ;;
    esac
    case " $KEYS " in
      *" $k "*) eval "${2}_$k=\${line#*=}" ;; # $k is one of KEYS: nothing of the file is evaluated
      *) problem="unknown key \"$k\""; return 1 ;;
    esac
  done <"$1"
}
is_sha() {
  case $1 in
    *[!0-9a-f]* | '') return 1 ;;
  esac
  [ ${#1} -eq 64 ]
}
is_count() {
  case $1 in
    *[!0-9]* | '') return 1 ;;
  esac
}
# check_jump RULE: the iptables-save form of the INPUT jump, e.g. "-A INPUT -j CARTRIDGE-INPUT".
check_jump() {
  case ${1#-A INPUT -j } in
    "$1" | '' | *[!A-Z0-9_-]*) return 1 ;;
  esac
}

# ---- digests: one sha256sum for every file this run may use ---------------------------------
sums=
hash_files() {
  sums=$(sha256sum -- "$@" 2>/dev/null)
}
# sum_of FILE: sets $got to its sha256 from the batch (empty: missing or unreadable).
sum_of() {
  got=
  while read -r s f; do
    [ "$f" = "$1" ] && { got=$s; break; }
  done <<EOF
$sums
EOF
}
# verify FILE SHA: sets $problem when FILE is not the text recorded as SHA.
verify() {
  sum_of "$1"
  if [ -z "$got" ]; then
    problem="$1 is missing or unreadable"
    return 1
  fi
  [ "$got" = "$2" ] && return 0
  problem="$1 has sha256 $got, not the recorded $2"
  return 1
}

# ---- applying: exactly what agent/src/firewall/apply-nft.ts / apply-iptables.ts do ----------
said=
# ipt_tools BACKEND: the binaries of that iptables variant (suffixed names, else plain ones if
# `iptables -V` says they are that variant).
ipt_tools() {
  v=${1#iptables-}
  if command -v "iptables-$v-restore" >/dev/null 2>&1 && command -v "ip6tables-$v-restore" >/dev/null 2>&1; then
    list4=iptables-$v list6=ip6tables-$v restore4=iptables-$v-restore restore6=ip6tables-$v-restore
    return 0
  fi
  want=legacy
  [ "$v" = nft ] && want=nf_tables
  if command -v iptables >/dev/null 2>&1 && [ "$(variant)" = "$want" ]; then
    list4=iptables list6=ip6tables restore4=iptables-restore restore6=ip6tables-restore
    return 0
  fi
  said="firewall backend \"$1\" is not available: neither iptables-$v nor iptables is the $want variant"
  return 1
}
# variant: what `iptables -V` says (nf_tables, legacy; empty: no version printed).
variant() {
  v_out=$(iptables -V 2>&1)
  case $v_out in
    *'tables v'[0-9]*'(nf_tables)'*) echo nf_tables ;;
    *'tables v'[0-9]*) echo legacy ;;
  esac
}
# with_jump FILE JUMPS RULE: the restore text plus the jump edits before its final COMMIT.
with_jump() {
  last= first=true
  while IFS= read -r l || [ -n "$l" ]; do
    $first || printf '%s\n' "$last"
    last=$l first=false
  done <"$1"
  [ "$last" = COMMIT ] || return 1
  n=$2
  if [ "$n" -eq 0 ]; then printf -- '-I INPUT 1 %s\n' "${3#-A INPUT }"; fi
  while [ "$n" -gt 1 ]; do
    printf -- '-D INPUT %s\n' "${3#-A INPUT }"
    n=$((n - 1))
  done
  printf 'COMMIT\n'
}
# apply_family BACKEND LIST RESTORE FILE RULE FAMILY: one iptables-restore --noflush transaction.
apply_family() {
  listing=$("$2" -w 5 -t filter -S 2>&1) || {
    said="firewall ($1): list $6 filter table ($2 -S) failed: $(printf '%s\n' "$listing" | head -n 1)"
    return 1
  }
  # Exact lines only (trailing blanks aside), as readback.ts pickIptablesState counts them.
  jumps=0
  while IFS= read -r l; do
    l=${l%"${l##*[! ]}"}
    [ "$l" = "$5" ] && jumps=$((jumps + 1))
  done <<EOF
$listing
EOF
  text=$(with_jump "$4" "$jumps" "$5") || {
    said="firewall ($1): $4 has no final COMMIT line"
    return 1
  }
  msg=$(printf '%s\n' "$text" | "$3" -w 5 --noflush 2>&1) && return 0
  rc=$?
  said="firewall ($1): apply $6 ($3) failed (exit $rc): $(printf '%s\n' "$msg" | sed -n '/[^[:space:]]/{p;q;}')"
  return 1
}
# apply BACKEND NFT|IPV4 IPV6 RULE: put the texts in force; sets $said on failure.
apply() {
  if [ "$1" = nft ]; then
    if ! command -v nft >/dev/null 2>&1; then
      said='firewall (nft): nft is not installed (package nftables)'
      return 1
    fi
    # One `nft -f` is one kernel transaction: when it fails, nothing of it happened.
    msg=$(nft -f "$2" 2>&1) && return 0
    rc=$?
    said="firewall (nft): apply (nft -f) failed (exit $rc): $(printf '%s\n' "$msg" | sed -n '/[^[:space:]]/{p;q;}')"
    return 1
  fi
  ipt_tools "$1" || return 1
  apply_family "$1" "$list4" "$restore4" "$2" "$4" ipv4 || return 1
  apply_family "$1" "$list6" "$restore6" "$3" "$4" ipv6
}

# ---- the baseline ------------------------------------------------------------------------------
# baseline_backend [RECORDED]: sets $bb to the recorded backend when known, the configured one,
# else the host's, detected as agent/src/firewall/backend.ts does.
baseline_backend() {
  bb=${1:-}
  [ -n "$bb" ] && return 0
  case $B_backend in
    nft | iptables-nft | iptables-legacy) bb=$B_backend; return 0 ;;
  esac
  nft_there=false
  command -v nft >/dev/null 2>&1 && nft_there=true
  if command -v iptables >/dev/null 2>&1; then
    case $(variant) in
      nf_tables) if $nft_there; then bb=nft; else bb=iptables-nft; fi; return 0 ;;
      legacy) bb=iptables-legacy; return 0 ;;
    esac
  fi
  if $nft_there; then bb=nft; return 0; fi
  return 1
}
# put_baseline [RECORDED-BACKEND]: the baseline in force; sets $in_force (a description) or $said.
put_baseline() {
  baseline_backend "${1:-}" || {
    said='no firewall tool found: neither iptables nor nft is installed (install nftables or iptables)'
    return 1
  }
  if [ "$bb" = nft ]; then
    apply nft "$rules_dir/$B_nft_sha256.nft" || return 1
    in_force="nft, $B_nft_rules rules, sha256 $B_nft_digest; allows $B_allows (firewall.alwaysAllow, firewall.baseline.allow)"
  else
    apply "$bb" "$rules_dir/$B_ipv4_sha256.ipv4" "$rules_dir/$B_ipv6_sha256.ipv6" "$B_jump_rule" || return 1
    in_force="$bb, $B_iptables_rules rules, sha256 $B_iptables_digest; allows $B_allows (firewall.alwaysAllow, firewall.baseline.allow)"
  fi
}
# damaged MESSAGE [RECORDED-BACKEND]: the baseline instead, exit 8 with MESSAGE.
damaged() {
  if [ "$B_mode" = plan ]; then err "$1"; exit $E_FIREWALL; fi
  if [ "$B_baseline" != enabled ]; then err "$1"; exit $E_FIREWALL; fi
  if put_baseline "${2:-}"; then
    err "$1; the baseline ruleset is in force instead: $in_force"
  else
    err "$1; the baseline ruleset could NOT be put in force either: $said"
  fi
  exit $E_FIREWALL
}

# ---- the decision -------------------------------------------------------------------------------
[ -f "$baseline_file" ] || handover "no $baseline_file (the agent has not recorded the early restore for this config)"
read_manifest "$baseline_file" B || handover "$baseline_file is damaged: $problem"
[ "$B_format" = 1 ] || handover "$baseline_file is of format \"$B_format\", not 1"
[ "$B_config" = "$config_path" ] || handover "$baseline_file was recorded for $B_config, not $config_path"
case $B_mode in enforce | plan | off) ;; *) handover "$baseline_file is damaged: mode \"$B_mode\"" ;; esac
case $B_baseline in enabled | disabled) ;; *) handover "$baseline_file is damaged: baseline \"$B_baseline\"" ;; esac
case $B_backend in auto | nft | iptables-nft | iptables-legacy) ;; *) handover "$baseline_file is damaged: backend \"$B_backend\"" ;; esac
for v in "$B_nft_sha256" "$B_ipv4_sha256" "$B_ipv6_sha256" "$B_nft_digest" "$B_iptables_digest"; do
  is_sha "$v" || handover "$baseline_file is damaged: \"$v\" is not a sha256"
done
is_count "$B_nft_rules" && is_count "$B_iptables_rules" || handover "$baseline_file is damaged: a rule count is not a number"
check_jump "$B_jump_rule" || handover "$baseline_file is damaged: jump_rule \"$B_jump_rule\""

have_record=false
if [ -f "$recorded_file" ]; then
  have_record=true
  read_manifest "$recorded_file" R || R_problem=$problem
elif [ -e "$json_file" ]; then
  handover "$json_file has no $recorded_file beside it (recorded by an older agent?)"
fi
R_problem=${R_problem:-}

# Everything this run may need, hashed in one go.
set -- "$rules_dir/$B_nft_sha256.nft" "$rules_dir/$B_ipv4_sha256.ipv4" "$rules_dir/$B_ipv6_sha256.ipv6"
[ -e "$config_file" ] && set -- "$@" "$config_file"
if $have_record && [ -z "$R_problem" ]; then
  case $R_backend in
    nft) set -- "$@" "$rules_dir/$R_nft_sha256.nft" ;;
    *) set -- "$@" "$rules_dir/$R_ipv4_sha256.ipv4" "$rules_dir/$R_ipv6_sha256.ipv6" ;;
  esac
fi
hash_files "$@"

config_sum=absent
if [ -e "$config_file" ]; then sum_of "$config_file"; config_sum=$got; fi
[ "$config_sum" = "$B_config_sha256" ] || handover "$config_file changed since the agent recorded the early restore"

if [ "$B_mode" = off ]; then
  out 'mode off (firewall.mode), nothing restored'
  exit 0
fi

# The baseline's own texts must be intact before anything relies on them.
if [ "$B_mode" = enforce ] && [ "$B_baseline" = enabled ]; then
  for f in "$B_nft_sha256.nft" "$B_ipv4_sha256.ipv4" "$B_ipv6_sha256.ipv6"; do
    verify "$rules_dir/$f" "${f%.*}" || handover "the recorded baseline is damaged: $problem"
  done
fi

if ! $have_record; then
  if [ "$B_mode" = plan ]; then
    if [ "$B_baseline" = enabled ]; then
      out "mode plan (firewall.mode), the kernel is not touched; nothing recorded (first boot?), would put the baseline ruleset in force; allows $B_allows"
    else
      out 'mode plan (firewall.mode), the kernel is not touched; nothing recorded, nothing would be restored (first boot?)'
    fi
    exit 0
  fi
  if [ "$B_baseline" != enabled ]; then
    out 'nothing recorded, nothing restored (first boot?); firewall.baseline.enabled is false'
    exit 0
  fi
  put_baseline || {
    err "firewall baseline: $said"
    exit $E_FIREWALL
  }
  out "nothing recorded (first boot?); the baseline ruleset is in force: $in_force"
  exit 0
fi

# ---- the recorded last good ruleset ------------------------------------------------------------
[ -z "$R_problem" ] || damaged "$recorded_file is damaged, not restoring it: $R_problem"
[ "$R_format" = 1 ] || damaged "$recorded_file is damaged, not restoring it: format \"$R_format\", not 1"
case $R_backend in
  nft) is_sha "$R_nft_sha256" || damaged "$recorded_file is damaged, not restoring it: nft_sha256 \"$R_nft_sha256\"" ;;
  iptables-nft | iptables-legacy)
    is_sha "$R_ipv4_sha256" && is_sha "$R_ipv6_sha256" || damaged "$recorded_file is damaged, not restoring it: ipv4_sha256 / ipv6_sha256" "$R_backend"
    check_jump "$R_jump_rule" || damaged "$recorded_file is damaged, not restoring it: jump_rule \"$R_jump_rule\"" "$R_backend"
    ;;
  *) damaged "$recorded_file is damaged, not restoring it: backend \"$R_backend\" is not one of nft, iptables-nft, iptables-legacy" ;;
esac
is_sha "$R_digest" && is_count "$R_rules" && [ -n "$R_applied_at" ] ||
  damaged "$recorded_file is damaged, not restoring it: digest, rules or applied_at missing" "$R_backend"
if [ "$R_backend" = nft ]; then
  verify "$rules_dir/$R_nft_sha256.nft" "$R_nft_sha256" || damaged "$problem, not restoring it" nft
else
  verify "$rules_dir/$R_ipv4_sha256.ipv4" "$R_ipv4_sha256" || damaged "$problem, not restoring it" "$R_backend"
  verify "$rules_dir/$R_ipv6_sha256.ipv6" "$R_ipv6_sha256" || damaged "$problem, not restoring it" "$R_backend"
fi

described="$R_backend, $R_rules rules, sha256 $R_digest (applied $R_applied_at)"
if [ "$B_mode" = plan ]; then
  out "mode plan (firewall.mode), the kernel is not touched; would restore the recorded ruleset: $described"
  exit 0
fi
if [ "$R_backend" = nft ]; then
  apply nft "$rules_dir/$R_nft_sha256.nft" || damaged "firewall restore (nft, recorded in $recorded_file): $said" nft
else
  apply "$R_backend" "$rules_dir/$R_ipv4_sha256.ipv4" "$rules_dir/$R_ipv6_sha256.ipv6" "$R_jump_rule" ||
    damaged "firewall restore ($R_backend, recorded in $recorded_file): $said" "$R_backend"
fi
out "restored the recorded ruleset: $described"
exit 0
