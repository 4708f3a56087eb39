#!/bin/sh
# GATEWAY_CMD for ../shared/bench: writes a config into the rig's run directory and execs the
# gateway (so the rig measures scgi-lua's own PID). GW_VARIANT picks the routing being
# measured: plain (prefix route, default), lua-match (a Lua match function), balancer (two
# members, byrequests), lua-balancer (two members, a Lua method).
#   usage: gateway.sh PORT BACKEND_PORT DATADIR RUNDIR [WORKERS]
#   GW_WRAP: a command prefix for the gateway (spec/bench/loopprobe.sh sets LD_PRELOAD with it;
#   the rig keeps GW_PREFIX for its own taskset)
set -eu
port=$1 backend=$2 data=$3 rundir=$4 workers=${5:-1}
here=$(cd "$(dirname "$0")/../.." && pwd)
case "${GW_VARIANT:-plain}" in
plain)        route="{ path = \"/\", pass = \"scgi://127.0.0.1:$backend/\", sendfile = true, sendfile_root = \"$data\" }" ;;
lua-match)    route="{ match = function(req) return req.method ~= \"BREW\" end, pass = \"scgi://127.0.0.1:$backend/\" }" ;;
balancer)     route="{ path = \"/\", pass = \"balancer://pair/\" }" ;;
lua-balancer) route="{ path = \"/\", pass = \"balancer://luapair/\" }" ;;
*) echo "unknown GW_VARIANT $GW_VARIANT" >&2; exit 2 ;;
esac
cat >"$rundir/gateway.lua" <<LUA
return {
  listen = "127.0.0.1:$port",
  workers = $workers,
  access_log = false,
  log_level = "warn",
  balancers = {
    -- one backend under two names: the rig starts one, the balancer still alternates
    pair = { members = { "scgi://127.0.0.1:$backend", "scgi://localhost:$backend" } },
    luapair = { members = { "scgi://127.0.0.1:$backend", "scgi://localhost:$backend" },
      method = function(members, req)
        local best
        for i = 1, #members do
          local m = members[i]
          if m.usable and (not best or m.busy < best.busy) then best = m end
        end
        return best
      end },
  },
  routes = { $route },
}
LUA
exec ${GW_WRAP:-} "$here/scgi-lua" "$rundir/gateway.lua"
