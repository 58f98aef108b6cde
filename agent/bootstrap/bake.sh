#!/bin/sh
# bake.sh — install cartridge-agent into an image root (docs/packaging.md).
#
# Works from a Packer shell provisioner (a running build instance, --root /), a chroot
# (--root / inside it) or outside an image root (--root DIR), and on a running instance
# that is about to become an image. Idempotent: a second run changes nothing.
# POSIX sh plus coreutils (realpath, stat, cmp) and, when present, systemctl.
set -u
umask 022

PROG=bake.sh
UNITS='cartridge-agent.service cartridge-agent-firewall.service cartridge-agent-seed.service'
# The units with an [Install] section; the seed unit is pulled in by the agent (Wants=).
ENABLE='cartridge-agent.service cartridge-agent-firewall.service'
# agent/src/lifecycle/hooks.ts HOOK_EVENTS
HOOK_EVENTS='started activated ready-to-shutdown maintenance fault'
LIB_DIR=/usr/lib/cartridge-agent
UNIT_DIR=/lib/systemd/system
CONF_DIR=/etc/cartridge-agent
CONFIG=$CONF_DIR/agent.json
SCHEMA=/usr/share/cartridge-agent/agent.schema.json

# Exit codes (documented in --help and docs/packaging.md).
E_INSTALL=1 E_USAGE=2 E_ROOT=3 E_INPUT=4 E_CONFIG=5 E_ENABLE=6

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 1
repo=$(CDPATH='' cd -- "$here/../.." && pwd) || exit 1

