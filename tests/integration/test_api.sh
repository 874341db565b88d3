#!/usr/bin/env bash
# The departments' API on a running county -> township -> two villages tree
# (TLS, 127.0.0.1 only, ports from 24600): tokens and roles, masks, the
# purpose rule, field write rights, a county's education correction
# reaching the village, events, the case workflow, paging, scope, bad
# bodies, and the audit chain of it all. api_check.py holds the checks.
. "$(dirname "$0")/lib.sh"
trap 'exit 143' TERM INT HUP
BASE_PORT=${API_BASE_PORT:-$(port 24600)}
X=510121000000 T=510121106000 V1=510121106218 V2=510121106219
NODES=($X $T $V1 $V2)
cat > "$TMP/tree.ini" <<EOF2
[tree]
name = api
base_port = $BASE_PORT
[node $X]
name = 金堂县
[node $T]
name = 五凤镇
[node $V1]
name = 金箱村
[node $V2]
name = 白岩村
EOF2
lx topology render --topology "$TMP/tree.ini" --out "$TREE" >/dev/null || fail "render"
fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }

# Tokens: shown once, kept as hashes; a bad role is refused naming it.
tok() { lx token add --config "$TREE/$1/node.ini" --name "$2" --role "$3" ${4:+--scope $4}; }
export TOK_EDU=$(tok $X jintang-edu education) || fail "token add"
export TOK_CIVIL=$(tok $X jintang-civil civil_affairs) || fail "token add"
export TOK_POLICE=$(tok $X jintang-police public_security) || fail "token add"
export TOK_V1OP=$(tok $X jinxiang-op operator $V1) || fail "token add (scoped)"
export TOK_VOP=$(tok $V1 village-op operator) || fail "token add at the village"
err=$(must_fail 2 lx token add --config "$TREE/$X/node.ini" --name x --role teacher)
assert_contains "$err" "--role teacher" "unknown role"
err=$(must_fail 1 lx token add --config "$TREE/$X/node.ini" --name jintang-edu --role health)
assert_contains "$err" "jintang-edu" "duplicate token name"
grep -q "$TOK_EDU" "$TREE/$X/node.ini" && fail "a token secret is in node.ini"
lx token list --config "$TREE/$X/node.ini" --json | python3 -c '
import json, sys
t = {x["name"]: x for x in json.load(sys.stdin)}
assert t["jintang-edu"]["role"] == "education", t
assert t["jinxiang-op"]["scope"] == "510121106218", t' || fail "token list"
# Rendering the tree again (`scripts/tree up` does, at every start) keeps
# every token, once; the API checks below use them.
before=$(lx token list --config "$TREE/$X/node.ini" --json)
for i in 1 2; do lx topology render --topology "$TMP/tree.ini" --out "$TREE" >/dev/null || fail "render again"; done
assert_eq "$(lx token list --config "$TREE/$X/node.ini" --json)" "$before" "tokens after rendering again"
assert_eq "$(grep -c '^\[token ' "$TREE/$X/node.ini")" 4 "each token section once"
lx node --config "$TREE/$X/node.ini" --help >/dev/null

for c in "${NODES[@]}"; do start_node $c; done
http_of() { sed -n 's/^http = //p' "$TREE/$1/node.ini"; }
export URL_X="https://$(http_of $X)" URL_V1="https://$(http_of $V1)"
export CA_X="$TREE/$X/keys/http.crt" CA_V1="$TREE/$V1/keys/http.crt"
export LIANXIN TREE X T V1 V2
wait_until 20 curl -sf --cacert "$CA_X" "$URL_X/healthz" -o /dev/null

python3 "$(dirname "$0")/api_check.py" || fail "api checks"

# A token made while the node runs is taken within a few seconds.
late=$(tok $X late-health health) || fail "token add while running"
wait_until 10 curl -sf --cacert "$CA_X" -H "Authorization: Bearer $late" \
    "$URL_X/api/v1/status" -o /dev/null

# A revoked token is refused within a few seconds; the others still work.
lx token revoke --config "$TREE/$X/node.ini" --name late-health >/dev/null || fail "token revoke"
must_fail 1 lx token revoke --config "$TREE/$X/node.ini" --name late-health >/dev/null
lx token list --config "$TREE/$X/node.ini" | grep -q late-health && fail "revoked token still listed"
refused_now() { [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_X" \
    -H "Authorization: Bearer $late" "$URL_X/api/v1/status")" = 401 ]; }
wait_until 10 refused_now
curl -sf --cacert "$CA_X" -H "Authorization: Bearer $TOK_EDU" "$URL_X/api/v1/status" -o /dev/null \
    || fail "another token after a revocation"

# The audit chains: every request above left an entry, none holds a
# personal value, and they verify.
out=$(lx audit list --data "$(D $X)" --principal jintang-edu) || fail "audit list"
assert_contains "$out" "patch" "the education correction is audited"
assert_contains "$out" "school enrolment" "the purpose is audited"
printf '%s' "$out" | grep -q "王小明\|13800001234" && fail "a personal value in the audit log"
lx audit verify --data "$(D $X)" >/dev/null || fail "audit verify at the county"
lx audit verify --data "$(D $V1)" >/dev/null || fail "audit verify at the village"
# The village's chain (the child it created through its API) reaches the
# county, which verifies it.
village_create() { lx audit list --data "$(D $X)" --node $V1 --principal village-op | grep -q create; }
wait_until 20 village_create
lx audit verify --data "$(D $X)" --node $V1 >/dev/null || fail "the county verifies the village's chain"

# Stopped cleanly with connections open or not.
for c in "${NODES[@]}"; do stop_node $c; done
for c in "${NODES[@]}"; do
    grep -q "stopped" "$TREE/$c/node.log" || fail "$c did not stop cleanly"
done
echo ok
