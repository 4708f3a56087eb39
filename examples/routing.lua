-- examples/routing.lua: routing decided by Lua functions instead of path prefixes alone.
-- Three patterns that are awkward in Apache or nginx and short here: per-tenant backends
-- chosen by a request header, a sticky A/B split by client address, and a maintenance switch.
--
--   luajit examples/demo_app.lua --port 4000 &
--   luajit examples/demo_app.lua --port 4001 &
--   ./scgi-lua examples/routing.lua
--   curl -H 'X-Tenant: globex' http://127.0.0.1:8080/app/env     (TENANT=globex, port 4001)
--   curl http://127.0.0.1:8080/app/env                            (AB_VARIANT=a: 127.0.0.1
--                                          hashes into variant A; the split needs many clients)
--
-- Hooks run inside the gateway's event loop for every request they guard, so they only look at
-- `req` and at values computed when this file loads: no I/O, no sleeping, nothing that blocks.
-- A hook that raises an error costs that one request a 500 and a log line, nothing more.

-- The file is loaded once per (re)load, so this is the place for anything expensive. Flip
-- MAINTENANCE to true and save: the gateway notices the change within two seconds (or on
-- SIGHUP) and switches over atomically; requests already running finish as they were.
local MAINTENANCE = false

-- Who still gets through during maintenance, to check the site before reopening it.
local MAINTENANCE_ALLOW = { ["127.0.0.1"] = true, ["::1"] = true }

local ACME = "scgi://127.0.0.1:4000/"
local GLOBEX = "scgi://127.0.0.1:4001/"

-- Tenant name (the X-Tenant header, compared case-sensitively) -> backend.
local TENANTS = { acme = ACME, globex = GLOBEX }

-- Share of clients, in percent, sent to variant B.
local B_PERCENT = 20

local byte, floor = string.byte, math.floor

-- A small deterministic string hash: multiply-and-add reduced mod 2^32 at each step, with a
-- multiplier below 2^21 so every intermediate stays an exact integer in a double (no bit
-- library, no 64-bit integers); the bucket comes from the better-mixed high bits. Stable across
-- reloads and workers, so a client keeps its variant for as long as it keeps its address.
-- Behind NAT many users share an address and therefore a variant; hash a session cookie from
-- req.headers.cookie instead if that matters.
local function bucket(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h + byte(s, i)) * 1000003) % 4294967296
  end
  return floor(h / 65536) % 100
end

local function in_variant_b(req)
  return bucket(req.remote_addr) < B_PERCENT
end

local routes = {}

-- One route per tenant rather than one route whose function returns a backend: `pass` is
-- validated when the file loads, so a typo in a URL is reported by `scgi-lua -t` instead of
-- surfacing as a failing request. The closure captures `name`, so each route tests one value.
-- Requests for an unknown tenant fall through to the routes below, like requests without the
-- header.
local names = {}
for name in pairs(TENANTS) do
  names[#names + 1] = name
end
table.sort(names) -- pairs() has no order; routes are tried in order, keep it reproducible
for _, name in ipairs(names) do
  routes[#routes + 1] = {
    path = "/app/",
    match = function(req) return req.headers["x-tenant"] == name end,
    pass = TENANTS[name],
    -- The backend learns the tenant from a CGI variable set by the gateway, not by trusting
    -- the header again; it could also drop HTTP_X_TENANT with `HTTP_X_TENANT = false`.
    env = { TENANT = name },
  }
end

-- The A/B split for everyone else. Variant B is listed first because the first matching
-- route wins; the catch-all for variant A needs no hook at all.
routes[#routes + 1] = {
  path = "/app/",
  match = in_variant_b,
  pass = GLOBEX,
  env = { AB_VARIANT = "b" },
}
routes[#routes + 1] = {
  path = "/app/",
  pass = ACME,
  env = { AB_VARIANT = "a" },
}

-- A Lua pattern string needs no function: it is matched against the decoded path (anywhere
-- in it unless anchored with "^"). Here every versioned API, /api/v1/, /api/v2/..., goes to the
-- second backend.
routes[#routes + 1] = { match = "^/api/v%d+/", pass = GLOBEX }

-- Everything else.
routes[#routes + 1] = { path = "/", pass = ACME }

-- The maintenance switch: an `access` hook on every route answers 503 with a short body before
-- any backend is contacted. It is attached only while MAINTENANCE is on, so normal traffic
-- runs no hook at all. Returning nothing lets the request continue to its backend.
if MAINTENANCE then
  local function maintenance(req)
    if not MAINTENANCE_ALLOW[req.remote_addr] then
      return 503, "Down for maintenance, back shortly.\n"
    end
  end
  for _, r in ipairs(routes) do
    r.access = maintenance
  end
end

return {
  listen = "127.0.0.1:8080",
  access_log = "stderr",
  routes = routes,
}