usage() {
  cat <<EOF
Usage: $PROG [--root DIR] [--bundle FILE] [--config FILE] [--keep-state] [--no-enable] [--stage]

Install cartridge-agent into the image whose root file system is DIR:
  $LIB_DIR/cartridge-agent.js    the agent bundle (runs on the image's /usr/bin/node, >= 18)
  $LIB_DIR/mount-seeds.sh        mounts config-drive / NoCloud seed media for the agent
  $LIB_DIR/firewall-restore.sh   the early firewall restore (POSIX sh, no Node at boot)
  /usr/bin/cartridge-agent                    a wrapper: /usr/bin/node on the bundle
  $UNIT_DIR/cartridge-agent{,-firewall,-seed}.service
  $CONFIG              the default config, only if there is none (or --config FILE)
  $SCHEMA   its JSON Schema (for editors)
  $CONF_DIR/hooks/<event>.d/  for $HOOK_EVENTS
then enables the agent and firewall units, removes per-instance state (below) and records
the baseline ruleset for every backend with the early restore's decision for the config
(/var/lib/cartridge-agent/firewall-baseline.restore, firewall-rules/: 'cartridge-agent
firewall baseline --write'; needs node >= 18 here, else the first boot's early restore hands
over to the agent once).

  --root DIR      the image root (default /). Must look like a root file system (etc/, usr/).
  --bundle FILE   the agent bundle (default: dist/cartridge-agent.js of this checkout,
                  $repo/dist/cartridge-agent.js)
  --config FILE   install FILE as $CONFIG, replacing what is there. It is checked with
                  the bundle's own config validation first (needs node >= 18 on PATH; else
                  only parsed as JSON, with a warning)
  --keep-state    keep per-instance state. By default it is removed so an image baked from an
                  instance that has run the agent carries none: /var/lib/cartridge-agent/*
                  (payload cache, recorded firewall, sessions), /run/cartridge-agent,
                  /etc/profile.d/cartridge-agent.sh, the personality file
                  $CONF_DIR/payload-url
  --no-enable     install the units without enabling them
  --stage         DIR is a package staging tree (packaging/deb/build.sh), not an image: no
                  root-fs or node checks, no enabling, no state cleanup
  -h, --help      this help

Run as root on the image (Packer, chroot, running instance: --root /) or on the build host
with --root pointing at a mounted image root. On a running instance with systemd, new units
are loaded (daemon-reload) and a running agent is stopped before its state is removed; the
agent is never started.

Exit codes: 0 done (also when nothing had to change), 1 a file could not be installed or
removed, 2 usage, 3 --root is unusable (missing, not a root fs, a path leading out of it),
4 an input is missing (bundle, units, --config file), 5 --config is not a valid agent config,
6 enabling the units failed.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  code=$1
  shift
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit "$code"
}

root=/
bundle=$repo/dist/cartridge-agent.js
config=
keep_state=false
enable=true
stage=false
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --root | --bundle | --config)
      [ $# -ge 2 ] && [ -n "$2" ] || die $E_USAGE "$1 needs a value; see '$PROG --help'"
      case $1 in
        --root) root=$2 ;;
        --bundle) bundle=$2 ;;
        --config) config=$2 ;;
      esac
      shift 2
      ;;
    --root=* | --bundle=* | --config=*) die $E_USAGE "write '${1%%=*} VALUE' (with a space); see '$PROG --help'" ;;
    --keep-state) keep_state=true; shift ;;
    --no-enable) enable=false; shift ;;
    --stage) stage=true; enable=false; keep_state=true; shift ;;
    *) die $E_USAGE "unknown argument \"$1\"; see '$PROG --help'" ;;
  esac
done

# ---- the root ------------------------------------------------------------------------------
[ -d "$root" ] || die $E_ROOT "--root $root: no such directory"
root=$(realpath -- "$root") || die $E_ROOT "--root $root: cannot resolve it"
if ! $stage && { [ ! -d "$root/etc" ] || [ ! -d "$root/usr" ]; }; then
  die $E_ROOT "--root $root does not look like a root file system (it has no etc/ and usr/ directories)"
fi
# The host path of an in-image path.
at() {
  if [ "$root" = / ]; then printf '%s' "$1"; else printf '%s%s' "$root" "$1"; fi
}
# Refuse to write through a symlink that leads out of the image: with --root DIR, an
# absolute link such as DIR/lib -> /usr/lib would otherwise make us write to the host.
inside() {
  resolved=$(realpath -m -- "$(at "$1")") || die $E_ROOT "cannot resolve $(at "$1")"
  [ "$root" = / ] && return 0
  case $resolved in
    "$root" | "$root"/*) return 0 ;;
  esac
  die $E_ROOT "$(at "$1") resolves to $resolved, outside --root $root (an absolute or ../ symlink in the image?)"
}

# ---- the inputs -----------------------------------------------------------------------------
units_src=$repo/packaging/systemd
[ -f "$bundle" ] || die $E_INPUT "the agent bundle $bundle does not exist (run 'npm run build', or pass --bundle FILE)"
[ -r "$bundle" ] || die $E_INPUT "the agent bundle $bundle is not readable"
head -c 200 "$bundle" | grep -q 'node' || die $E_INPUT "$bundle does not look like the agent bundle (no node #! line)"
for f in "$here/mount-seeds.sh" "$here/firewall-restore.sh" "$here/agent.json"; do
  [ -f "$f" ] || die $E_INPUT "$f is missing (bake.sh needs the whole agent/bootstrap directory)"
done
# -- config schema (issue 12): generated by `npm run docs`, committed
schema_src=$repo/packaging/generated/agent.schema.json
[ -f "$schema_src" ] || die $E_INPUT "$schema_src is missing (bake.sh needs packaging/generated beside agent/bootstrap)"
# -- end config schema
for u in $UNITS; do
  [ -f "$units_src/$u" ] || die $E_INPUT "$units_src/$u is missing (bake.sh needs packaging/systemd beside agent/bootstrap)"
done
if [ -n "$config" ]; then
  [ -f "$config" ] || die $E_INPUT "--config $config: no such file"
  [ -r "$config" ] || die $E_INPUT "--config $config: not readable"
fi

# A node that can run the bundle here (>= 18), or nothing.
host_node() {
  for n in "$(at /usr/bin/node)" "$(command -v node 2>/dev/null)"; do
    [ -n "$n" ] && [ -x "$n" ] || continue
    # Only a node that runs on this host: the image's own when --root is /, else PATH's.
    [ "$root" = / ] || [ "$n" != "$(at /usr/bin/node)" ] || continue
    if "$n" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' 2>/dev/null; then
      printf '%s' "$n"
      return 0
    fi
  done
  return 1
}

# Check --config with the agent's own loader: `config check` under an empty root validates it
# (exit 3 and the agent's message naming the key if invalid) and touches nothing.
check_config() {
  node=$(host_node) || node=
  if [ -z "$node" ]; then
    if command -v python3 >/dev/null 2>&1; then
      msg=$(python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$config" 2>&1) ||
        die $E_CONFIG "--config $config is not valid JSON: $(printf '%s' "$msg" | tail -n 1)"
      warn "no node >= 18 here to run the agent's config check: $config was only parsed as JSON"
    else
      warn "no node >= 18 (nor python3) here: $config was not checked"
    fi
    return 0
  fi
  tmp=$(mktemp -d) || die $E_INSTALL "cannot create a temporary directory"
  mkdir -p "$tmp$CONF_DIR" && cp "$config" "$tmp$CONFIG" || { rm -rf "$tmp"; die $E_INSTALL "cannot copy $config to $tmp"; }
  out=$(
    unset CARTRIDGE_AGENT_ROOT CARTRIDGE_AGENT_CONFIG CARTRIDGE_AGENT_LOG_LEVEL CARTRIDGE_AGENT_SOURCES \
      CARTRIDGE_AGENT_WAIT_SECONDS CARTRIDGE_AGENT_CODE_CACHE NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
    "$node" "$bundle" config check --root "$tmp" --config "$CONFIG" --log-level silent 2>&1 >/dev/null
  )
  rc=$?
  rm -rf "$tmp"
  # Name the baker's file, not the temporary copy.
  out=$(printf '%s\n' "$out" | awk -v from="$tmp$CONFIG" -v to="$config" \
    '{ while ((i = index($0, from)) > 0) $0 = substr($0, 1, i - 1) to substr($0, i + length(from)); print }')
  case $rc in
    0) return 0 ;;
    3) die $E_CONFIG "--config $config is not a valid agent config: ${out#cartridge-agent: }" ;;
  esac
  die $E_CONFIG "could not check --config $config with $node $bundle (exit $rc): $out"
}
[ -z "$config" ] || check_config

# ---- installing -----------------------------------------------------------------------------
changes=0
# put SRC IN-IMAGE-DEST MODE: copy when the content differs (atomically: temp + rename), set
# the mode when it differs; say what changed.
put() {
  dest=$(at "$2")
  inside "$2"
  mkdir -p "$(dirname "$dest")" || die $E_INSTALL "cannot create $(dirname "$dest")"
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$1" "$dest"; then
    if [ "$(stat -c %a "$dest")" != "${3#0}" ]; then
      chmod "$3" "$dest" || die $E_INSTALL "cannot chmod $dest"
      say "mode $3 $2"
      changes=$((changes + 1))
    fi
    return 0
  fi
  tmpf="$dest.bake-$$"
  if cp "$1" "$tmpf" && chmod "$3" "$tmpf" && mv -f "$tmpf" "$dest"; then
    say "installed $2"
    changes=$((changes + 1))
  else
    rm -f "$tmpf"
    die $E_INSTALL "cannot install $1 as $dest"
  fi
}
# mkdir_in IN-IMAGE-DIR MODE
mkdir_in() {
  d=$(at "$1")
  inside "$1"
  if [ ! -d "$d" ]; then
    mkdir -p "$d" && chmod "$2" "$d" || die $E_INSTALL "cannot create $d"
    say "created $1/"
    changes=$((changes + 1))
  fi
}

if ! $stage; then
  if [ ! -x "$(at /usr/bin/node)" ]; then
    warn "$(at /usr/bin/node) is missing: the agent runs on the image's own Node.js >= 18. Install it in the image (Debian 12: apt-get install nodejs, which is 18.19; older distributions need a newer nodejs) before it boots"
  elif [ "$root" = / ] && ! /usr/bin/node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' 2>/dev/null; then
    warn "/usr/bin/node is $(/usr/bin/node --version 2>/dev/null || echo 'not runnable'): the agent needs Node.js >= 18"
  fi
  [ -e "$(at /lib/systemd/systemd)" ] || [ -e "$(at /usr/lib/systemd/systemd)" ] ||
    warn "$root has no systemd: the units will not run there"
fi

wrapper=$(mktemp) || die $E_INSTALL "cannot create a temporary file"
trap 'rm -f "$wrapper"' EXIT
cat >"$wrapper" <<EOF
#!/bin/sh
# cartridge-agent command line: the agent bundle on the system's Node.js (installed by bake.sh).
exec /usr/bin/node $LIB_DIR/cartridge-agent.js "\$@"
EOF

put "$bundle" "$LIB_DIR/cartridge-agent.js" 0755
put "$here/mount-seeds.sh" "$LIB_DIR/mount-seeds.sh" 0755
put "$here/firewall-restore.sh" "$LIB_DIR/firewall-restore.sh" 0755
put "$wrapper" /usr/bin/cartridge-agent 0755
# -- config schema (issue 12): for editors checking agent.json ("$schema" in the default config)
put "$schema_src" "$SCHEMA" 0644
# -- end config schema
for u in $UNITS; do
  put "$units_src/$u" "$UNIT_DIR/$u" 0644
done
mkdir_in "$CONF_DIR" 0755
if [ -n "$config" ]; then
  put "$config" "$CONFIG" 0644
elif [ ! -e "$(at "$CONFIG")" ]; then
  put "$here/agent.json" "$CONFIG" 0644
fi
mkdir_in "$CONF_DIR/hooks" 0755
for e in $HOOK_EVENTS; do
  mkdir_in "$CONF_DIR/hooks/$e.d" 0755
done
# The agent writes its sh export here; its sandbox cannot create the directory itself.
$stage || mkdir_in /etc/profile.d 0755

# ==== code cache: V8's compiled agent, ready for the first boot (docs/packaging.md) ==========
# The unit runs the agent with CARTRIDGE_AGENT_CODE_CACHE=/var/cache/cartridge-agent; the
# loader (packaging/code-cache-loader.cjs) keys the cache by agent build, Node version and
# node flags, and trusts it only when root's and not group/other-writable. So it is filled
# here by the image's own /usr/bin/node with the unit's own ExecStart= flags, as root: one
# warm-up `once` against a throwaway root whose payload is inline in a NoCloud seed (no
# network; with --root the firewall is only planned). The image's node runs directly with
# --root /, through chroot otherwise; where neither works the first boot fills the cache.
CACHE_DIR=/var/cache/cartridge-agent
# ExecStart=/usr/bin/node FLAGS… /usr/lib/cartridge-agent/cartridge-agent.js run
unit_node_flags() {
  sed -n "s#^ExecStart=/usr/bin/node \(.*\) $LIB_DIR/cartridge-agent.js run\$#\1#p" "$units_src/cartridge-agent.service"
}
# image_node ARGS…: the image's /usr/bin/node in a clean environment (the unit's: no
# NODE_OPTIONS, no NODE_EXTRA_CA_CERTS), with the cache directory. In a chroot with a /proc
# of its own (the agent's run lock reads it) when $with_proc is set: a private mount and pid
# namespace, so nothing stays mounted in the image.
image_node() {
  if [ "$root" = / ]; then
    env -i PATH=/usr/bin:/bin CARTRIDGE_AGENT_CODE_CACHE=$CACHE_DIR /usr/bin/node "$@"
  elif [ -n "${with_proc:-}" ]; then
    env -i PATH=/usr/bin:/bin CARTRIDGE_AGENT_CODE_CACHE=$CACHE_DIR "$unshare_cmd" --mount --pid --fork --mount-proc="$root/proc" \
      "$chroot_cmd" "$root" /usr/bin/node "$@"
  else
    env -i PATH=/usr/bin:/bin CARTRIDGE_AGENT_CODE_CACHE=$CACHE_DIR "$chroot_cmd" "$root" /usr/bin/node "$@"
  fi
}
fill_code_cache() {
  if [ "$(id -u)" != 0 ]; then
    warn "code cache: not filled (only root's cache is trusted at boot); the first boot fills it"
    return 0
  fi
  flags=$(unit_node_flags)
  [ -n "$flags" ] || die $E_INPUT "cannot read the node flags from ExecStart= in $units_src/cartridge-agent.service"
  chroot_cmd=$(command -v chroot 2>/dev/null) || chroot_cmd=
  unshare_cmd=$(command -v unshare 2>/dev/null) || unshare_cmd=
  if [ "$root" != / ] && { [ -z "$chroot_cmd" ] || [ -z "$unshare_cmd" ]; }; then
    warn "code cache: not filled (no chroot and unshare here to run the image's node); the first boot fills it"
    return 0
  fi
  if ! image_node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' >/dev/null 2>&1; then
    warn "code cache: not filled (the image's /usr/bin/node >= 18 does not run here); the first boot fills it"
    return 0
  fi
  [ "$root" = / ] || mkdir_in /proc 0555
  mkdir_in "$CACHE_DIR" 0700
  cdir=$(at "$CACHE_DIR")
  if [ "$(stat -c '%u %a' "$cdir")" != '0 700' ]; then
    chown 0:0 "$cdir" && chmod 0700 "$cdir" || die $E_INSTALL "cannot make $cdir root's, mode 0700"
    say "mode 0700 root $CACHE_DIR"
    changes=$((changes + 1))
  fi
  mkdir -p "$(at /tmp)" || die $E_INSTALL "cannot create $(at /tmp)"
  warm=$(mktemp -d "$(at /tmp)/cartridge-agent-bake.XXXXXX") || die $E_INSTALL "cannot create a temporary directory in $(at /tmp)"
  mkdir -p "$warm$CONF_DIR" "$warm/var/lib/cloud/seed/nocloud" &&
    printf '%s\n' '{ "sources": { "order": ["nocloud"], "waitSeconds": 0, "scanDevices": false } }' >"$warm$CONFIG" &&
    printf 'instance-id: bake-warm-up\n' >"$warm/var/lib/cloud/seed/nocloud/meta-data" &&
    printf 'CARTRIDGE_BAKE_WARM_UP=1\n' >"$warm/var/lib/cloud/seed/nocloud/user-data" ||
    { rm -rf "$warm"; die $E_INSTALL "cannot write the warm-up root $warm"; }
  before=$(ls -ln --time-style=+%s "$cdir")
  set -f # the flags are words of the unit's command line
  # shellcheck disable=SC2086
  with_proc=1
  out=$(image_node $flags "$LIB_DIR/cartridge-agent.js" once --root "${warm#"${root%/}"}" --log-level warn 2>&1)
  rc=$?
  with_proc=
  set +f
  rm -rf "$warm"
  if [ $rc -ne 0 ]; then
    warn "code cache: the warm-up run failed (exit $rc), the first boot fills the cache: $out"
  elif [ "$(ls -ln --time-style=+%s "$cdir")" != "$before" ]; then
    say "filled the code cache $CACHE_DIR (node $(image_node -p process.version), flags $flags)"
    changes=$((changes + 1))
  fi
}
$stage || fill_code_cache
# ==== end of code cache ========================================================================

# ---- a running instance -----------------------------------------------------------------------
live=false
in_chroot() { command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt --quiet --chroot; }
if [ "$root" = / ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && ! in_chroot; then
  live=true
  systemctl daemon-reload || warn "systemctl daemon-reload failed"
fi

# ---- enabling ---------------------------------------------------------------------------------
# What `systemctl enable` makes, from the [Install] sections (WantedBy=, RequiredBy=): used when
# there is no systemctl on this host.
enable_by_hand() {
  for u in $ENABLE; do
    for kind in WantedBy RequiredBy; do
      suffix=wants
      [ $kind = RequiredBy ] && suffix=requires
      for target in $(sed -n "s/^$kind=//p" "$(at "$UNIT_DIR/$u")"); do
        link=/etc/systemd/system/$target.$suffix/$u
        mkdir_in "/etc/systemd/system/$target.$suffix" 0755
        if [ "$(readlink "$(at "$link")" 2>/dev/null)" != "$UNIT_DIR/$u" ]; then
          ln -sfn "$UNIT_DIR/$u" "$(at "$link")" || die $E_ENABLE "cannot create $(at "$link")"
          say "enabled $u ($link)"
          changes=$((changes + 1))
        fi
      done
    done
  done
}
# The enablement symlinks of our units, with their targets.
enable_links() {
  find "$(at /etc/systemd/system)" -name 'cartridge-agent*' -type l 2>/dev/null | sort | while read -r l; do
    printf '%s -> %s\n' "$l" "$(readlink "$l")"
  done
}
if $enable; then
  if command -v systemctl >/dev/null 2>&1; then
    before=$(enable_links)
    if $live; then
      out=$(systemctl enable $ENABLE 2>&1) || die $E_ENABLE "systemctl enable failed: $out"
    else
      out=$(systemctl --root="$root" enable $ENABLE 2>&1) || die $E_ENABLE "systemctl --root=$root enable failed: $out"
    fi
    # systemctl may also print notes when nothing changed: judge by the links themselves.
    if [ "$(enable_links)" != "$before" ]; then
      printf '%s\n' "$out" | sed "s/^/$PROG: /"
      changes=$((changes + 1))
    fi
  else
    enable_by_hand
  fi
fi

# ---- per-instance state -----------------------------------------------------------------------
remove() {
  inside "$1"
  if [ -e "$(at "$1")" ] || [ -L "$(at "$1")" ]; then
    rm -rf -- "$(at "$1")" || die $E_INSTALL "cannot remove $(at "$1")"
    say "removed $1"
    changes=$((changes + 1))
  fi
}
if ! $keep_state; then
  if $live && systemctl is-active --quiet cartridge-agent.service; then
    say "stopping the running agent before removing its state (its firewall rules stay in force)"
    systemctl stop cartridge-agent.service || warn "could not stop cartridge-agent.service"
  fi
  state=/var/lib/cartridge-agent
  if [ -d "$(at $state)" ]; then
    inside $state
    for f in "$(at $state)"/* "$(at $state)"/.[!.]* "$(at $state)"/..?*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      case ${f##*/} in
        # Derived from the config, not the instance: the record step below rewrites what
        # changed and prunes the instance's own rule texts from firewall-rules/.
        firewall-baseline.restore | firewall-rules) host_node >/dev/null && continue ;;
      esac
      remove "$state/${f##*/}"
    done
  fi
  remove /run/cartridge-agent
  remove /etc/profile.d/cartridge-agent.sh
  remove "$CONF_DIR/payload-url"
