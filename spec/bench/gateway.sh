#!/bin/sh
# GATEWAY_CMD for ../shared/bench: writes a one-route config into the rig's run directory
# and execs the gateway (so the rig measures scgi-lua's own PID).
#   usage: gateway.sh PORT BACKEND_PORT DATADIR RUNDIR [WORKERS]
set -eu
port=$1 backend=$2 data=$3 rundir=$4 workers=${5:-1}
here=$(cd "$(dirname "$0")/../.." && pwd)
cat >"$rundir/gateway.lua" <<LUA
return {
  listen = "127.0.0.1:$port",
  workers = $workers,
  access_log = false,
  log_level = "warn",
  routes = {
    { path = "/", pass = "scgi://127.0.0.1:$backend/", sendfile = true, sendfile_root = "$data" },
  },
}
LUA
exec "$here/scgi-lua" "$rundir/gateway.lua"
