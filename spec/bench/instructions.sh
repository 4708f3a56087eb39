#!/bin/sh
# User-space instructions per proxied request (valgrind callgrind), for plain prefix routing,
# a Lua match route, a byrequests balancer and a Lua balancer method: a fixed number of keep-alive GET /hello on one
# connection against the rig's SCGI backend. Unlike req/s on a shared VM, this number repeats
# to within a fraction of a percent, so it is the one to judge a change by.
#   usage: spec/bench/instructions.sh [N]   (VARIANTS="plain lua-match balancer lua-balancer")
#   CG_KEEP=DIR keeps each variant's callgrind file as DIR/cg.VARIANT (for callgrind_annotate);
#   CG_OPTS adds callgrind options (e.g. "--dump-instr=yes").
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
rig=${BENCH_RIG:-$here/../shared/bench}
n=${1:-2000}
command -v valgrind >/dev/null || { echo "skipping instruction counts: valgrind not installed"; exit 0; }
[ -x "$rig/backend/scgi_backend" ] || make -s -C "$rig" >/dev/null || exit 1
tmp=$(mktemp -d)
pick_port() { luajit -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); print(p); s:close()'; }
bport=$(pick_port)
"$rig/backend/scgi_backend" -d "$tmp" "$bport" >"$tmp/backend.log" 2>&1 &
bpid=$!
trap 'kill $bpid 2>/dev/null; rm -rf "$tmp"' EXIT
for v in ${VARIANTS:-plain lua-match balancer lua-balancer}; do
    port=$(pick_port)
    GW_VARIANT=$v GW_WRAP="valgrind --tool=callgrind ${CG_OPTS:-} --callgrind-out-file=$tmp/cg.$v.%p" \
        "$here/spec/bench/gateway.sh" "$port" "$bport" "$tmp" "$tmp" 1 >"$tmp/gw.$v.log" 2>&1 &
    gpid=$!
    i=0
    until curl -s -o /dev/null "http://127.0.0.1:$port/hello"; do
        i=$((i + 1)); [ $i -gt 100 ] && { echo "$v: gateway did not start"; cat "$tmp/gw.$v.log"; exit 1; }
        sleep 0.1
    done
    luajit "$here/spec/bench/kclient.lua" "$port" 200 || exit 1 # warm up: allocator, Lua, caches
    callgrind_control -z "$gpid" >/dev/null 2>&1
    luajit "$here/spec/bench/kclient.lua" "$port" "$n" || exit 1
    callgrind_control -d "$gpid" >/dev/null 2>&1
    kill "$gpid"; wait "$gpid" 2>/dev/null
    total=$(sed -n 's/^summary: //p' "$tmp"/cg.$v.*.1 | head -1)
    echo "INSTR $v $((total / n))"
    [ -n "${CG_KEEP:-}" ] && cp "$(ls "$tmp"/cg.$v.*.1 | head -1)" "$CG_KEEP/cg.$v"
done