fi

# ---- the early firewall restore's record -------------------------------------------------------
# The baseline for every backend and the decision for the config, so that the first boot's
# early restore (firewall-restore.sh) needs no Node. The agent keeps it current after that.
record_baseline() {
  node=$(host_node) || {
    warn "no node >= 18 here to record the baseline: the first boot's early firewall restore hands over to the agent (one Node start)"
    return 0
  }
  mkdir_in /var/lib/cartridge-agent 0700
  out=$(
    unset CARTRIDGE_AGENT_ROOT CARTRIDGE_AGENT_CONFIG CARTRIDGE_AGENT_LOG_LEVEL CARTRIDGE_AGENT_CODE_CACHE NODE_OPTIONS
    "$node" "$(at "$LIB_DIR/cartridge-agent.js")" firewall baseline --write --root "$root" --log-level silent 2>&1
  ) || die $E_INSTALL "recording the baseline failed: ${out#cartridge-agent: }"
  printf '%s\n' "$out" | while IFS= read -r l; do
    case $l in "wrote: $root"*) say "recorded ${l#"wrote: ${root%/}"}" ;; esac
  done
  case $out in *wrote:*) changes=$((changes + 1)) ;; esac
}
$stage || record_baseline

[ $changes -eq 0 ] && say "nothing to change: $root already has this agent"
exit 0
