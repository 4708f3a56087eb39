-- README "Reloading and workers" with scgi-lua(8) SIGNALS: `workers = 2` runs a master and two
-- worker processes (children of the master); a worker killed with SIGKILL is replaced and service
-- goes on; HUP to the master reloads every worker and the route switch is visible; an invalid
-- config is reported once, by the master, and no worker changes config; a listen change starts a
-- new set of workers; SIGTERM to the master lets a slow request finish, then every process exits;
-- `workers = "auto"` starts one worker per CPU.
--
-- Two fake backends, A and B, answer their own name as the body (after sleeping `sleep=S`
-- seconds when the query asks for it). Processes are found through /proc/PID/stat (ppid).

local helpers = require "spec.helpers"
local proc = helpers.proc

local reloading = require "spec.helpers.reloading"
local app, rewrite = reloading.named_app, reloading.rewrite

-- two workers unless o.workers says otherwise
local function config(o)
  local t = { timeouts = "{ shutdown = 10 }", workers = 2 }
  for k, v in pairs(o) do t[k] = v end
  return reloading.config(t)
end

local running, children, wait_children = reloading.running, reloading.children,
  reloading.wait_children

local function count(text, pattern)
  return select(2, text:gsub(pattern, ""))
end

local function get(gw, path, addr)
  local res, err = gw:request { path = path or "/", addr = addr, timeout = 5 }
  assert(res, err)
  assert.equal(200, res.status, res.body)
  return res.body
end

local function nproc()
  local p = io.popen "nproc 2>/dev/null"
  local n = p and tonumber(p:read "*l")
  if p then p:close() end
  return n
end

