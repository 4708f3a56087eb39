-- Lua isolation (README "Lua hooks", man page scgi-lua(8) LIMITS): whatever a hook does to the
-- values it is handed or to the globals of the config state, the gateway answers with the
-- right status and keeps serving; the hook budget cannot be caught from inside the sandbox.

local helpers = require "spec.helpers"
local socket = require "socket"
local fcntl = require "posix.fcntl"

-- A port that refuses connections for the life of the test (bound, never listening).
local function reserve_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  assert(fcntl.fcntl(s:getfd(), fcntl.F_SETFD, fcntl.FD_CLOEXEC))
  local _, port = s:getsockname()
  return tonumber(port), s
end

local function get(gw, path, headers, timeout)
  return gw:request { path = path, headers = headers, timeout = timeout or 10 }
end

---------------------------------------------------------------------------------------------
describe("lua isolation: balancer methods that edit their arguments #integration", function()
  local gw, good, held

  lazy_setup(function()
    good = helpers.scgi_backend()
    local dead
    dead, held = reserve_port()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = false,
        timeouts = { connect = 2, backend = 5 },
        balancers = {
          prune = {
            members = { { url = "scgi://127.0.0.1:%d", retry = 60 }, %q },
            method = function(members, req)
              for i = #members, 1, -1 do
                if not members[i].usable then table.remove(members, i) end
              end
              return members[1]
            end,
          },
          hostile = {
            members = { %q },
            method = function(members, req)
              local m = members[1]
              if req.headers["x-arm"] then
                m.busy, m.requests, m.usable = nil, nil, nil
                setmetatable(m, { __newindex = function() error("no writes here") end })
                setmetatable(members, { __newindex = function() error("nor here") end })
              end
              return m
            end,
          },
          foreign = {
            members = { %q },
            method = function(members, req) return { url = "scgi://127.0.0.1:1" } end,
          },
        },
        routes = {
          { path = "/prune/", pass = "balancer://prune" },
          { path = "/hostile/", pass = "balancer://hostile" },
          { path = "/foreign/", pass = "balancer://foreign" },
        },
      }]], dead, good.url, good.url, good.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if good then good:stop() end
    if held then held:close() end
  end)

  it("a method that table.remove()s unusable members gets the healthy one, every time", function()
    for i = 1, 4 do
      local res, err = get(gw, "/prune/" .. i)
      assert.truthy(res, "request " .. i .. ": " .. tostring(err) .. "\n" .. gw:log())
      assert.equal(200, res.status, "request " .. i .. ": " .. tostring(res.body))
    end
    assert.is_true(gw:alive())
    assert.falsy(gw:log():find("PANIC", 1, true))
  end)

  it("a method that puts metatables on members and the members list → still served", function()
    for i = 1, 3 do
      local res, err = get(gw, "/hostile/" .. i, { ["X-Arm"] = "1" })
      assert.truthy(res, tostring(err) .. "\n" .. gw:log())
      assert.equal(200, res.status, res.body)
    end
    assert.is_true(gw:alive())
  end)

  it("a method returning a table that is not a member → 500 and one log line", function()
    local mark = gw:log_mark()
    local res = assert(get(gw, "/foreign/x"))
    assert.equal(500, res.status)
    assert.truthy(gw:wait_log("not one of its members", 3, { from = mark, plain = true }))
    assert.is_true(gw:alive())
  end)
end)

