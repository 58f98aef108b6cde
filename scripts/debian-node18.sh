#!/usr/bin/env bash
# Prepare Debian 12's own Node 18 (the `nodejs` an image baker gets from bookworm) beside the
# machine's Node 20, without replacing it: download the .debs, unpack them under
# .cache/node18/ and write a wrapper. The tests run the agent bundle with it, because the
# bundle must run on the Node that images actually have. Prints the wrapper's path.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/node18
if [ -x "$dir/node" ] && "$dir/node" -e 'process.exit(process.versions.node.startsWith("18.") ? 0 : 1)' 2>/dev/null; then
  echo "$PWD/$dir/node"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
version=$(apt-cache madison nodejs | awk -F'|' '$2 ~ /^ *18\./ { gsub(/ /, "", $2); print $2; exit }')
[ -n "$version" ] || { echo "debian-node18: no Debian nodejs 18 in the apt sources" >&2; exit 1; }
# libnode108's own dependencies (shared libs, and the builtins Debian keeps in /usr/share/nodejs).
apt-get install -y -qq --no-install-recommends --no-upgrade libc-ares2 libuv1 libbrotli1 libnghttp2-14 libicu72 libssl3 \
  node-acorn node-cjs-module-lexer node-undici >&2
rm -rf "$dir" && mkdir -p "$dir/debs"
(cd "$dir/debs" && apt-get download "nodejs=$version" "libnode108=$version" >&2) 2>&1 | grep -v 'unsandboxed' >&2 || true
for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
cat > "$dir/node" <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$PWD/$dir/root/usr/lib/x86_64-linux-gnu" exec "$PWD/$dir/root/usr/bin/node" "\$@"
WRAP
chmod +x "$dir/node"
"$dir/node" -e 'if (!process.versions.node.startsWith("18.")) process.exit(1)'
echo "$PWD/$dir/node"
