#!/bin/sh
# Where do latency spikes come from? Runs the rig's SCENARIO (default hello) pinned (PIN=1:
# the gateway alone on CPU 1) with spec/bench/loopprobe.c preloaded into scgi-lua, and
# prints wrk's line and the probe's report: the busy time of every event loop iteration as
# a histogram, and the slowest iterations with their CPU time (far below the wall time: the
# process was preempted or blocked) and the number of events they handled.
#   usage: spec/bench/loopprobe.sh [SCENARIO]   (DURATION=10s, LOOPPROBE_US=2000, PIN=1)
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
rig=${BENCH_RIG:-$here/../shared/bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -Wall -Wextra -shared -fPIC -o "$tmp/loopprobe.so" "$here/spec/bench/loopprobe.c" -ldl
export GATEWAY_NAME=scgi-lua
export GATEWAY_CMD="$here/spec/bench/gateway.sh {PORT} {BACKEND_PORT} {DATADIR} {RUNDIR} {WORKERS}"
export GW_WRAP="env LD_PRELOAD=$tmp/loopprobe.so LOOPPROBE_OUT=$tmp/report LOOPPROBE_US=${LOOPPROBE_US:-2000}"
PIN=${PIN:-1} DURATION=${DURATION:-10s} "$rig/bench.sh" custom "${1:-hello}" 2>/dev/null | tail -1
cat "$tmp/report"
