#!/bin/sh
# Key manager with real processes on loopback: `psl deployment create` seals a deployment in the
# coordinator's home, `psl keymgr` serves it, and workers (`psl deployment fetch`) get its keys
# only when attested and accepted by the deployment's policy; refusals name the reason. Also:
# psl attest / psl verify, and sealed state that was altered or rolled back is refused.
# Usage: test_keymgr.sh PSL
set -u
PSL=${1:?usage: test_keymgr.sh PSL}
T=$(mktemp -d /tmp/psl-km-test.XXXXXX)
PORT=$((20000 + ($$ * 7) % 12000)) # below 32768: never a client's ephemeral port
EP="tcp://127.0.0.1:$PORT"
FAILS=0
KM=""
cleanup() { [ -n "$KM" ] && kill "$KM" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok:   $*"; }
expect() { # expect NAME RC_WANTED TEXT -- command...
    name=$1 want=$2 text=$3
    shift 4
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -eq "$want" ] && printf '%s' "$out" | grep -q -- "$text"; then
        pass "$name: $(printf '%s' "$out" | grep -- "$text" | head -1)"
    else
        fail "$name (rc=$rc, want $want, text '$text'): $out"
    fi
}

C="$T/coord" W="$T/worker"
echo "workers = 2" > "$T/other.conf"
head -c 32 /dev/urandom > "$T/owner.seed"

# attest / verify, and the sim warning
expect attest_warns 0 "does NOT protect against root" -- "$PSL" attest --home "$W" -o "$T/w.report"
grep -q "^backend: sim$" "$T/w.report" && pass "report says backend: sim" || fail "report lacks 'backend: sim'"
"$PSL" policy --home "$W" -o "$T/worker.pol" 2>/dev/null
"$PSL" policy --home "$W" --production -o "$T/worker-prod.pol" 2>/dev/null
"$PSL" policy --home "$C" -o "$T/coord.pol" 2>/dev/null
expect verify_ok 0 "OK: report accepted" -- "$PSL" verify "$T/w.report" --policy "$T/worker.pol"
expect verify_production 1 "REJECTED: backend 'sim' not accepted" -- \
    "$PSL" verify "$T/w.report" --policy "$T/worker-prod.pol"
sed 's/^signature: \(.\)/signature: f\1/; s/^signature: \(.*\).$/signature: \1/' "$T/w.report" > "$T/bad.report"
# flip one hex digit of the signature
awk '/^signature: /{ c=substr($2,1,1); r=(c=="0")?"1":"0"; $2=r substr($2,2) } {print}' \
    "$T/w.report" > "$T/bad.report"
expect verify_badsig 1 "REJECTED: bad report signature" -- \
    "$PSL" verify "$T/bad.report" --policy "$T/worker.pol"
head -n 5 "$T/w.report" > "$T/trunc.report"
expect verify_truncated 1 "REJECTED: malformed report" -- \
    "$PSL" verify "$T/trunc.report" --policy "$T/worker.pol"
"$PSL" attest --home "$W" --config "$T/other.conf" -o "$T/other.report" 2>/dev/null
expect verify_measurement 1 "REJECTED: measurement .* not accepted" -- \
    "$PSL" verify "$T/other.report" --policy "$T/worker.pol"

# create a deployment in the coordinator's home; its secrets are sealed there
expect create 0 "created deployment 'shop'" -- \
    "$PSL" deployment create shop --policy "$T/worker.pol" --home "$C"
expect create_twice 1 "exists already" -- \
    "$PSL" deployment create shop --policy "$T/worker.pol" --home "$C"
"$PSL" deployment create spare --policy "$T/worker.pol" --home "$C" >/dev/null 2>&1

"$PSL" keymgr --listen "$EP" --home "$C" > "$T/km.out" 2> "$T/km.err" &
KM=$!
sleep 0.4

fetch() { "$PSL" deployment fetch "$@" --coordinator "$EP" --policy "$T/coord.pol"; }
expect fetch_ok 0 "OK: deployment 'shop' keys received" -- fetch shop --home "$W" --worker w1
f1=$(fetch shop --home "$W" --worker w1 2>/dev/null | grep capsule_key_fingerprint)
f2=$(fetch shop --home "$W" --worker w2 2>/dev/null | grep capsule_key_fingerprint)
k1=$(fetch shop --home "$W" --worker w1 2>/dev/null | grep worker_sign_pk)
k2=$(fetch shop --home "$W" --worker w2 2>/dev/null | grep worker_sign_pk)
if [ -n "$f1" ] && [ "$f1" = "$f2" ] && [ -n "$k1" ] && [ "$k1" != "$k2" ]; then
    pass "same capsule key for every worker, a different signing key per worker"
else
    fail "key consistency: '$f1' '$f2' '$k1' '$k2'"
fi
expect fetch_mismatch 1 "REFUSED: refused: worker report rejected by the policy of deployment 'shop': measurement" -- \
    fetch shop --home "$W" --config "$T/other.conf" --worker w3
expect fetch_unattested 1 "REFUSED: refused: peer is not an attested enclave" -- \
    fetch shop --identity "$T/owner.seed"
expect fetch_unknown 1 "REFUSED: refused: no deployment named 'nosuch'" -- \
    fetch nosuch --home "$W"
# a worker that does not accept the coordinator's report never asks
expect fetch_bad_coord 1 "REFUSED: channel: server rejected: attestation report rejected: backend 'sim' not accepted" -- \
    "$PSL" deployment fetch shop --home "$W" --coordinator "$EP" --policy "$T/worker-prod.pol"
grep -q "refused peer" "$T/km.err" && pass "keymgr logs its refusals: $(grep 'refused peer' "$T/km.err" | head -1)" \
    || fail "keymgr did not log refusals"

# sealed at rest: the file does not contain the capsule key in clear, and alterations are refused
S="$C/deployments/shop.sealed"
cp "$S" "$T/shop.sealed.orig"
printf '\001' | dd of="$S" bs=1 seek=60 conv=notrunc 2>/dev/null
expect fetch_tampered 1 "sealed state of deployment 'shop' is damaged" -- fetch shop --home "$W"
cp "$T/shop.sealed.orig" "$S"
# rollback: an older sealed copy of 'spare' after the counter moved on is refused
cp "$C/deployments/spare.sealed" "$T/spare.v1"
rm "$C/deployments/spare.sealed"
"$PSL" deployment create spare --policy "$T/worker.pol" --home "$C" >/dev/null 2>&1
cp "$T/spare.v1" "$C/deployments/spare.sealed"
expect fetch_rollback 1 "rollback of deployment 'spare' detected" -- fetch spare --home "$W"
expect fetch_after 0 "OK: deployment 'shop'" -- fetch shop --home "$W" --worker w1

kill -0 "$KM" 2>/dev/null && pass "keymgr still running after all refusals" || fail "keymgr died"
kill -TERM "$KM"
wait "$KM"
[ $? -eq 0 ] && pass "keymgr exited cleanly" || fail "keymgr exit status"
KM=""

if [ $FAILS -ne 0 ]; then
    echo "$FAILS case(s) failed"
    exit 1
fi
echo "all key manager cases passed"
