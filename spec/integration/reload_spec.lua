-- scgi-lua(8) SIGNALS (SIGHUP, the watched config file) and README "Reloading and workers" (hot
-- reload), single process: a reload by SIGHUP, by a plain write and by an atomic rename switches a
-- route's backend in the same process; an invalid config (syntax error, unknown balancer) keeps the
-- old one serving and is logged with file/line or dotted path, and a fixed file is picked up on the
-- next change (a file that never returns fails after 5 s instead of freezing the server); an
-- in-flight request finishes on its old backend while new ones go to the new one; 20 reloads under
-- load lose no request; listen addresses follow the config; balancer state survives a reload;
-- memory stays flat over 200 reloads. Workers (`workers = N`) are in workers_spec.lua.
--
-- Two fake backends, A and B, answer their own name as the body (after sleeping `sleep=S`
-- seconds when the query asks for it). Every test starts its own gateway and rewrites that
-- gateway's config file (gw.config_path); reloads are awaited on the log, never slept for.

local helpers = require "spec.helpers"
local proc = helpers.proc
local serialize = require "spec.helpers.serialize"

local reloading = require "spec.helpers.reloading"
local app, config, rewrite = reloading.named_app, reloading.config, reloading.rewrite

local function count(text, pattern)
  return select(2, text:gsub(pattern, ""))
end

-- Body of GET path on a fresh connection (asserts a 200).
local function get(gw, path, addr)
  local res, err = gw:request { path = path or "/", addr = addr, timeout = 5 }
  assert(res, err)
  assert.equal(200, res.status, res.body)
  return res.body
end

local function rss_kb(pid)
  local s = proc.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match "VmRSS:%s*(%d+)")
end

