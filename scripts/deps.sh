#!/bin/sh
# Install the Debian packages that psl's build, tests and benchmarks need.
# Idempotent: asks dpkg-query for each package and runs `apt-get update` (once) and
# `apt-get install` only when something is missing. Works as root without a terminal (CI=true);
# uses sudo only when not root. Add new packages to REQUIRED (or OPTIONAL when a failure to
# install must not stop the build).
set -eu

REQUIRED="build-essential cmake pkg-config
clang-19 lld-19 musl-tools wasi-libc libclang-rt-19-dev-wasm32 libclang-rt-19-dev clang-format-19
libc++-19-dev-wasm32 libc++abi-19-dev-wasm32 rustc libstd-rust-dev-wasm32
libcmocka-dev wabt llvm-19-dev
libsodium-dev libzmq3-dev liblmdb-dev protobuf-c-compiler libprotobuf-c-dev
libmicrohttpd-dev libcjson-dev libcurl4-openssl-dev libgcrypt20-dev libseccomp-dev hyperfine
redis-server libhiredis-dev gnuplot-nox curl python3 zlib1g-dev dataset-fashion-mnist time"

# The benchmarks use node; the AssemblyScript guest example needs node and npm (its build and
# test say SKIP loudly without them). Nothing else does.
OPTIONAL="nodejs npm"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps.sh: not root and no sudo: cannot install packages" >&2
    SUDO="__none__"
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing_of() {
    out=""
    for p in $1; do
        installed "$p" || out="$out $p"
    done
    echo "$out"
}

UPDATED=0
apt_update_once() {
    if [ "$UPDATED" -eq 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
        UPDATED=1
    fi
}

apt_install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

need=$(missing_of "$REQUIRED")
if [ -n "$need" ]; then
    if [ "$SUDO" = "__none__" ]; then
        echo "deps.sh: missing packages:$need" >&2
        exit 1
    fi
    echo "deps.sh: installing:$need"
    apt_update_once
    # shellcheck disable=SC2086
    apt_install $need
fi

opt=$(missing_of "$OPTIONAL")
if [ -n "$opt" ]; then
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        : # node and npm are already on PATH (not from Debian): use them
    elif [ "$SUDO" != "__none__" ]; then
        echo "deps.sh: installing optional:$opt"
        apt_update_once
        # shellcheck disable=SC2086
        apt_install $opt || echo "deps.sh: optional packages not installed:$opt (benchmarks skip node)"
    fi
fi

echo "deps.sh: all required packages are installed"
