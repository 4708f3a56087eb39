#!/bin/sh
# `make run`: starts the demo SCGI app on :4000 and :4001 (the balancer's two members) and the
# gateway on examples/gateway.lua (http://127.0.0.1:8080/); Ctrl-C stops all three.
cd "$(dirname "$0")/.." || exit 1
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; }
trap cleanup EXIT INT TERM
for port in 4000 4001; do
    luajit examples/demo_app.lua --port "$port" &
    pids="$pids $!"
done
# wait until both apps accept (poll with a deadline, no blind sleep)
for port in 4000 4001; do
    i=0
    until luajit -e "local s=require('socket').tcp(); s:settimeout(0.2); assert(s:connect('127.0.0.1',$port)); s:close()" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 50 ] && { echo "demo app on :$port did not start" >&2; exit 1; }
        sleep 0.1
    done
done
echo
echo "scgi-lua demo: try  curl http://127.0.0.1:8080/scgi-bin/hello"
echo "                    curl http://127.0.0.1:8080/cluster/env"
echo
./scgi-lua examples/gateway.lua &
gw=$!
pids="$pids $gw"
wait $gw
