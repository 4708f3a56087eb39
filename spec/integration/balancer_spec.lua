-- scgi-lua(8) "Balancers" (as mod_proxy_balancer) and "Lua hooks" (Lua balancer method): byrequests
-- alternation and loadfactor weights, bytraffic, bybusyness, a dead member out of service for
-- `retry` seconds (one logged connect failure per window, then tried again), all members dead
-- (503 + log, force recovery), +H / +D / +N / +I, lbset tiers, sticky routes by cookie and by
-- query parameter, Lua methods (pick by header, nil → 503, error → 500, the members table),
-- no retry once a request byte was sent, maxattempts = 0, PATH_INFO per member URL.
-- Active health checks are in healthcheck_spec.lua.
--
-- One gateway serves every balancer; each balancer has its own fake backends (and dead ports),
-- so the tests do not share member state. A "dead" member is a port held bound but never
-- listening: connects are refused, and no other process can take the port meanwhile.

local helpers = require "spec.helpers"
local socket = require "socket"
local fcntl = require "posix.fcntl"

-- Source of a fake application named `name`: answers 200 with X-Backend: <name> and a body of
-- "<name>\n" plus the variables as NAME=VALUE lines. Paths containing
--   /slow      wait (up to 8 s) until the file <reldir>/<QUERY_STRING> exists, then answer;
--   /big       add 100 000 bytes to the body;
--   /cut-body  read the head and 1000 bytes of the body, then close without answering;
--   /no-answer read the head only, then close without answering.
local function app(name, reldir)
  return string.format([[
function(req, sock)
  local NAME, REL = %q, %q
  local path = (req.env.REQUEST_URI or ""):match "^[^?]*"
  local q = req.env.QUERY_STRING or ""
  if path:find("/slow", 1, true) then
    local t0 = socket.gettime()
    while socket.gettime() - t0 < 8 do
      local f = io.open(REL .. "/" .. q)
      if f then f:close() break end
      sleep(0.02)
    end
  end
  if path:find("/cut-body", 1, true) then req:read_body(1000) return end
  if path:find("/no-answer", 1, true) then return end
  req:read_body()
  local body = NAME .. "\n" .. env_lines(req)
  if path:find("/big", 1, true) then body = body .. ("x"):rep(100000) end
  send_all(sock, "Status: 200 OK\r\nX-Backend: " .. NAME .. "\r\nContent-Type: text/plain\r\n" ..
           "Content-Length: " .. #body .. "\r\n\r\n" .. body)
end]], name, reldir)
end

-- A port bound on 127.0.0.1 that never listens: connects to it are refused. Close-on-exec, so
-- that processes started later (the gateway, backends) do not keep the port bound.
local function reserve_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0)) -- (the fd exists only from here on)
  assert(fcntl.fcntl(s:getfd(), fcntl.F_SETFD, fcntl.FD_CLOEXEC))
  local _, port = s:getsockname()
  return tonumber(port), s
end

