#!/bin/sh
# build.sh — build dist/cartridge-agent_<version>_all.deb with dpkg-deb (docs/packaging.md).
#
# The package holds exactly what agent/bootstrap/bake.sh installs (it bakes into a staging
# tree with --stage), plus the Debian metadata: control, conffiles, maintainer scripts
# (postinst/prerm/postrm beside this file), copyright and changelog.
# Needs: dpkg-deb, gzip, node (for package.json and the license list), a built bundle.
set -eu

PROG=build.sh
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
repo=$(CDPATH='' cd -- "$here/../.." && pwd)

usage() {
  cat <<EOF
Usage: $PROG [--bundle FILE] [--out DIR]

Build cartridge-agent_<version>_all.deb (version from package.json) from the agent bundle.
  --bundle FILE   the agent bundle (default $repo/dist/cartridge-agent.js; 'npm run build')
  --out DIR       where the .deb goes (default $repo/dist)
Environment: DEB_MAINTAINER ("Name <email>") for the Maintainer field and changelog;
SOURCE_DATE_EPOCH for the changelog date (default: the last git commit, else now).
Prints the path of the .deb. Exit codes: 0 built, 1 failed, 2 usage, 4 an input is missing.
EOF
}
die() {
  code=$1
  shift
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit "$code"
}

bundle=$repo/dist/cartridge-agent.js
out=$repo/dist
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --bundle | --out)
      [ $# -ge 2 ] && [ -n "$2" ] || die 2 "$1 needs a value"
      if [ "$1" = --bundle ]; then bundle=$2; else out=$2; fi
      shift 2
      ;;
    *) die 2 "unknown argument \"$1\"; see '$PROG --help'" ;;
  esac
done
for tool in dpkg-deb gzip node; do
  command -v $tool >/dev/null 2>&1 || die 4 "$tool is not installed"
done
[ -f "$bundle" ] || die 4 "the agent bundle $bundle does not exist (run 'npm run build' or pass --bundle)"

version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
case $version in
  [0-9]*) ;;
  *) die 1 "package.json has no usable version (\"$version\")" ;;
esac
maintainer=${DEB_MAINTAINER:-cartridge-agent maintainers <cartridge-agent@example.org>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

# The file layout: exactly bake.sh's.
sh "$repo/agent/bootstrap/bake.sh" --stage --root "$stage" --bundle "$bundle" >/dev/null

doc=$stage/usr/share/doc/cartridge-agent
mkdir -p "$doc" "$stage/DEBIAN"

# Debian changelog (native package: changelog.gz).
{
  printf 'cartridge-agent (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * cartridge-agent %s, built from the project sources\n' "$version"
  printf '    (see the git history for the changes).\n\n'
  printf ' -- %s  %s\n' "$maintainer" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"

# copyright (DEP-5): the agent, and the npm packages its bundle is made from.
{
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cartridge-agent
Comment: /usr/lib/cartridge-agent/cartridge-agent.js is one bundle (esbuild) of the agent and
 the npm packages listed below: the runtime dependency tree of axios, mqtt and pino (a few are
 replaced by stubs at bundling time, see packaging/build.mjs in the sources).

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) the cartridge-agent authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
  node - "$repo" <<'EOF'
// Walk the agent's runtime dependencies in node_modules: name, version, license.
const fs = require('fs');
const path = require('path');
const repo = process.argv[2];
const seen = new Map();
function visit(name, from) {
  let dir = from;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) { dir = candidate; break; }
    const up = path.dirname(dir);
    if (up === dir) return;
    dir = up;
  }
  if (seen.has(dir)) return;
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const license = typeof pkg.license === 'string' ? pkg.license : (pkg.license && pkg.license.type) || 'see the package';
  seen.set(dir, `${pkg.name} ${pkg.version} (${license})`);
  for (const dep of Object.keys(pkg.dependencies || {})) visit(dep, dir);
}
for (const root of ['axios', 'mqtt', 'pino']) visit(root, repo);
const lines = [...new Set(seen.values())].sort();
console.log('\nFiles: usr/lib/cartridge-agent/cartridge-agent.js');
console.log('Copyright: the authors of each npm package below');
console.log('License: Apache-2.0 and the licenses of the npm packages below');
console.log(' Bundled npm packages (name, version, license):');
for (const l of lines) console.log(` ${l}`);
EOF
} >"$doc/copyright"
chmod 0644 "$doc/changelog.gz" "$doc/copyright"

# Man pages and bash completion, generated from the help texts, docs/cli.md and the config
# description by `npm run docs` (packaging/generated/; a test keeps them current). The
# controller's page and completion are not here: the package does not ship the controller.
gen=$repo/packaging/generated
for page in man/cartridge-agent.1 man/agent.json.5; do
  [ -f "$gen/$page" ] || die 4 "$gen/$page is missing (run 'npm run docs')"
  section=$stage/usr/share/man/man${page##*.}
  mkdir -p "$section"
  gzip -9n <"$gen/$page" >"$section/${page#man/}.gz"
  chmod 0644 "$section/${page#man/}.gz"
done
completions=$stage/usr/share/bash-completion/completions
mkdir -p "$completions"
cp "$gen/completion/cartridge-agent" "$completions/cartridge-agent" || die 4 "$gen/completion/cartridge-agent is missing (run 'npm run docs')"
chmod 0644 "$completions/cartridge-agent"

cat >"$stage/DEBIAN/control" <<EOF
Package: cartridge-agent
Version: $version
Architecture: all
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: nodejs (>= 18), systemd, mount
Recommends: nftables | iptables
Section: admin
Priority: optional
Description: boot-time payload, environment and port allowlist agent for VM images
 cartridge-agent is baked into private VM images. On every boot it finds the
 payload pointer (a personality file, a config drive, a NoCloud seed or cloud
 metadata), fetches the payload from the controller, exports it as environment
 variables for systemd units and shells, closes every inbound port except an
 allowlist (nftables or iptables, IPv4 and IPv6) and reports health to the
 controller over MQTT until shutdown.
EOF
# The baker's config must survive upgrades: dpkg asks before replacing a changed one.
printf '/etc/cartridge-agent/agent.json\n' >"$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  cp "$here/$script" "$stage/DEBIAN/$script"
  chmod 0755 "$stage/DEBIAN/$script"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb=$(CDPATH='' cd -- "$out" && pwd)/cartridge-agent_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
printf '%s\n' "$deb"
