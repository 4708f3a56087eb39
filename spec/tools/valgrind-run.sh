#!/bin/sh
# A black-box scenario under valgrind (leaks and descriptors): the gateway with a fake
# backend (the demo app), a balancer with a dead member, Lua hooks, X-Sendfile and errors
# mixed in, a reload, then SIGTERM. Prints "valgrind: leaked=N errors=N fds=N" and exits 1
# on any leak, memcheck error or descriptor left open by the gateway.
#   usage: spec/tools/valgrind-run.sh [REQUESTS]   (default 300)
set -u
cd "$(dirname "$0")/../.." || exit 2
n=${1:-300}
command -v valgrind >/dev/null || { echo "valgrind: not installed"; exit 77; }
dir=$(mktemp -d)
trap 'kill $app $gw 2>/dev/null; rm -rf "$dir"' EXIT
free_port() { luajit -e 'local s=require("socket").bind("127.0.0.1",0); local _, p = s:getsockname(); print(p); s:close()'; }
# the valgrind spec passes ports it claimed (spec/helpers/ports.lua: no other run can take
# them meanwhile); run by hand, any free ones do
if [ -n "${SCGI_LUA_SPEC_PORTS:-}" ]; then
    bport=${SCGI_LUA_SPEC_PORTS%% *}; gport=${SCGI_LUA_SPEC_PORTS##* }
else
    bport=$(free_port); gport=$(free_port)
fi
luajit examples/demo_app.lua --port "$bport" >"$dir/app.log" 2>&1 &
app=$!
cat >"$dir/gw.lua" <<LUA
return { listen = "127.0.0.1:$gport", access_log = "$dir/access.log", log_level = "warn",
  balancers = { b = { members = { "scgi://127.0.0.1:$bport", { url = "scgi://127.0.0.1:1", retry = 1 } } } },
  routes = {
    { path = "/bal/", pass = "balancer://b/" },
    { path = "/lua/", match = function(req) return req.method ~= "BREW" end,
      access = function(req) if req.query == "deny" then return 403, "no\\n" end end,
      env = { TENANT = function(req) return req.headers["x-tenant"] end },
      pass = "scgi://127.0.0.1:$bport/" },
    { path = "/files/", pass = "scgi://127.0.0.1:$bport/", sendfile = "X-Send-Static" },
    { path = "/", pass = "scgi://127.0.0.1:$bport/" },
  } }
LUA
valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
    --track-fds=yes --error-exitcode=99 --log-file="$dir/vg.log" ./scgi-lua "$dir/gw.lua" >"$dir/gw.log" 2>&1 &
gw=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$gport/hello"; do
    kill -0 $gw 2>/dev/null || { echo "valgrind: gateway exited"; cat "$dir/gw.log"; exit 1; }
    i=$((i + 1)); [ $i -gt 100 ] && { echo "valgrind: gateway did not start"; cat "$dir/gw.log"; exit 1; }
    sleep 0.2
done
i=0
while [ $i -lt "$n" ]; do
    i=$((i + 1))
    case $((i % 7)) in
    0) curl -s -o /dev/null "http://127.0.0.1:$gport/hello" ;;
    1) curl -s -o /dev/null "http://127.0.0.1:$gport/bal/env" ;;
    2) curl -s -o /dev/null "http://127.0.0.1:$gport/lua/env?deny" ;;
    3) curl -s -o /dev/null -H "X-Tenant: t$i" -d "x=$i" "http://127.0.0.1:$gport/lua/echo" ;;
    4) curl -s -o /dev/null "http://127.0.0.1:$gport/files/download" ;;
    5) printf 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n' |
           curl -s -o /dev/null --max-time 2 telnet://127.0.0.1:$gport ;;
    6) curl -s -o /dev/null -H "Transfer-Encoding: chunked" --data-binary "@README.md" "http://127.0.0.1:$gport/echo" ;;
    esac
done
kill -HUP $gw; sleep 1
curl -s -o /dev/null "http://127.0.0.1:$gport/hello"
kill -TERM $gw
wait $gw; status=$?
leaked=$(grep -Eo '(definitely|indirectly|possibly) lost: [0-9,]+ bytes' "$dir/vg.log" | grep -Eo '[0-9,]+ bytes' | tr -d ', bytes' | awk '{ s += $1 } END { print s + 0 }')
errors=$(grep -Eo 'ERROR SUMMARY: [0-9]+' "$dir/vg.log" | grep -Eo '[0-9]+$' | tail -1)
# descriptors still open at exit, other than those inherited from this shell
fds=$(awk '/Open file descriptor/ { getline nxt; if (nxt !~ /inherited/) c++ } END { print c + 0 }' "$dir/vg.log")
echo "valgrind: leaked=$leaked errors=$errors fds=$fds exit=$status requests=$n"
if [ "$status" -ne 0 ] || [ "$leaked" -ne 0 ] || [ "$fds" -ne 0 ] || [ "${errors:-1}" -ne 0 ]; then
    cat "$dir/vg.log"
    exit 1
fi
