#!/bin/sh
# mount-seeds.sh — mount labelled seed media read-only for cartridge-agent.
#
# Run by cartridge-agent-seed.service before the agent. The agent's own sandbox has no
# CAP_SYS_ADMIN and cannot mount; instead its baked config reads the directories this script
# fills (sources.configdrive.seedDirs / sources.nocloud.seedDirs, sources.scanDevices=false).
# POSIX sh; needs blkid, mount, umount and mountpoint (util-linux).
set -u

PROG=mount-seeds.sh
# The labels cloud-init and the agent look for: an OpenStack config drive and a NoCloud seed.
DEFAULT_LABELS='config-2 CONFIG-2 cidata CIDATA'
# Seed media are ISO 9660 or FAT (as cloud-init accepts); a disk with one of our labels and
# another filesystem (a data disk someone named "cidata") is not mounted.
DEFAULT_FSTYPES='iso9660,vfat'
DEFAULT_DIR=/run/cartridge-agent-seed

usage() {
  cat <<EOF
Usage: $PROG [--dir DIR] [--labels "LABEL ..."] [--fstypes LIST] [--unmount] [-h|--help]

Mount every block device carrying one of the seed labels read-only
(ro,nosuid,nodev,noexec) on DIR/<label>, for cartridge-agent to read. No such
device: nothing is done and nothing is printed. Already mounted: left as is.

  --dir DIR         where the mount points go (default $DEFAULT_DIR)
  --labels LIST     space-separated filesystem labels (default "$DEFAULT_LABELS")
  --fstypes LIST    comma-separated filesystem types that may be mounted
                    (default $DEFAULT_FSTYPES); others are skipped with a message
  --unmount         unmount DIR/<label> for every label and remove the mount points
  -h, --help        this help

Exit codes: 0 done (also when there is no seed device), 1 a device was found but
could not be probed or mounted (the others are still mounted), 2 usage,
3 a required tool (blkid, mount, umount, mountpoint) is missing.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage_error() {
  say "$*"
  say "see '$PROG --help'"
  exit 2
}

dir=$DEFAULT_DIR
labels=$DEFAULT_LABELS
fstypes=$DEFAULT_FSTYPES
unmount=false
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dir | --labels | --fstypes)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in
        --dir) dir=$2 ;;
        --labels) labels=$2 ;;
        --fstypes) fstypes=$2 ;;
      esac
      shift 2
      ;;
    --unmount) unmount=true; shift ;;
    *) usage_error "unknown argument \"$1\"" ;;
  esac
done
case $dir in
  /*) ;;
  *) usage_error "--dir must be an absolute path, got \"$dir\"" ;;
esac
for label in $labels; do
  # Labels become path components under DIR: nothing that could climb out of it.
  case $label in
    '' | . | .. | */* | *[!A-Za-z0-9_.-]*) usage_error "--labels: \"$label\" is not a plain filesystem label" ;;
  esac
done
[ -n "$labels" ] || usage_error "--labels is empty"

for tool in blkid mount umount mountpoint; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool not found on PATH (install util-linux / mount)"; exit 3; }
done

if $unmount; then
  status=0
  for label in $labels; do
    target=$dir/$label
    if mountpoint -q "$target" 2>/dev/null; then
      if umount "$target"; then say "unmounted $target"; else status=1; continue; fi
    fi
    [ -d "$target" ] && rmdir "$target" 2>/dev/null
  done
  [ -d "$dir" ] && rmdir "$dir" 2>/dev/null
  exit $status
fi

# Is $1 one of the comma-separated $fstypes?
allowed_type() {
  case ",$fstypes," in
    *",$1,"*) return 0 ;;
    *) return 1 ;;
  esac
}

status=0
used=' '
for label in $labels; do
  target=$dir/$label
  if mountpoint -q "$target" 2>/dev/null; then
    continue
  fi
  # -c /dev/null: no blkid cache, probe the devices now (a just-attached drive is seen);
  # -t LABEL= matches exactly. Exit 2 means no device has the label.
  devices=$(blkid -c /dev/null -o device -t "LABEL=$label")
  rc=$?
  [ $rc -eq 2 ] && continue
  if [ $rc -ne 0 ]; then
    say "blkid failed (exit $rc) looking for LABEL=$label"
    status=1
    continue
  fi
  for dev in $devices; do
    case $used in *" $dev "*) continue ;; esac
    fstype=$(blkid -c /dev/null -o value -s TYPE "$dev")
    if ! allowed_type "$fstype"; then
      say "ignoring $dev labelled $label: its filesystem (${fstype:-unknown}) is not one of $fstypes"
      continue
    fi
    used="$used$dev "
    if ! mkdir -p -m 0700 "$dir" || ! mkdir -p "$target"; then
      say "cannot create the mount point $target"
      status=1
      break
    fi
    if mount -t "$fstype" -o ro,nosuid,nodev,noexec "$dev" "$target"; then
      say "mounted $dev ($fstype, LABEL=$label) read-only on $target"
    else
      say "cannot mount $dev ($fstype, LABEL=$label) on $target"
      rmdir "$target" 2>/dev/null
      status=1
    fi
    # One device per label: a second one with the same label would be ambiguous.
    break
  done
done
exit $status