---------------------------------------------------------------------------------------------
describe("lua isolation: hooks that clobber globals #integration", function()
  local gw, be

  lazy_setup(function()
    be = helpers.scgi_backend()
    gw = helpers.start_gateway(([[
      return {
        workers = 1,
        access_log = false,
        routes = {
          { path = "/clobber/", pass = "$B", access = function(req) string = nil end },
          { path = "/clobber2/", pass = "$B", access = function(req) string = { find = 42 } end },
          { path = "/mt/", pass = "$B", access = function(req)
              local ok, mt = pcall(getmetatable, req)
              if ok and type(mt) == "table" then mt.__index = function() return "/evil" end end
            end },
          { path = "/seen/", pass = "$B", env = { SEEN_PATH = function(req) return req.path end } },
          { path = "/m/", match = "^/m/%d+$", pass = "$B" },
          { path = "/", pass = "$B" },
        },
      }]]):gsub("%$B", be.url), nil)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if be then be:stop() end
  end)

  it("a hook that assigns the global string does not break string-match routes", function()
    for _, clobber in ipairs { "/clobber/x", "/clobber2/x" } do
      local res = assert(get(gw, clobber))
      assert.equal(200, res.status)
      res = assert(get(gw, "/m/12"), gw:log())
      assert.equal(200, res.status, res.body)
      assert.equal("/m/12", be:last_request().env.REQUEST_URI)
    end
    assert.is_true(gw:alive())
  end)

  it("a hook cannot rewrite the metatable every req table shares", function()
    local res = assert(get(gw, "/mt/x"))
    assert.equal(200, res.status)
    res = assert(get(gw, "/seen/y"))
    assert.equal(200, res.status)
    assert.equal("/seen/y", be:last_request().env.SEEN_PATH)
  end)
end)

---------------------------------------------------------------------------------------------
describe("lua isolation: the hook budget #integration", function()
  local gw, be

  lazy_setup(function()
    be = helpers.scgi_backend()
    gw = helpers.start_gateway(([[
      return {
        workers = 1,
        access_log = false,
        limits = { hook_time = 0.2 },
        routes = {
          { path = "/catch/", pass = "$B", access = function(req)
              repeat local ok = pcall(function() while true do end end) until ok
            end },
          { path = "/xcatch/", pass = "$B", access = function(req)
              while true do xpcall(function() while true do end end, function(e) return e end) end
            end },
          { path = "/", pass = "$B" },
        },
      }]]):gsub("%$B", be.url), nil)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if be then be:stop() end
  end)

  it("a hook that pcall()s the budget error in a loop still gets a 500", function()
    for _, path in ipairs { "/catch/x", "/xcatch/x" } do
      local mark = gw:log_mark()
      local t0 = socket.gettime()
      local res, err = get(gw, path, nil, 15)
      local took = socket.gettime() - t0
      assert.truthy(res, path .. ": " .. tostring(err))
      assert.equal(500, res.status)
      assert.is_true(took < helpers.slack(0.2 + 5), path .. " took " .. took .. " s")
      assert.truthy(gw:wait_log("limits.hook_time", 3, { from = mark, plain = true }))
      res = assert(get(gw, "/ok"))
      assert.equal(200, res.status)
    end
    assert.is_true(gw:alive())
  end)
end)