describe("hot reload #integration", function()
  local A, B

  lazy_setup(function()
    A = helpers.scgi_backend { handler = app "A" }
    B = helpers.scgi_backend { handler = app "B" }
  end)
  lazy_teardown(function()
    if A then A:stop() end
    if B then B:stop() end
  end)

  local function start(o)
    o = o or {}
    local port = helpers.free_port()
    o.listen = o.listen or ("127.0.0.1:" .. port)
    o.pass = o.pass or A.url
    local gw = helpers.start_gateway(config(o))
    gw.listen = o.listen
    return gw
  end

  -- The generation of the last successful reload logged so far (1 if none).
  local function generation(gw)
    local g = 1
    for n in gw:log():gmatch "reloaded [^\n]-generation %d+ %-> (%d+)" do g = tonumber(n) end
    return g
  end

  describe("switches a route's backend in the same process", function()
    it("on SIGHUP", function()
      local gw = start()
      finally(function() gw:stop() end)
      assert.equal("A", get(gw))
      local mark = gw:log_mark()
      rewrite(gw, config { listen = gw.listen, pass = B.url }, "atomic")
      assert(gw:signal "HUP")
      local log = gw:wait_log("%[" .. gw.pid .. "%] [^\n]-reloaded [^\n]-%(SIGHUP%): "
                              .. "generation %d+ %-> %d+, 1 routes, 0 balancers",
                              5, { from = mark })
      assert.truthy(log, "no `reloaded ... (SIGHUP)` line")
      assert.equal("B", get(gw))
      assert.is_true(gw:alive())
      assert.is_nil(gw:log():sub(mark + 1):find "reload %(.-%) failed")
    end)

    it("when the file is rewritten in place", function()
      local gw = start()
      finally(function() gw:stop() end)
      assert.equal("A", get(gw))
      local mark = gw:log_mark()
      local t0 = helpers.now()
      rewrite(gw, config { listen = gw.listen, pass = B.url, comment = "rewritten in place" }, "plain")
      assert.truthy(gw:wait_log("%[" .. gw.pid .. "%] [^\n]-reloaded [^\n]-%(file changed%)", helpers.slack(3),
                                  { from = mark }), "the rewritten file was not picked up in time")
      assert.is_true(helpers.now() - t0 < helpers.slack(2.5))
      assert.equal("B", get(gw))
      assert.is_true(gw:alive())
    end)

    it("when a new file is renamed over it", function()
      local gw = start()
      finally(function() gw:stop() end)
      assert.equal("A", get(gw))
      local mark = gw:log_mark()
      rewrite(gw, config { listen = gw.listen, pass = B.url, comment = "renamed over" }, "atomic")
      assert.truthy(gw:wait_log("%[" .. gw.pid .. "%] [^\n]-reloaded [^\n]-%(file changed%)", 3, { from = mark }),
                    "the renamed file was not picked up within 3 s")
      assert.equal("B", get(gw))
      -- and the watch follows the new inode: a second rename is seen too
      mark = gw:log_mark()
      rewrite(gw, config { listen = gw.listen, pass = A.url, comment = "renamed over again" }, "atomic")
      assert.truthy(gw:wait_log("reloaded [^\n]-%(file changed%)", 3, { from = mark }),
                    "a second rename was not picked up within 3 s")
      assert.equal("A", get(gw))
      assert.is_true(gw:alive())
    end)
  end)

  describe("an invalid config", function()
    it("keeps the old one serving, logs the problem, and a fixed file is picked up next", function()
      local gw = start()
      finally(function() gw:stop() end)
      assert.equal("A", get(gw))
      local gen = generation(gw)

      -- a Lua syntax error: file and line
      local mark = gw:log_mark()
      rewrite(gw, "return {\n  listen = { \"" .. gw.listen .. "\" },\n  routes = { { path = = } },\n}\n",
              "atomic")
      assert(gw:signal "HUP")
      local log = gw:wait_log("reload %(SIGHUP%) failed, keeping generation " .. gen .. ": [^\n]-gateway%.lua:3",
                              5, { from = mark })
      assert.truthy(log, "no failure line with gateway.lua:3 for the syntax error")
      assert.equal("A", get(gw))
      assert.is_true(gw:alive())

      -- an unknown balancer: the dotted path, the name, the file
      mark = gw:log_mark()
      rewrite(gw, config { listen = gw.listen, pass = "balancer://nope/", comment = "unknown balancer" },
              "atomic")
      assert(gw:signal "HUP")
      log = gw:wait_log("reload %(SIGHUP%) failed, keeping generation " .. gen .. ": [^\n]-routes%[1%]%.pass[^\n]-nope",
                        5, { from = mark })
      assert.truthy(log, "no failure line naming routes[1].pass and the unknown balancer")
      assert.matches("gateway%.lua", log)
      assert.equal("A", get(gw))
      assert.is_nil(log:find "reloaded ")

      -- the next change (no signal) with a valid config is taken
      mark = gw:log_mark()
      rewrite(gw, config { listen = gw.listen, pass = B.url, comment = "fixed at last" }, "plain")
      log = gw:wait_log("reloaded [^\n]-%(file changed%): generation " .. gen .. " %-> " .. (gen + 1), 3,
                        { from = mark })
      assert.truthy(log, "the fixed config was not picked up within 3 s")
      assert.equal("B", get(gw))
      assert.is_true(gw:alive())
    end)

    it("a config whose top level never returns fails the reload after 5 s instead of hanging", function()
      local gw = start()
      finally(function() gw:stop() end)
      assert.equal("A", get(gw))
      local gen = generation(gw)
      local mark = gw:log_mark()
      rewrite(gw, "local n = 0\nwhile true do n = n + 1 end\n", "atomic")
      assert(gw:signal "HUP")
      local log = gw:wait_log("reload %(SIGHUP%) failed, keeping generation " .. gen ..
                              ": [^\n]-ran longer than 5 s", 10, { from = mark })
      assert.truthy(log, "no failure line for the endless config")
      assert.equal("A", get(gw))
      assert.is_true(gw:alive())
    end)

    it("logs every problem of one config", function()
      local gw = start()
      finally(function() gw:stop() end)
      local mark = gw:log_mark()
      rewrite(gw, config {
        listen = gw.listen, extra = "lisen = 1,",
        routes = string.format("{ { path = \"/\", pass = \"balancer://nope/\" }, { path = 3, pass = %q } }",
                               A.url),
      }, "atomic")
      assert(gw:signal "HUP")
      local log = gw:wait_log("routes%[2%]%.path", 5, { from = mark })
      assert.truthy(log, "routes[2].path not reported")
      log = assert(gw:wait_log("lisen", 2, { from = mark }), "the unknown key was not reported")
      assert.matches("routes%[1%]%.pass", log)
      assert.equal("A", get(gw))
    end)
  end)

  it("an in-flight request finishes on the old backend, new requests go to the new one", function()
    local gw = start()
    finally(function() gw:stop() end)
    local n0 = A:count()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send("GET /slow?sleep=" .. 1.5 * helpers.time_scale .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert(A:wait_requests(n0 + 1, 5), "the slow request did not reach A")
    local t_started = helpers.now()

    local mark = gw:log_mark()
    rewrite(gw, config { listen = gw.listen, pass = B.url }, "atomic")
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("reloaded ", helpers.slack(3), { from = mark }))
    assert.equal("B", get(gw, "/new"))
    assert.is_true(helpers.now() - t_started < helpers.slack(1.4), "the new request waited for the old one")

    local res = assert(c:read_response { timeout = 5 })
    assert.equal(200, res.status)
    assert.equal("A", res.body)
    -- the next request on the same keep-alive connection uses the new config
    res = assert(c:request { path = "/next" })
    assert.equal(200, res.status)
    assert.equal("B", res.body)
  end)

  it("20 reloads during load lose no request", function()
    local gw = start()
    finally(function() gw:stop() end)
    local dir = helpers.temp_dir "load"
    local script = dir .. "/client.lua"
    -- One load client: requests for `duration` seconds, keep-alive and new connections mixed
    -- (every third request closes); records every response that is not a 200 from A or B.
    proc.write_file(script, [[
local root, port, duration, out, id = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4], tonumber(arg[5])
package.path = root .. "/?.lua;" .. package.path
local http = require "spec.helpers.http_client"
local serialize = require "spec.helpers.serialize"
local addr = { host = "127.0.0.1", port = port }
local ok, bad, bodies, sent = 0, {}, {}, 0
local deadline = http.now() + duration
local c, i = nil, 0
while http.now() < deadline and #bad < 20 do
  i = i + 1
  local close = (i + id) % 3 == 0
  local err
  if not c then c, err = http.connect(addr, { timeout = 5 }) end
  if not c then
    bad[#bad + 1] = "connect: " .. tostring(err)
  else
    sent = sent + 1
    local res, rerr = c:request({ path = "/load/" .. id .. "/" .. i,
                                  headers = close and { Connection = "close" } or nil },
                                "127.0.0.1:" .. port)
    if res and res.status == 200 and (res.body == "A" or res.body == "B") then
      ok = ok + 1
      bodies[res.body] = (bodies[res.body] or 0) + 1
    else
      bad[#bad + 1] = string.format("request %d (%s): %s", i, close and "close" or "keep-alive",
                                    res and (res.status .. " " .. res.body) or tostring(rerr))
    end
    local hc = res and res.headers.connection
    if close or not res or (type(hc) == "string" and hc:lower() == "close") then c:close() c = nil end
  end
end
if c then c:close() end
local f = assert(io.open(out .. ".tmp", "wb"))
f:write(serialize.chunk { ok = ok, bad = bad, bodies = bodies, sent = sent })
f:close()
os.rename(out .. ".tmp", out)
]])
    local clients = {}
    finally(function()
      for _, cl in ipairs(clients) do
        if not cl.done then pcall(proc.killpg, cl.pid, "KILL") proc.wait(cl.pid, 2) end
      end
    end)
    local recs0 = #proc.list_dir(A.records) + #proc.list_dir(B.records)
    for id = 1, 4 do
      local out = dir .. "/result" .. id
      clients[id] = {
        out = out,
        pid = proc.spawn({ helpers.luajit, script, helpers.root, tostring(gw.port), "4", out, tostring(id) },
                         { output = dir .. "/client" .. id .. ".log", setpgid = true, cwd = helpers.root }),
      }
    end

    -- 20 reloads, alternating the backend, while the clients run
    local t0 = helpers.now()
    proc.sleep(0.2)
    local log0 = gw:log()
    local reloads0 = count(log0, "reloaded ")
    for i = 1, 20 do
      local before = count(gw:log(), "reloaded ")
      rewrite(gw, config { listen = gw.listen, pass = (i % 2 == 1) and B.url or A.url,
                           comment = "load reload " .. i }, "atomic")
      assert(gw:signal "HUP")
      assert.truthy(helpers.poll(function() return count(gw:log(), "reloaded ") > before end, 3, 0.01),
                    "reload " .. i .. " not logged")
      proc.sleep(0.05)
    end
    local reload_time = helpers.now() - t0
    assert.is_true(count(gw:log(), "reloaded ") - reloads0 >= 20)
    assert.is_nil(gw:log():find("reload %(.-%) failed"))

    local total, by = 0, { A = 0, B = 0 }
    for id, cl in ipairs(clients) do
      local how = proc.wait(cl.pid, 10)
      cl.done = how ~= nil
      assert.truthy(how, "load client " .. id .. " did not finish")
      local r = proc.exists(cl.out) and serialize.load_file(cl.out)
      assert.truthy(r, "load client " .. id .. " wrote no result: " ..
                    tostring(proc.read_file(dir .. "/client" .. id .. ".log")))
      assert.same({}, r.bad, "client " .. id .. " lost requests")
      assert.equal(r.sent, r.ok)
      assert.is_true(r.ok > 10, "client " .. id .. " made only " .. r.ok .. " requests")
      total = total + r.ok
      for k, v in pairs(r.bodies) do by[k] = by[k] + v end
    end
    -- both backends served during the run, and every response was one request at a backend
    assert.is_true(by.A > 0 and by.B > 0, "A " .. by.A .. ", B " .. by.B)
    local function records()
      local n = 0
      for _, b in ipairs { A, B } do
        for _, name in ipairs(proc.list_dir(b.records)) do
          if name:match "%.req$" then n = n + 1 end
        end
      end
      return n
    end
    assert.truthy(helpers.poll(function() return records() - recs0 == total end, 3),
                  "backends recorded " .. (records() - recs0) .. " requests for " .. total .. " responses")
    assert.is_true(reload_time < helpers.slack(4), "the reloads took " .. reload_time .. " s")
    assert.is_true(gw:alive())
  end)

  it("opens listen addresses added on reload and closes removed ones", function()
    local p2 = helpers.free_port()
    local gw = start()
    finally(function() gw:stop() end)
    local l1, l2 = gw.listen, "127.0.0.1:" .. p2
    local a1, a2 = { host = "127.0.0.1", port = gw.port }, { host = "127.0.0.1", port = p2 }
    assert.is_false(helpers.can_connect(a2))

    local mark = gw:log_mark()
    rewrite(gw, config { listen = { l1, l2 }, pass = A.url }, "atomic")
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("listening on 127%.0%.0%.1:" .. p2, 3, { from = mark }))
    assert.truthy(helpers.poll(function() return helpers.can_connect(a2) end, 3), "new address does not accept")
    assert.equal("A", get(gw, "/", a2))
    assert.equal("A", get(gw, "/", a1))

    -- a keep-alive connection accepted on the address about to be removed
    local c = assert(gw:connect(a1))
    finally(function() c:close() end)
    assert.equal("A", assert(c:request { path = "/before" }).body)

    mark = gw:log_mark()
    rewrite(gw, config { listen = l2, pass = B.url }, "atomic")
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("reloaded ", 3, { from = mark }))
    assert.truthy(helpers.poll(function() return not helpers.can_connect(a1) end, 3),
                  "the removed address still accepts")
    assert.equal("B", get(gw, "/", a2))
    -- the connection accepted before is unaffected
    local res = assert(c:request { path = "/after" })
    assert.equal(200, res.status)
    assert.equal("B", res.body)
    assert.is_true(gw:alive())
  end)

  it("keeps balancer state across a reload for members whose URL is unchanged", function()
    local balancers = string.format(
      "balancers = { pool = { method = \"byrequests\", members = { %q, %q } } },", A.url, B.url)
    local function src(listen, comment)
      return config { listen = listen, comment = comment, extra = balancers, pass = "balancer://pool/" }
    end
    local gw = start { extra = balancers, pass = "balancer://pool/" }
    finally(function() gw:stop() end)
    -- smooth round-robin with equal weights: A B A B ... (ties by config order)
    assert.equal("A", get(gw))
    local mark = gw:log_mark()
    rewrite(gw, src(gw.listen, "balancer 2, same members"), "atomic")
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("reloaded [^\n]-1 balancers", 3, { from = mark }))
    assert.equal("B", get(gw))   -- a fresh state would pick A again
    mark = gw:log_mark()
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("reloaded ", 3, { from = mark }))
    assert.equal("A", get(gw))
  end)

  it("memory stays flat over 200 reloads", function()
    local bin = io.open(helpers.bin, "rb")
    local image = bin and bin:read("*a") or ""
    if bin then bin:close() end
    if image:find("__asan_init", 1, true) then
      pending("ASan build: its quarantine holds freed memory, so RSS says nothing about leaks")
      return
    end
    local routes = {}
    for i = 1, 30 do
      routes[#routes + 1] = string.format(
        "{ path = \"/r%d/\", pass = %q, env = { X_ROUTE = function(req) return %q end }, " ..
        "access = function(req) if req.headers[\"x-deny\"] then return 403 end end }", i, A.url, "r" .. i)
    end
    routes[#routes + 1] = "{ path = \"/\", pass = \"balancer://pool/\" }"
    local gw = start { routes = "{ " .. table.concat(routes, ",\n") .. " }",
      extra = string.format("balancers = { pool = { members = { %q, { url = %q, loadfactor = 2 } } } },",
                            A.url, B.url) }
    finally(function() gw:stop() end)
    local base = count(gw:log(), "reloaded ")
    local function reload_to(n)
      while count(gw:log(), "reloaded ") - base < n do
        local before = count(gw:log(), "reloaded ")
        assert(gw:signal "HUP")
        assert.truthy(helpers.poll(function() return count(gw:log(), "reloaded ") > before end, 3, 0.002),
                      "reload not logged")
      end
    end
    reload_to(10)
    for i = 1, 5 do get(gw, "/r" .. i .. "/x") end
    local rss10 = assert(rss_kb(gw.pid))
    reload_to(200)
    for i = 1, 5 do get(gw, "/r" .. i .. "/x") end
    local rss200 = assert(rss_kb(gw.pid))
    assert.is_nil(gw:log():find("reload %(.-%) failed"))
    assert.is_true(rss200 - rss10 < 5 * 1024,
                   string.format("VmRSS %d kB after 10 reloads, %d kB after 200", rss10, rss200))
  end)
end)
