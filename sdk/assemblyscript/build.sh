#!/bin/sh
# Compile an AssemblyScript psl function to a WASI command module.
#   sdk/assemblyscript/build.sh TOOLDIR OUT.wasm SOURCE.ts
# TOOLDIR receives the pinned compiler (package.json / package-lock.json beside this script) from
# npm the first time, or again when the lock file changed; later builds do not touch the network.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
tooldir=$1
out=$2
src=$3

die() {
    echo "assemblyscript: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || die "node not found: install nodejs and npm (scripts/deps.sh)"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm (scripts/deps.sh)"

asc="$tooldir/node_modules/.bin/asc"
if [ ! -x "$asc" ] || ! cmp -s "$here/package-lock.json" "$tooldir/package-lock.json"; then
    mkdir -p "$tooldir"
    cp "$here/package.json" "$here/package-lock.json" "$tooldir/"
    echo "assemblyscript: installing the pinned compiler into $tooldir (npm ci)"
    if ! (cd "$tooldir" && npm ci --no-audit --no-fund --loglevel=error); then
        rm -f "$tooldir/package-lock.json"
        die "npm ci failed (is the npm registry reachable? see the npm error above)"
    fi
fi

# --exportStart _start: the top-level code runs as a WASI command's entry point.
# --use abort=psl_abort: failed assertions write to stderr and trap (sdk/assemblyscript/psl.ts).
exec "$asc" "$src" --exportStart _start --use abort=psl_abort -O3 --noColors -o "$out"