---------------------------------------------------------------------------------------------
describe("lua isolation: failing hooks are cheap #integration", function()
  local gw, be
  local proc = helpers.proc
  local unistd = require "posix.unistd"
  local CLK_TCK = (unistd.sysconf and unistd._SC_CLK_TCK and unistd.sysconf(unistd._SC_CLK_TCK)) or 100

  local function cpu_seconds(pid)
    local s = proc.read_file("/proc/" .. pid .. "/stat") or ""
    local f = {}
    for x in (s:match "%)%s+(.*)$" or ""):gmatch "%S+" do f[#f + 1] = x end
    return ((tonumber(f[12]) or 0) + (tonumber(f[13]) or 0)) / CLK_TCK
  end

  lazy_setup(function()
    be = helpers.scgi_backend()
    -- a config that keeps a large live Lua heap: a full collection walks all of it
    gw = helpers.start_gateway(([[
      return {
        workers = 1,
        access_log = false,
        limits = { lua_memory = 256 * 1024 * 1024 },
        routes = {
          { path = "/", pass = "$B", access = (function()
              local ballast = {}
              for i = 1, 1000000 do ballast[i] = { i } end
              return function(req)
                if req.headers["x-fail"] then error("refused by policy " .. #ballast) end
              end
            end)() },
        },
      }]]):gsub("%$B", be.url), nil)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if be then be:stop() end
  end)

  local function spend(n, headers)
    local c0 = cpu_seconds(gw.pid)
    for _ = 1, n do
      local res = assert(get(gw, "/x", headers))
      assert.equal(headers and 500 or 200, res.status)
    end
    return cpu_seconds(gw.pid) - c0
  end

  it("a hook that raises costs about what a hook that succeeds costs (no full GC per failure)", function()
    spend(5) -- warm up
    local ok = spend(40)
    local failed = spend(40, { ["X-Fail"] = "1" })
    assert.is_true(failed < ok * 3 + 0.5,
                   string.format("40 failing hooks took %.2f s CPU, 40 succeeding %.2f s", failed, ok))
    assert.is_true(gw:alive())
  end)
end)

---------------------------------------------------------------------------------------------
describe("lua isolation: the heap limit holds at allocation #integration", function()
  local gw, be

  lazy_setup(function()
    be = helpers.scgi_backend()
    gw = helpers.start_gateway(([[
      return {
        workers = 1,
        access_log = false,
        limits = { lua_memory = 64 * 1024 * 1024, hook_time = 30 },
        routes = {
          { path = "/rep/", pass = "$B", access = function(req)
              local s = string.rep("x", 2^30)
              return 200, "got " .. #s
            end },
          { path = "/", pass = "$B" },
        },
      }]]):gsub("%$B", be.url), nil)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if be then be:stop() end
  end)

  it("one string beyond limits.lua_memory fails the hook at once → 500, and the gateway serves", function()
    local mark = gw:log_mark()
    local t0 = socket.gettime()
    local res, err = get(gw, "/rep/x", nil, 40)
    local took = socket.gettime() - t0
    assert.truthy(res, tostring(err))
    assert.equal(500, res.status, res.body)
    assert.is_true(took < helpers.slack(5), "took " .. took .. " s")
    assert.truthy(gw:wait_log("limits.lua_memory", 3, { from = mark, plain = true }))
    res = assert(get(gw, "/ok"))
    assert.equal(200, res.status)
    assert.is_true(gw:alive())
  end)
end)

---------------------------------------------------------------------------------------------
describe("lua isolation: route patterns cannot stall the loop #integration", function()
  local gw, be

  lazy_setup(function()
    be = helpers.scgi_backend()
    gw = helpers.start_gateway(([[
      return {
        workers = 1,
        access_log = false,
        limits = { header_bytes = 65536 },
        routes = {
          { path = "/", match = "^/(.+)/(.+)%.jpg$", pass = "$B" },
          { path = "/", pass = "$B" },
        },
      }]]):gsub("%$B", be.url), nil)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if be then be:stop() end
  end)

  it("refuses at load a pattern whose cost grows as the cube of the path", function()
    local file = helpers.temp_file(([[
      return { routes = { { match = "/(.+)/(.+)%.jpg$", pass = "$B" } } }]]):gsub("%$B", be.url), nil)
    local code, out = helpers.run_gateway { "-t", file }
    assert.is_not.equal(0, code)
    assert.truthy(out:find("routes[1].match", 1, true), out)
    assert.truthy(out:find("n^3", 1, true), out)
  end)

  it("a path longer than limits.match_path_bytes → 414 before a pattern runs on it", function()
    local long = "/" .. ("a/"):rep(8192)
    local mark = gw:log_mark()
    local res = assert(get(gw, long))
    assert.equal(414, res.status)
    assert.truthy(gw:wait_log("limits.match_path_bytes", 3, { from = mark, plain = true }))
    -- within the limit the pattern runs: no match, so the next route
    res = assert(get(gw, "/" .. ("a/"):rep(1000)))
    assert.equal(200, res.status)
    res = assert(get(gw, "/x/y.jpg"))
    assert.equal(200, res.status)
    assert.is_true(gw:alive())
  end)
end)
