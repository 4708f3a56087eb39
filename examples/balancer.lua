-- examples/balancer.lua: a load-balancing policy written in Lua.
-- Clients (or a front proxy) pick a pool with an "X-Pool" header; within the pool the gateway
-- sends the request to the member with the fewest requests in flight. Without the header, or
-- when the named pool has no usable member, every usable member is a candidate, so a pool that
-- is down degrades to "any backend" instead of to errors.
--
--   luajit examples/demo_app.lua --port 4000 &
--   luajit examples/demo_app.lua --port 4001 &
--   ./scgi-lua examples/balancer.lua
--   curl -H 'X-Pool: green' http://127.0.0.1:8080/hello     (always the pid on port 4001)
--   curl http://127.0.0.1:8080/slow?s=5 & curl http://127.0.0.1:8080/hello
--                                      (the second request avoids the member busy sleeping)
--
-- The built-in methods ("byrequests", "bytraffic", "bybusyness") cover most needs and cost
-- nothing in Lua; reach for a function when the choice depends on the request.

-- Least busy relative to capacity: a member with loadfactor 2 is meant to carry twice the
-- load, so 2 requests in flight there count like 1 on a member with loadfactor 1. Ties go to
-- the member that has served fewer requests (again per unit of loadfactor), then to the one
-- listed first, which keeps the choice deterministic.
local function better(a, b)
  local ba, bb = a.busy / a.loadfactor, b.busy / b.loadfactor
  if ba ~= bb then
    return ba < bb
  end
  return a.requests / a.loadfactor < b.requests / b.loadfactor
end

-- Called for every request routed to balancer://pools/, inside the event loop: it must be
-- quick and must not block. `members` lists every member in config order; `usable` is false
-- for a member the gateway must not send new requests to now (disabled, draining, or out of
-- service after a failure). Returning nil answers 503.
local function by_pool(members, req)
  local want = req.headers["x-pool"]
  local best, fallback
  for i = 1, #members do
    local m = members[i]
    if m.usable then
      if want and m.route == want then
        if not best or better(m, best) then
          best = m
        end
      end
      if not fallback or better(m, fallback) then
        fallback = m
      end
    end
  end
  return best or fallback
end

return {
  listen = "127.0.0.1:8080",
  access_log = "stderr",

  balancers = {
    pools = {
      method = by_pool,
      -- `route` names the pool. It is also what sticky sessions match against
      -- (sticky = "ROUTEID"), so the same names serve both mechanisms.
      members = {
        { url = "scgi://127.0.0.1:4000", route = "blue" },
        { url = "scgi://127.0.0.1:4001", route = "green" },
      },
      -- A member that refuses the connection is out of service for `retry` seconds (usable is
      -- false meanwhile), and the request is retried on another member, since none of it has
      -- been sent yet.
    },
  },

  routes = {
    { path = "/", pass = "balancer://pools/" },
  },
}
