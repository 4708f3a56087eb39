-- A reload never stops serving (README "Reloading the configuration"; scgi-lua(8) SIGNALS):
-- the new generation is built off the event loop, so while a reload runs a config whose top
-- level spins until its 5 s budget ends, one that grows the Lua heap until its cap, or one
-- that is merely slow and then valid, a steady stream of requests (on one keep-alive
-- connection and on fresh ones) is answered within 0.5 s * slack each; afterwards the old
-- generation serves (failed loads) or the new one does (the slow good load). With 0 workers
-- (the gateway loads in its own process) and with 2 (each worker loads what the master sent).
--
-- A backend host name that resolves slowly is not tested: without a name server under the
-- test's control a lookup either fails at once (NXDOMAIN, /etc/hosts) or depends on the
-- network; the lookup runs on the same loader thread as the config's Lua code, which the
-- spinning config shows never holds the loop.

local helpers = require "spec.helpers"
local socket = require "socket"

local reloading = require "spec.helpers.reloading"
local app, config, rewrite = reloading.named_app, reloading.config, reloading.rewrite

local BOUND = 0.5

describe("reload off the event loop #integration", function()
  local A, B

  lazy_setup(function()
    A = helpers.scgi_backend { handler = app "A" }
    B = helpers.scgi_backend { handler = app "B" }
  end)
  lazy_teardown(function()
    if A then A:stop() end
    if B then B:stop() end
  end)

  local function start(workers)
    local listen = "127.0.0.1:" .. helpers.free_port()
    -- workers = 1 (the default) is the single-process gateway: no master
    local gw = helpers.start_gateway(config { listen = listen, pass = A.url,
                                              workers = workers > 0 and workers or nil })
    gw.listen = listen
    if workers > 0 then
      assert.truthy(gw:wait_log(string.rep("worker started.*", workers), 5), "not all workers started")
    end
    return gw
  end

  -- Requests, paced every 20 ms, alternating between one keep-alive connection and a fresh
  -- connection each, until done() holds (or `limit` seconds). Each must be a 200 within the
  -- bound. Returns the worst latency, the number of requests and the bodies seen.
  local function stream(gw, done, limit)
    local c = assert(gw:connect())
    local worst, n, bodies = 0, 0, {}
    local deadline = helpers.now() + limit
    local bound = helpers.slack(BOUND)
    repeat
      for _, fresh in ipairs { false, true } do
        local t0 = helpers.now()
        local res, err
        if fresh then
          res, err = gw:request { path = "/", timeout = 10 }
        else
          res, err = c:request { path = "/", timeout = 10 }
        end
        local dt = helpers.now() - t0
        assert(res, err)
        assert.equal(200, res.status)
        bodies[res.body] = (bodies[res.body] or 0) + 1
        n = n + 1
        if dt > worst then worst = dt end
        assert(dt < bound, string.format("request %d (%s) took %.3f s during the reload (bound %.2f s)",
                                         n, fresh and "new connection" or "keep-alive", dt, bound))
      end
      socket.sleep(0.02) -- pacing, not synchronisation
    until done() or helpers.now() > deadline
    c:close()
    return worst, n, bodies
  end

  local function log_has(gw, mark, pattern, count)
    local l = gw:log():sub(mark + 1)
    return select(2, l:gsub(pattern, "")) >= (count or 1)
  end

  for _, workers in ipairs { 0, 2 } do
    describe(workers == 0 and "single process" or ("with " .. workers .. " workers"), function()
      it("keeps answering while a config that never returns runs out its budget", function()
        local gw = start(workers)
        finally(function() gw:stop() end)
        assert.equal("A", (assert(gw:request { path = "/" })).body)
        local mark = gw:log_mark()
        rewrite(gw, "local n = 0\nwhile true do n = n + 1 end\n")
        assert(gw:signal "HUP")
        local t0 = helpers.now()
        local _, n = stream(gw, function()
          return log_has(gw, mark, "reload %(SIGHUP%) failed[^\n]-ran longer than 5 s")
        end, helpers.slack(15))
        assert.truthy(log_has(gw, mark, "reload %(SIGHUP%) failed[^\n]-ran longer than 5 s"),
                      "no failure line for the endless config")
        assert(helpers.now() - t0 > 4.5, "the load did not run out its 5 s budget")
        assert(n >= 20, "too few requests during the load: " .. n)
        for _ = 1, 4 do assert.equal("A", (assert(gw:request { path = "/" })).body) end
        assert.is_true(gw:alive())
      end)

      it("keeps answering while a config grows its heap to the cap", function()
        local gw = start(workers)
        finally(function() gw:stop() end)
        local mark = gw:log_mark()
        -- many small objects: seconds of work before the 256 MiB cap, unlike one big string
        rewrite(gw, 'local t, i = {}, 0\nwhile true do i = i + 1; t[i] = { tostring(i) } end\n')
        assert(gw:signal "HUP")
        local _, n = stream(gw, function()
          return log_has(gw, mark, "reload %(SIGHUP%) failed")
        end, helpers.slack(15))
        assert.truthy(log_has(gw, mark, "reload %(SIGHUP%) failed[^\n]-Lua heap exceed"),
                      "no memory failure line:\n" .. gw:log():sub(mark + 1))
        assert(n >= 2, "no request during the load")
        for _ = 1, 4 do assert.equal("A", (assert(gw:request { path = "/" })).body) end
        assert.is_true(gw:alive())
      end)

      it("keeps answering during a slow valid load, then serves the new generation", function()
        local gw = start(workers)
        finally(function() gw:stop() end)
        local mark = gw:log_mark()
        rewrite(gw, "local t0 = os.clock()\nwhile os.clock() - t0 < 1.5 do end\n" ..
                    config { listen = gw.listen, pass = B.url,
                                                 workers = workers > 0 and workers or nil })
        assert(gw:signal "HUP")
        local _, n, bodies = stream(gw, function()
          return log_has(gw, mark, "reloaded [^\n]-%(SIGHUP%): generation 1 %-> 2", math.max(workers, 1))
        end, helpers.slack(15))
        assert.truthy(log_has(gw, mark, "reloaded [^\n]-%(SIGHUP%): generation 1 %-> 2", math.max(workers, 1)),
                      "not every process logged the reload:\n" .. gw:log():sub(mark + 1))
        assert.is_nil(gw:log():sub(mark + 1):find "failed")
        assert(n >= 20, "too few requests during the load: " .. n)
        assert.truthy(bodies.A, "no request was answered by the old generation during the load")
        for _ = 1, 4 do assert.equal("B", (assert(gw:request { path = "/" })).body) end
        assert.is_true(gw:alive())
      end)
    end)
  end

  it("a stop during a running load exits promptly", function()
    local gw = start(0)
    finally(function() gw:stop() end)
    local mark = gw:log_mark()
    local started = gw.dir .. "/load-started"
    rewrite(gw, string.format("io.open(%q, 'w'):close()\nlocal n = 0\nwhile true do n = n + 1 end\n",
                              started))
    assert(gw:signal "HUP")
    assert.truthy(helpers.poll(function()
      local f = io.open(started)
      if f then f:close() return true end
    end, helpers.slack(5)),
                  "the load did not start")
    assert.equal("A", (assert(gw:request { path = "/", timeout = 5 })).body)
    local t0 = helpers.now()
    assert(gw:signal "TERM")
    local how, code = gw:wait(helpers.slack(3))
    assert.equal("exited", how)
    assert.equal(0, code)
    assert(helpers.now() - t0 < helpers.slack(2), "the stop waited for the load")
    assert.is_nil(gw:log():sub(mark + 1):find "reloaded")
  end)
end)