describe("workers #integration", function()
  local A, B

  lazy_setup(function()
    A = helpers.scgi_backend { handler = app "A" }
    B = helpers.scgi_backend { handler = app "B" }
  end)
  lazy_teardown(function()
    if A then A:stop() end
    if B then B:stop() end
  end)

  -- A gateway with `workers` workers, running once all of them logged `worker started`.
  local function start(o)
    o = o or {}
    o.listen = o.listen or ("127.0.0.1:" .. helpers.free_port())
    o.pass = o.pass or A.url
    local gw = helpers.start_gateway(config(o))
    gw.listen = o.listen
    local n = o.expect or o.workers or 2
    assert.truthy(gw:wait_log(string.rep("worker started.*", n), 5), "not all workers started")
    gw.workers = assert(wait_children(gw.pid, n, 5), "the master does not have " .. n .. " children")
    return gw
  end

  it("runs a master and two worker processes that serve requests", function()
    local gw = start()
    finally(function() gw:stop() end)
    assert.equal(2, #gw.workers)
    for _, w in ipairs(gw.workers) do
      assert.not_equal(gw.pid, w)
      assert.matches("%[" .. w .. "%] [^\n]-worker started", gw:log())
    end
    for _ = 1, 6 do assert.equal("A", get(gw)) end
  end)

  it("replaces a worker killed with SIGKILL and keeps serving", function()
    local gw = start()
    finally(function() gw:stop() end)
    local victim = gw.workers[1]
    assert(proc.kill(victim, "KILL"))
    -- the other worker serves meanwhile
    assert.equal("A", get(gw, "/during"))
    local now = wait_children(gw.pid, 2, 6, { victim })
    assert.truthy(now, "the killed worker was not replaced within 6 s")
    assert.truthy(gw:wait_log("worker " .. victim .. " killed by signal 9, restarting in [%d.]+ s", 2))
    assert.truthy(gw:wait_log(string.rep("worker started.*", 3), 2))
    assert.is_true(gw:alive())
    for i = 1, 10 do assert.equal("A", get(gw, "/after/" .. i)) end
  end)

  it("HUP to the master reloads every worker and switches the route", function()
    local gw = start()
    finally(function() gw:stop() end)
    assert.equal("A", get(gw))
    local mark = gw:log_mark()
    rewrite(gw, config { listen = gw.listen, pass = B.url, comment = "switch to B" })
    assert(gw:signal "HUP")
    for _, w in ipairs(gw.workers) do
      assert.truthy(gw:wait_log("%[" .. w .. "%] [^\n]-reloaded [^\n]-generation 1 %-> 2", 5, { from = mark }),
                    "worker " .. w .. " did not log its reload")
    end
    local log = gw:log():sub(mark + 1)
    assert.is_nil(log:find "failed")
    assert.is_nil(log:find("%[" .. gw.pid .. "%] [^\n]-reloaded "), "the master logged a worker's line")
    -- no new workers: the same processes reloaded in place
    assert.same(gw.workers, children(gw.pid))
    for i = 1, 10 do assert.equal("B", get(gw, "/new/" .. i)) end
  end)

  it("an invalid config is reported once by the master and no worker changes config", function()
    local gw = start()
    finally(function() gw:stop() end)
    assert.equal("A", get(gw))
    local mark = gw:log_mark()
    rewrite(gw, "-- broken\nreturn {\n  listen = { \"" .. gw.listen .. "\" },\n  routes = { { path = = } },\n}\n")
    assert(gw:signal "HUP")
    local log = gw:wait_log("%[" .. gw.pid .. "%] [^\n]-reload %(SIGHUP%) failed[^\n]-gateway%.lua:4", 5,
                            { from = mark })
    assert.truthy(log, "the master did not report the syntax error with file and line")
    -- give the workers time to (wrongly) react: they would log within a second
    helpers.poll(function()
      local l = gw:log():sub(mark + 1)
      return l:find "reloaded " or count(l, "failed") > 4
    end, 1.5, 0.05)
    log = gw:log():sub(mark + 1)
    assert.equal(1, count(log, "reload %(SIGHUP%) failed[^\n]-gateway%.lua:4"), log)
    for line in log:gmatch "[^\n]+" do
      if line:find "failed" or line:find "reloaded" then
        assert.matches("%[" .. gw.pid .. "%]", line, "a line not from the master: " .. line)
      end
      assert.is_nil(line:find "reloaded ", "a reload happened: " .. line)
    end
    assert.same(gw.workers, children(gw.pid))
    for i = 1, 6 do assert.equal("A", get(gw, "/still/" .. i)) end
  end)

  it("a listen change starts a new set of workers and stops the old set", function()
    local gw = start()
    finally(function() gw:stop() end)
    local p2 = helpers.free_port()
    local a1, a2 = { host = "127.0.0.1", port = gw.port }, { host = "127.0.0.1", port = p2 }
    local old = gw.workers
    local mark = gw:log_mark()
    rewrite(gw, config { listen = { gw.listen, "127.0.0.1:" .. p2 }, pass = B.url })
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("listening on 127%.0%.0%.1:" .. p2, 5, { from = mark }))
    assert.truthy(wait_children(gw.pid, 2, 8, old), "the old workers were not replaced by two new ones")
    for _, w in ipairs(old) do
      assert.truthy(helpers.poll(function() return not running(w) end, 5), "old worker " .. w .. " still runs")
    end
    assert.equal("B", get(gw, "/", a2))
    assert.equal("B", get(gw, "/", a1))

    old = children(gw.pid)
    rewrite(gw, config { listen = "127.0.0.1:" .. p2, pass = B.url, comment = "only p2" })
    assert(gw:signal "HUP")
    assert.truthy(wait_children(gw.pid, 2, 8, old), "the workers were not replaced after the second change")
    assert.truthy(helpers.poll(function() return not helpers.can_connect(a1) end, 5),
                  "the removed address still accepts")
    assert.equal("B", get(gw, "/", a2))
  end)

  it("SIGTERM to the master lets a slow request finish, then every process exits", function()
    local gw = start()
    finally(function() gw:stop() end)
    local workers = gw.workers
    local n0 = A:count()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send("GET /slow?sleep=1.5 HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert(A:wait_requests(n0 + 1, 5), "the slow request did not reach A")
    assert(gw:signal "TERM")
    local res = assert(c:read_response { timeout = 5 })
    assert.equal(200, res.status)
    assert.equal("A", res.body)
    local how, code = gw:wait(5)
    assert.equal("exited", how)
    assert.equal(0, code)
    for _, w in ipairs(workers) do
      assert.truthy(helpers.poll(function() return not running(w) end, 3), "worker " .. w .. " still runs")
    end
  end)

  it("workers = \"auto\" starts one worker per CPU", function()
    local n = assert(nproc(), "nproc failed")
    if n < 2 then
      -- one CPU: one worker, which may be the process itself
      local gw = helpers.start_gateway(config { listen = "127.0.0.1:" .. helpers.free_port(),
                                                workers = "auto", pass = A.url })
      finally(function() gw:stop() end)
      assert.equal("A", get(gw))
      return
    end
    local gw = start { workers = "auto", expect = n }
    finally(function() gw:stop() end)
    assert.equal(n, #gw.workers)
    assert.matches("master started with " .. n .. " workers", gw:log())
    assert.equal("A", get(gw))
  end)
end)