describe("balancers #integration", function()
  local gw, REL
  local B = {}      -- name -> backend
  local DEAD = {}   -- name -> port
  local held = {}   -- name -> bound socket keeping a dead port

  local function U(name, path)
    local port = B[name] and B[name].port or DEAD[name]
    return "scgi://127.0.0.1:" .. assert(port, name) .. (path or "")
  end

  lazy_setup(function()
    REL = helpers.temp_dir "balancer-release"
    for _, n in ipairs {
      "R1", "R2", "W1", "W2", "DM1", "SP", "SH", "DA", "DD", "DD2", "NA", "NN", "T1", "T3", "T4",
      "SA", "SB", "LA", "LB", "IA", "IB", "BX", "BY", "TX", "TY", "PA", "PB", "PP", "PQ", "NR",
      "IG1",
    } do
      B[n] = helpers.scgi_backend { handler = app(n, REL) }
    end
    for _, n in ipairs { "dm", "ad1", "ad2", "rc1", "rc2", "dd", "td1", "td2", "td3", "sd",
                         "id", "nd", "ig" } do
      DEAD[n], held[n] = reserve_port()
    end

    local vars = {}
    for n in pairs(B) do vars[n] = '"' .. U(n) .. '"' end
    for n in pairs(DEAD) do vars[n] = '"' .. U(n) .. '"' end
    vars.PA_URL = '"' .. U("PA", "/a/") .. '"'
    vars.PB_URL = '"' .. U("PB", "/b/") .. '"'

    local src = [[
return {
  access_log = false,
  log_level = "info",
  timeouts = { connect = 2, backend = 10, client_body = 10 },
  balancers = {
    rr = { members = { $R1, $R2 } },
    weighted = { members = { { url = $W1, loadfactor = 1 }, { url = $W2, loadfactor = 2 } } },
    deadmember = { members = { $DM1, { url = $dm, retry = 2 } } },
    alldead = { members = { $ad1, $ad2 } },
    recover = { members = { { url = $rc1, retry = 30 }, { url = $rc2, retry = 30 } } },
    standby = { members = { { url = $SP, retry = 1 }, { url = $SH, status = "+H" } } },
    disabled = { members = { $DA, { url = $DD, status = "+D" } } },
    disabled_alone = { members = { { url = $dd, retry = 30 }, { url = $DD2, status = "+D" } } },
    drain = { sticky = "ROUTEID",
              members = { { url = $NA, route = "a" }, { url = $NN, route = "n", status = "+N" } } },
    ignore = { members = { $IG1, { url = $ig, status = "+I", retry = 30 } } },
    tiers_mixed = { members = { { url = $T1, lbset = 0 }, { url = $td1, lbset = 0, retry = 30 },
                                { url = $T3, lbset = 1 } } },
    tiers_down = { members = { { url = $td2, lbset = 0, retry = 30 },
                               { url = $td3, lbset = 0, retry = 30 }, { url = $T4, lbset = 1 } } },
    sticky = { sticky = "ROUTEID",
               members = { { url = $SA, route = "a" }, { url = $SB, route = "b" },
                           { url = $sd, route = "d", retry = 30 } } },
    bylua = {
      members = { { url = $LA, route = "a" }, { url = $LB, route = "b" } },
      method = function(members, req)
        local want = req.headers["x-pool"]
        for _, m in ipairs(members) do
          if m.route == want and m.usable then return m end
        end
        return nil
      end,
    },
    luaerr = {
      members = { { url = $LA .. "/e/" } },
      method = function(members, req) error("balancer method exploded") end,
    },
    inspect = {
      members = { { url = $IA, route = "a", loadfactor = 3 }, { url = $IB, route = "b" },
                  { url = $id, route = "d", loadfactor = 2, retry = 30 } },
      method = function(members, req)
        if req.headers["x-dump"] then
          local out = { "return {" }
          for _, m in ipairs(members) do
            out[#out + 1] = string.format(
              "{ url = %q, route = %q, loadfactor = %s, busy = %s, requests = %s, usable = %s, types = %q },",
              tostring(m.url), tostring(m.route), tostring(m.loadfactor), tostring(m.busy),
              tostring(m.requests), tostring(m.usable),
              table.concat({ type(m.url), type(m.route), type(m.loadfactor), type(m.busy),
                             type(m.requests), type(m.usable) }, " "))
          end
          out[#out + 1] = "}"
          local f = assert(io.open("{DIR}/members-" .. req.headers["x-dump"] .. ".lua", "w"))
          f:write(table.concat(out, "\n"))
          f:close()
        end
        local want = req.headers["x-pick"]
        for _, m in ipairs(members) do
          if m.route == want and m.usable then return m end
        end
        for _, m in ipairs(members) do
          if m.usable then return m end
        end
      end,
    },
    busy = { method = "bybusyness", members = { $BX, $BY } },
    traffic = { method = "bytraffic", members = { $TX, $TY } },
    pi = { members = { $PA_URL, $PB_URL } },
    partial = { sticky = "ROUTEID",
                members = { { url = $PP, route = "p", retry = 0 }, { url = $PQ, route = "q" } } },
    noretry = { sticky = "ROUTEID", maxattempts = 0,
                members = { { url = $nd, route = "d", retry = 30 }, { url = $NR, route = "a" } } },
  },
  routes = {
    { path = "/pi/", pass = "balancer://pi/", env = { ["proxy-scgi-pathinfo"] = "1" } },
    $ROUTES
  },
}]]
    local names = { "rr", "weighted", "deadmember", "alldead", "recover", "standby", "disabled",
                    "disabled_alone", "drain", "ignore", "tiers_mixed", "tiers_down", "sticky",
                    "bylua", "luaerr", "inspect", "busy", "traffic", "partial", "noretry" }
    local routes = {}
    for _, n in ipairs(names) do
      routes[#routes + 1] = string.format('{ path = "/%s/", pass = "balancer://%s/" },', n, n)
    end
    vars.ROUTES = table.concat(routes, "\n    ")
    src = src:gsub("%$([%w_]+)", function(k) return assert(vars[k], k) end)
    gw = helpers.start_gateway(src)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    for _, b in pairs(B) do b:stop() end
    for _, s in pairs(held) do s:close() end
  end)

  local function get(path, headers, t)
    t = t or {}
    t.path, t.headers, t.timeout = path, headers, t.timeout or 10
    local res, err = gw:request(t)
    assert(res, "request " .. path .. " failed: " .. tostring(err))
    return res
  end

  local function who(res) return res.headers["x-backend"] end

  -- `n` requests to `path`; each must be 200. Returns the list of backend names.
  local function batch(n, path, headers)
    local out = {}
    for i = 1, n do
      local res = get(path, headers)
      assert.equal(200, res.status, "request " .. i .. " to " .. path .. ": " .. res.body)
      out[i] = who(res)
    end
    return out
  end

  local function tally(list)
    local c = {}
    for _, v in ipairs(list) do c[v] = (c[v] or 0) + 1 end
    return c
  end

  -- Log lines (after `mark`) reporting a failed connect to the member on `port`.
  local function connect_failures(port, mark)
    local n = 0
    local text = gw:log():sub((mark or 0) + 1)
    for line in text:gmatch "[^\n]+" do
      if line:find("connect", 1, true) and line:find("fail")
         and line:find("127%.0%.0%.1:" .. port .. "%f[^%d]") then
        n = n + 1
      end
    end
    return n
  end

  local function expect_503(path, headers, mark)
    local res = get(path, headers)
    assert.equal(503, res.status, res.body)
    assert.matches("^text/plain", res.headers["content-type"] or "")
    assert.truthy(gw:wait_log("503", 3, { from = mark, plain = true }),
                  "no log line mentioning 503 in:\n" .. gw:log():sub(mark + 1))
    return res
  end

  -- Start a request that the backend holds until release(); returns a handle.
  local function start_slow(path, headers, tag)
    local c = assert(gw:connect(nil, { timeout = 10 }))
    local data = helpers.build_request({ path = path .. "?" .. tag, headers = headers },
                                       gw:host_header())
    assert(c:send(data))
    return {
      conn = c,
      release = function() helpers.proc.write_file(REL .. "/" .. tag, "go") end,
      finish = function()
        local res, err = c:read_response { timeout = 10 }
        c:close()
        return res, err
      end,
    }
  end

  -- Wait until exactly one of `names` has recorded a request whose URI starts with `prefix`.
  local function wait_holder(names, prefix)
    return helpers.poll(function()
      for _, n in ipairs(names) do
        for _, r in ipairs(B[n]:requests()) do
          if r.env and (r.env.REQUEST_URI or ""):sub(1, #prefix) == prefix then return n end
        end
      end
    end, 5)
  end

  describe("byrequests", function()
    it("alternates evenly between two equal members (the default method)", function()
      local seq = batch(8, "/rr/x")
      for i = 2, #seq do
        assert.are_not.equal(seq[i - 1], seq[i], "not alternating: " .. table.concat(seq, " "))
      end
      assert.same({ R1 = 4, R2 = 4 }, tally(seq))
      assert.equal(4, B.R1:count())
      assert.equal(4, B.R2:count())
    end)

    it("honours loadfactor 1:2", function()
      local seq = batch(12, "/weighted/x")
      assert.same({ W1 = 4, W2 = 8 }, tally(seq), table.concat(seq, " "))
      -- smooth: W1 never twice in a row, W2 never three times in a row
      local s = table.concat(seq, " ")
      assert.falsy(s:find("W1 W1", 1, true), s)
      assert.falsy(s:find("W2 W2 W2", 1, true), s)
    end)
  end)

  describe("a dead member", function()
    it("is out of service for `retry` seconds: every request 200, one logged connect failure per window",
       function()
      local port = DEAD.dm
      local mark = gw:log_mark()
      local t0 = helpers.now()
      local seq = batch(10, "/deadmember/x")
      local elapsed = helpers.now() - t0
      assert.same({ DM1 = 10 }, tally(seq))
      assert.truthy(gw:wait_log("127%.0%.0%.1:" .. port, helpers.slack(3), { from = mark }),
                    "no log line for the dead member:\n" .. gw:log():sub(mark + 1))
      -- one try (and one logged failure) per 2 s window the batch took: 1 unless it was slow
      local n1 = connect_failures(port, mark)
      assert.is_true(n1 >= 1 and n1 <= 1 + math.floor(elapsed / 2), n1 .. " connect failures " ..
                     "logged in " .. elapsed .. " s (retry = 2):\n" .. gw:log():sub(mark + 1))
      -- after the retry window it is tried again (and fails again, logged once more)
      local t2 = helpers.poll(function()
        local res = get("/deadmember/x")
        assert.equal(200, res.status, res.body)
        assert.equal("DM1", who(res))
        if connect_failures(port, mark) >= n1 + 1 then return helpers.now() end
      end, helpers.slack(8), 0.1)
      assert.truthy(t2, "the dead member was never tried again after its 2 s retry:\n"
                        .. gw:log():sub(mark + 1))
      assert.is_true(t2 - t0 >= 1.9, "tried again after only " .. (t2 - t0) .. " s (retry = 2)")
      assert.equal(n1 + 1, connect_failures(port, mark))
    end)

    it("all members dead → 503 with a log line; the next request tries them again", function()
      local mark = gw:log_mark()
      expect_503("/alldead/x", nil, mark)
      assert.is_true(connect_failures(DEAD.ad1, mark) >= 1, gw:log():sub(mark + 1))
      assert.is_true(connect_failures(DEAD.ad2, mark) >= 1, gw:log():sub(mark + 1))
      -- both are now within their retry window: force recovery tries them all again
      local mark2 = gw:log_mark()
      expect_503("/alldead/x", nil, mark2)
      assert.is_true(connect_failures(DEAD.ad1, mark2) + connect_failures(DEAD.ad2, mark2) >= 1,
                     "members not tried again:\n" .. gw:log():sub(mark2 + 1))
      assert.is_true(gw:alive())
    end)

    it("force recovery: a member back inside its retry window is used at once", function()
      local mark = gw:log_mark()
      expect_503("/recover/x", nil, mark)
      held.rc1:close()
      held.rc1 = nil
      B.RC1 = helpers.scgi_backend { handler = app("RC1", REL), port = DEAD.rc1 }
      local res = get("/recover/x")
      assert.equal(200, res.status, res.body)
      assert.equal("RC1", who(res))
      assert.equal(200, get("/recover/x").status)
    end)

    it("+I: errors are ignored, the member stays in rotation", function()
      local mark = gw:log_mark()
      local seq = batch(6, "/ignore/x")
      assert.same({ IG1 = 6 }, tally(seq))
      assert.is_true(connect_failures(DEAD.ig, mark) >= 2,
                     "a +I member was taken out of service (retry = 30):\n" .. gw:log():sub(mark + 1))
    end)

    it("maxattempts = 0: no failover, 503 even though another member is alive", function()
      local mark = gw:log_mark()
      expect_503("/noretry/x", { Cookie = "ROUTEID=s.d" }, mark)
      assert.equal(0, B.NR:count())
      assert.is_true(connect_failures(DEAD.nd, mark) >= 1, gw:log():sub(mark + 1))
      -- the dead member is now out of service: a new request goes to the live one
      local res = get("/noretry/x")
      assert.equal(200, res.status, res.body)
      assert.equal("NR", who(res))
    end)
  end)

  describe("member status", function()
    it("+H hot standby serves only while the primary is down", function()
      assert.same({ SP = 4 }, tally(batch(4, "/standby/x")))
      assert.equal(0, B.SH:count())
      local port = B.SP.port
      B.SP:stop()
      assert.same({ SH = 3 }, tally(batch(3, "/standby/x")))
      B.SP = helpers.scgi_backend { handler = app("SP2", REL), port = port }
      local back = helpers.poll(function()
        local res = get("/standby/x")
        assert.equal(200, res.status, res.body)
        return who(res) == "SP2"
      end, 8, 0.1)
      assert.truthy(back, "the primary was not used again after its retry (1 s)")
      local before = B.SH:count()
      assert.same({ SP2 = 4 }, tally(batch(4, "/standby/x")))
      assert.equal(before, B.SH:count())
    end)

    it("+D is never used", function()
      assert.same({ DA = 6 }, tally(batch(6, "/disabled/x")))
      assert.equal(0, B.DD:count())
    end)

    it("+D is not used even when every other member is down", function()
      local mark = gw:log_mark()
      expect_503("/disabled_alone/x", nil, mark)
      expect_503("/disabled_alone/x", nil, gw:log_mark())
      assert.equal(0, B.DD2:count())
    end)

    it("+N gets no new requests but still serves its sticky route", function()
      assert.same({ NA = 5 }, tally(batch(5, "/drain/x")))
      assert.equal(0, B.NN:count())
      assert.same({ NN = 3 }, tally(batch(3, "/drain/x", { Cookie = "ROUTEID=sess42.n" })))
      assert.same({ NN = 2 }, tally(batch(2, "/drain/x?ROUTEID=sess42.n")))
    end)
  end)

  describe("lbset tiers", function()
    it("a higher lbset is unused while a member of the lower one is usable", function()
      local seq = batch(6, "/tiers_mixed/x")
      assert.same({ T1 = 6 }, tally(seq))
      assert.equal(0, B.T3:count())
    end)

    it("a higher lbset serves when every member of the lower one is down", function()
      assert.same({ T4 = 4 }, tally(batch(4, "/tiers_down/x")))
    end)
  end)

  describe("sticky sessions", function()
    it("a cookie ROUTEID=<id>.<route> pins the request to that member", function()
      assert.same({ SB = 4 }, tally(batch(4, "/sticky/x", { Cookie = "ROUTEID=abc.b" })))
      assert.same({ SB = 2 }, tally(batch(2, "/sticky/x",
                                          { Cookie = "foo=1; ROUTEID=abc.b; bar=2" })))
      assert.same({ SA = 2 }, tally(batch(2, "/sticky/x", { Cookie = "ROUTEID=xyz.a" })))
    end)

    it("a query parameter ROUTEID=<id>.<route> pins the request to that member", function()
      assert.same({ SA = 4 }, tally(batch(4, "/sticky/x?ROUTEID=x.a")))
      assert.same({ SB = 2 }, tally(batch(2, "/sticky/x?y=1&ROUTEID=x.b&z=2")))
    end)

    it("a route naming a dead member falls back to another member", function()
      local seq = batch(4, "/sticky/x", { Cookie = "ROUTEID=abc.d" })
      for _, n in ipairs(seq) do assert.is_true(n == "SA" or n == "SB", n) end
    end)

    it("an unknown route or none: served by the normal rotation", function()
      local seq = batch(6, "/sticky/x", { Cookie = "ROUTEID=abc.nosuch" })
      local t = tally(seq)
      assert.is_true((t.SA or 0) > 0 and (t.SB or 0) > 0, table.concat(seq, " "))
    end)
  end)

  describe("a Lua method", function()
    it("picks a member by request header", function()
      assert.same({ LA = 3 }, tally(batch(3, "/bylua/x", { ["X-Pool"] = "a" })))
      assert.same({ LB = 3 }, tally(batch(3, "/bylua/x", { ["X-Pool"] = "b" })))
    end)

    it("returning nil → 503", function()
      local a, b = B.LA:count(), B.LB:count()
      local mark = gw:log_mark()
      expect_503("/bylua/x", { ["X-Pool"] = "nosuch" }, mark)
      expect_503("/bylua/x", nil, gw:log_mark())
      assert.equal(a, B.LA:count())
      assert.equal(b, B.LB:count())
    end)

    it("raising an error → 500 with the error in the log, and the gateway keeps serving", function()
      local before = B.LA:count()
      local mark = gw:log_mark()
      local res = get("/luaerr/x")
      assert.equal(500, res.status, res.body)
      assert.truthy(gw:wait_log("balancer method exploded", 3, { from = mark, plain = true }),
                    "no log line with the error:\n" .. gw:log():sub(mark + 1))
      assert.equal(before, B.LA:count())
      assert.is_true(gw:alive())
      assert.same({ LA = 1 }, tally(batch(1, "/bylua/x", { ["X-Pool"] = "a" })))
    end)

    it("gets members with url, route, loadfactor, busy, requests and usable", function()
      local function dump(name)
        local path = gw.dir .. "/members-" .. name .. ".lua"
        local src = helpers.proc.read_file(path)
        assert.truthy(src, "the method did not run (no " .. path .. ")")
        return assert(loadstring(src))()
      end
      local res = get("/inspect/x", { ["X-Pick"] = "a", ["X-Dump"] = "1" })
      assert.equal(200, res.status, res.body)
      assert.equal("IA", who(res))
      local m = dump "1"
      assert.equal(3, #m)
      for i, want in ipairs {
        { url = U "IA", route = "a", loadfactor = 3 },
        { url = U "IB", route = "b", loadfactor = 1 },
        { url = U "id", route = "d", loadfactor = 2 },
      } do
        assert.equal("string string number number number boolean", m[i].types, "members[" .. i .. "]")
        assert.equal(want.url, m[i].url)
        assert.equal(want.route, m[i].route)
        assert.equal(want.loadfactor, m[i].loadfactor)
        assert.equal(0, m[i].busy)
        assert.equal(0, m[i].requests)
        assert.is_true(m[i].usable)
      end

      -- the dead member: connect fails, the method is asked again and falls back
      res = get("/inspect/x", { ["X-Pick"] = "d" })
      assert.equal(200, res.status, res.body)
      assert.equal("IA", who(res))

      -- a request in flight on IB
      local slow = start_slow("/inspect/slow", { ["X-Pick"] = "b" }, "inspect-1")
      finally(function() slow.release() slow.conn:close() end)
      assert.equal("IB", wait_holder({ "IB" }, "/inspect/slow"))

      res = get("/inspect/x", { ["X-Pick"] = "a", ["X-Dump"] = "3" })
      assert.equal(200, res.status, res.body)
      m = dump "3"
      assert.equal(2, m[1].requests, "IA.requests")
      assert.equal(1, m[2].requests, "IB.requests")
      assert.is_true(m[3].requests >= 1, "dead member's requests")
      assert.equal(0, m[1].busy, "IA.busy")
      assert.equal(1, m[2].busy, "IB.busy (one slow request in flight)")
      assert.equal(0, m[3].busy, "dead member's busy")
      assert.is_true(m[1].usable)
      assert.is_true(m[2].usable)
      assert.is_false(m[3].usable, "a member inside its retry window is not usable")

      slow.release()
      local sres = assert(slow.finish())
      assert.equal(200, sres.status)
      assert.equal("IB", who(sres))
    end)
  end)

  describe("bybusyness and bytraffic", function()
    it("bybusyness prefers the idle member while the other has a slow request in flight", function()
      local slow = start_slow("/busy/slow", nil, "busy-1")
      finally(function() slow.release() slow.conn:close() end)
      local holder = wait_holder({ "BX", "BY" }, "/busy/slow")
      assert.truthy(holder, "the slow request reached no backend")
      local other = holder == "BX" and "BY" or "BX"
      local before = B[holder]:count()
      assert.same({ [other] = 5 }, tally(batch(5, "/busy/x")))
      assert.equal(before, B[holder]:count())
      slow.release()
      local res = assert(slow.finish())
      assert.equal(200, res.status)
      assert.equal(holder, who(res))
      -- both idle again: both get requests
      local t = tally(batch(4, "/busy/x"))
      assert.is_true((t.BX or 0) > 0 and (t.BY or 0) > 0)
    end)

    it("bytraffic sends new requests to the member that moved fewer bytes", function()
      local res = get("/traffic/big")
      assert.equal(200, res.status)
      assert.is_true(#res.body > 100000)
      local big = who(res)
      local other = big == "TX" and "TY" or "TX"
      assert.same({ [other] = 3 }, tally(batch(3, "/traffic/x")))
    end)
  end)

  describe("failover and request bytes", function()
    it("is not retried on another member once part of the body was sent", function()
      local before_p, before_q = B.PP:count(), B.PQ:count()
      local body = helpers.blob(2 * 1024 * 1024, 7)
      local res = gw:request { method = "POST", path = "/partial/cut-body", body = body,
                               headers = { Cookie = "ROUTEID=s.p",
                                           ["Content-Type"] = "application/octet-stream" },
                               timeout = 10 }
      assert.is_true(res == nil or res.status == 502,
                     "expected 502 or a closed connection, got " .. tostring(res and res.status))
      assert.truthy(B.PP:wait_requests(before_p + 1, 3), "the first member never got the request")
      assert.equal(before_q, B.PQ:count(), "the request was retried on the other member")
      assert.is_true(gw:alive())
    end)

    it("is not retried on another member once the request head was sent", function()
      local before_q = B.PQ:count()
      local res = get("/partial/no-answer", { Cookie = "ROUTEID=s.p" })
      assert.equal(502, res.status, res.body)
      assert.equal(before_q, B.PQ:count(), "the request was retried on the other member")
      local ok = get("/partial/x", { Cookie = "ROUTEID=s.q" })
      assert.equal("PQ", who(ok))
    end)
  end)

  describe("PATH_INFO with proxy-scgi-pathinfo", function()
    it("uses the path of the member that serves the request", function()
      local seen = {}
      for _ = 1, 2 do
        local res = get("/pi/x/y%20z?q=1")
        assert.equal(200, res.status, res.body)
        local env = helpers.parse_env_lines(res.body)
        seen[who(res)] = env
      end
      assert.truthy(seen.PA and seen.PB, "both members should have served one request")
      assert.equal("/a/x/y z", seen.PA.PATH_INFO)
      assert.equal("/b/x/y z", seen.PB.PATH_INFO)
      for _, env in pairs(seen) do
        assert.equal("/pi", env.SCRIPT_NAME)
        assert.equal("/pi/x/y%20z?q=1", env.REQUEST_URI)
        assert.equal("q=1", env.QUERY_STRING)
      end
    end)
  end)
end)

-- A member that accepts connections and never answers (a hung application): its first backend
-- timeout before any response byte counts as its failure, as a refused connect does (out for
-- `retry` seconds, one log line, "error" in the status endpoint), and the request, which had
-- sent no body byte, goes to another member. A hung member is a port that listens (the kernel
-- completes the handshake and takes the request bytes) but whose socket nobody accepts from.
describe("balancers: a member that accepts but never answers #integration", function()
  local gw, REL
  local hung = {}  -- name -> { sock, port, url }
  local good = {}  -- name -> backend

  local function listen_only()
    local s = assert(socket.bind("127.0.0.1", 0))
    assert(fcntl.fcntl(s:getfd(), fcntl.F_SETFD, fcntl.FD_CLOEXEC))
    local _, port = s:getsockname()
    return { sock = s, port = tonumber(port), url = "scgi://127.0.0.1:" .. port }
  end

  lazy_setup(function()
    REL = helpers.temp_dir "balancer-hung"
    for _, n in ipairs { "seq", "load", "post", "direct" } do hung[n] = listen_only() end
    for _, n in ipairs { "SEQ", "LOAD", "POST" } do
      good[n] = helpers.scgi_backend { handler = app(n, REL) }
    end
    gw = helpers.start_gateway(string.format([[
return {
  access_log = false,
  log_level = "info",
  timeouts = { backend = 1, connect = 2 },
  status = { path = "/status", allow = { "127.0.0.1" } },
  balancers = {
    seq = { members = { { url = %q, retry = 30 }, %q } },
    load = { members = { { url = %q, retry = 30 }, %q } },
    post = { members = { { url = %q, retry = 30 }, %q } },
  },
  routes = {
    { path = "/seq/", pass = "balancer://seq/" },
    { path = "/load/", pass = "balancer://load/" },
    { path = "/post/", pass = "balancer://post/" },
    { path = "/direct/", pass = %q },
  },
}]], hung.seq.url, good.SEQ.url, hung.load.url, good.LOAD.url, hung.post.url, good.POST.url,
      hung.direct.url .. "/"))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    for _, b in pairs(good) do b:stop() end
    for _, h in pairs(hung) do h.sock:close() end
  end)

  -- The value of the Prometheus sample `name{labels}` (labels: exact text inside the braces).
  local function metric(name, labels)
    local text = assert(gw:request { path = "/status?format=prometheus", timeout = 5 }).body
    local prefix = name .. "{" .. labels .. "} "
    for line in text:gmatch "[^\n]+" do
      if line:sub(1, #prefix) == prefix then return tonumber(line:sub(#prefix + 1)) end
    end
    error("no sample " .. prefix .. " in:\n" .. text)
  end

  local function member(bal, url) return string.format('balancer="%s",member="%s"', bal, url) end

  local function timeout_lines(port, mark)
    local n = 0
    for line in gw:log():sub(mark + 1):gmatch "[^\n]+" do
      if line:find("no response", 1, true) and line:find("127%.0%.0%.1:" .. port .. "%f[^%d]") then
        n = n + 1
      end
    end
    return n
  end

  it("fails over after timeouts.backend and keeps the member out for `retry` seconds", function()
    local mark = gw:log_mark()
    for i = 1, 6 do
      local res = assert(gw:request { path = "/seq/r" .. i, timeout = 10 })
      assert.equal(200, res.status, "request " .. i .. ": " .. res.body)
      assert.equal("SEQ", res.headers["x-backend"])
    end
    -- only the first request waited on it
    assert.equal(1, metric("scgi_lua_member_requests_total", member("seq", hung.seq.url)))
    assert.equal(1, metric("scgi_lua_member_failures_total", member("seq", hung.seq.url)))
    assert.equal(0, metric("scgi_lua_member_up", member("seq", hung.seq.url)))
    assert.equal(1, timeout_lines(hung.seq.port, mark), gw:log():sub(mark + 1))
    local json = assert(gw:request { path = "/status", timeout = 5 }).body
    local entry = json:match('"' .. hung.seq.url:gsub("%p", "%%%0") .. '":(%b{})')
    assert.truthy(entry, json)
    assert.matches('"state":"error"', entry)
    assert.matches('"last_error":"[^"]*no response', entry)
  end)

  it("moves concurrent requests off the hung member; none waits on it afterwards", function()
    local conns = {}
    for i = 1, 4 do
      conns[i] = assert(gw:connect(nil, { timeout = 10 }))
      assert(conns[i]:send(helpers.build_request({ path = "/load/c" .. i }, gw:host_header())))
    end
    for i, c in ipairs(conns) do
      local res = assert(c:read_response { timeout = 10 })
      c:close()
      assert.equal(200, res.status, "request " .. i .. ": " .. res.body)
      assert.equal("LOAD", res.headers["x-backend"])
    end
    local tried = metric("scgi_lua_member_requests_total", member("load", hung.load.url))
    assert.is_true(tried >= 1 and tried <= 4, "hung member tried " .. tried .. " times")
    assert.equal(tried, metric("scgi_lua_member_failures_total", member("load", hung.load.url)))
    local t0 = helpers.now()
    for i = 1, 4 do
      local res = assert(gw:request { path = "/load/after" .. i, timeout = 10 })
      assert.equal(200, res.status)
    end
    assert.equal(tried, metric("scgi_lua_member_requests_total", member("load", hung.load.url)))
    assert.is_true(helpers.now() - t0 < helpers.slack(4), "requests still waited on the hung member")
  end)

  it("a request whose body was sent is not replayed: 504, and the member is out", function()
    local res = assert(gw:request { method = "POST", path = "/post/p1", body = "x=1",
                                    timeout = 10 })
    assert.equal(504, res.status, res.body)
    assert.equal(0, good.POST:count(), "the POST was sent a second time")
    assert.equal(1, metric("scgi_lua_member_failures_total", member("post", hung.post.url)))
    res = assert(gw:request { method = "POST", path = "/post/p2", body = "x=2", timeout = 10 })
    assert.equal(200, res.status)
    assert.equal("POST", res.headers["x-backend"])
  end)

  it("a direct backend's timeout is a 504 counted as its failure", function()
    local res = assert(gw:request { path = "/direct/x", timeout = 10 })
    assert.equal(504, res.status)
    assert.equal(1, metric("scgi_lua_member_failures_total",
                           string.format('member="%s/"', hung.direct.url)))
  end)
end)
