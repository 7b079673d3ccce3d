# Shared by the integration tests that run a local cluster (psl up) in a temporary directory;
# sourced after PSL is set: `. "$(dirname "$0")/cluster_lib.sh"; cluster_tmp NAME`.
# cluster_tmp NAME makes T (a new /tmp/psl-NAME-test.XXXXXX) and D ($T/cluster, the cluster's
# --dir), and installs the cleanup (psl down, then the directory is removed unless KEEP is set).
# ok/bad count results; finish prints "N passed, N failed" and is the script's status.
# inv FN DATA invokes through the gateway, kvget KEY reads the key-value store; both append their
# stderr to $T/client.err. port prints a free port on 127.0.0.1 (T must be set).
FAILS=0 PASSES=0
cluster_tmp() {
    T=$(mktemp -d "/tmp/psl-$1-test.XXXXXX") || exit 1
    D="$T/cluster"
    trap cleanup EXIT INT TERM
}
cleanup() { "$PSL" down --dir "$D" >/dev/null 2>&1; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
ok() { echo "ok:   $*"; PASSES=$((PASSES + 1)); }
bad() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
inv() { "$PSL" invoke "$1" --data "$2" --dir "$D" 2>>"$T/client.err"; }
kvget() { "$PSL" kv get "$1" --dir "$D" 2>>"$T/client.err"; }
finish() {
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}
# A free port, never one handed out before in this run (listed in $T/ports.used): the ports are
# only bound later, by the processes `psl up` starts, so the kernel may offer a released one
# again (the forwarder's XPUB and a storage replica once got the same).
port() {
    while :; do
        _p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        grep -qx "$_p" "$T/ports.used" 2>/dev/null || break
    done
    echo "$_p" >>"$T/ports.used"
    echo "$_p"
}
