-- scgi-lua(8) OPTIONS (the program) and CONFIGURATION (validation as seen from the command line):
-- -V, -t on good and bad configs, startup failures, graceful stop on SIGTERM/SIGINT, a second
-- SIGTERM.

local helpers = require "spec.helpers"

describe("the scgi-lua program #integration", function()
  describe("command line", function()
    it("-V prints a version and exits 0", function()
      local code, out = helpers.run_gateway { "-V" }
      assert.equal(0, code, out)
      assert.matches("%d+%.%d+", out)
      assert.matches("scgi%-lua", out)
    end)

    it("-t prints `configuration OK` and a line per route for a good config", function()
      local path = helpers.temp_file [[
        return {
          listen = "127.0.0.1:1",
          routes = {
            { path = "/scgi-bin/", pass = "scgi://127.0.0.1:4000/" },
            { path = "/app/", pass = "scgi+unix:/run/app.sock" },
            { match = function(req) return true end, pass = "scgi://127.0.0.1:4001/" },
          },
        }]]
      local code, out = helpers.run_gateway { "-t", path }
      assert.equal(0, code, out)
      assert.matches("configuration OK", out)
      assert.matches("/scgi%-bin/", out)
      assert.matches("/app/", out)
      assert.matches("127%.0%.0%.1:4000", out)
      assert.matches("/run/app%.sock", out)
    end)

    it("-t accepts fixtures/minimal.lua", function()
      local code, out = helpers.run_gateway { "-t", helpers.root .. "/spec/fixtures/minimal.lua" }
      assert.equal(0, code, out)
      assert.matches("configuration OK", out)
    end)

    it("-t reports every error with its dotted path and the file name, and exits 1", function()
      local path = helpers.temp_file([[
        return {
          lisen = "127.0.0.1:8080",
          workers = "many",
          timeouts = { backend = -1 },
          routes = {
            { path = "/a/", pass = "http://127.0.0.1:4000/" },
            { path = "/b/", pass = "balancer://web/" },
            { pass = "scgi://127.0.0.1:4000/" },
            { path = "/c/", pass = "scgi://127.0.0.1:4000/", timeout = "soon" },
          },
        }]], "bad-gateway.lua")
      local code, out = helpers.run_gateway { "-t", path }
      assert.equal(1, code, out)
      assert.not_matches("configuration OK", out)
      assert.matches("bad%-gateway%.lua", out)
      assert.matches("lisen", out)
      assert.matches("workers", out)
      assert.matches("timeouts%.backend", out)
      assert.matches("routes%[1%]%.pass", out)
      assert.matches("routes%[2%]%.pass", out)
      assert.matches("web", out)
      assert.matches("routes%[3%]", out)
      assert.matches("routes%[4%]%.timeout", out)
    end)

    it("-t reports a Lua syntax error with the file and line, and exits 1", function()
      local path = helpers.temp_file("return {\n  listen = \"127.0.0.1:1\",\n  routes = {{ path = }\n}\n",
                                     "syntax.lua")
      local code, out = helpers.run_gateway { "-t", path }
      assert.equal(1, code, out)
      assert.matches("syntax%.lua:%d", out)
    end)

    it("-t fails on a missing file", function()
      local code, out = helpers.run_gateway { "-t", "/nonexistent/gateway.lua" }
      assert.is_not.equal(0, code)
      assert.matches("/nonexistent/gateway%.lua", out)
    end)

    it("refuses to start with an invalid config, naming the file, with a non-zero status", function()
      local path = helpers.temp_file([[return { listen = "127.0.0.1:1", routes = { { path = 3 } } }]],
                                     "invalid.lua")
      local code, out = helpers.run_gateway { path }
      assert.is_not.equal(0, code)
      assert.matches("invalid%.lua", out)
      assert.matches("routes%[1%]", out)
    end)

    it("fails at startup when the listen address is taken", function()
      local socket = require "socket"
      local s = assert(socket.bind("127.0.0.1", 0))
      finally(function() s:close() end)
      local _, port = s:getsockname()
      local path = helpers.temp_file(string.format(
        [[return { listen = "127.0.0.1:%d", routes = { { path = "/", pass = "scgi://127.0.0.1:1/" } } }]],
        port))
      local code, out = helpers.run_gateway { path }
      assert.is_not.equal(0, code)
      assert.matches(tostring(port), out)
    end)

    it("without arguments prints usage and fails", function()
      local code, out = helpers.run_gateway {}
      assert.is_not.equal(0, code)
      assert.matches("[Uu]sage", out)
    end)
  end)

  describe("signals", function()
    local slow

    lazy_setup(function()
      slow = helpers.scgi_backend { handler = [[
        function(req, sock)
          req:read_body()
          sleep(tonumber(req.env.QUERY_STRING) or 1)
          send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nfinished")
        end ]] }
    end)
    lazy_teardown(function() slow:stop() end)

    local function start(shutdown)
      return helpers.start_gateway {
        access_log = false,
        timeouts = { shutdown = shutdown or 10 },
        routes = { { path = "/", pass = slow.url } },
      }
    end

    -- Start a request that takes `secs` at the backend; return the connection once the backend
    -- has it.
    local function in_flight(gw, secs)
      local n0 = slow:count()
      local c = assert(gw:connect())
      assert(c:send("GET /slow?" .. secs .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert(slow:wait_requests(n0 + 1, 5))
      return c
    end

    it("SIGTERM lets an in-flight request finish, stops accepting, then exits 0", function()
      local gw = start()
      finally(function() gw:stop() end)
      local c = in_flight(gw, 1.5)
      finally(function() c:close() end)
      assert(gw:signal "TERM")
      -- stops accepting new connections
      assert.truthy(helpers.poll(function()
        return not helpers.can_connect(gw.addr)
      end, 1), "still accepting after SIGTERM")
      local res = assert(c:read_response { timeout = 5 })
      assert.equal(200, res.status)
      assert.equal("finished", res.body)
      local how, code = gw:wait(5)
      assert.equal("exited", how)
      assert.equal(0, code)
    end)

    it("SIGTERM on an idle gateway exits 0 at once", function()
      local gw = start()
      finally(function() gw:stop() end)
      local t0 = helpers.now()
      assert(gw:signal "TERM")
      local how, code = gw:wait(helpers.slack(3))
      assert.equal("exited", how)
      assert.equal(0, code)
      assert.is_true(helpers.now() - t0 < helpers.slack(2))
    end)

    it("SIGINT stops gracefully too", function()
      local gw = start()
      finally(function() gw:stop() end)
      assert(gw:signal "INT")
      local how, code = gw:wait(3)
      assert.equal("exited", how)
      assert.equal(0, code)
    end)

    it("an idle keep-alive connection does not delay the stop", function()
      local gw = start()
      finally(function() gw:stop() end)
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = assert(c:request { path = "/quick?0" })
      assert.equal(200, res.status)
      local t0 = helpers.now()
      assert(gw:signal "TERM")
      local how, code = gw:wait(helpers.slack(3))
      assert.equal("exited", how)
      assert.equal(0, code)
      assert.is_true(helpers.now() - t0 < helpers.slack(2))
      assert.is_true(c:closed(1))
    end)

    it("gives up on in-flight requests after timeouts.shutdown and exits 0", function()
      local gw = start(1)
      finally(function() gw:stop() end)
      local c = in_flight(gw, 10)
      finally(function() c:close() end)
      local t0 = helpers.now()
      assert(gw:signal "TERM")
      local how, code = gw:wait(helpers.slack(4))
      assert.equal("exited", how)
      assert.equal(0, code)
      local dt = helpers.now() - t0
      assert.is_true(dt >= 0.8 and dt < helpers.slack(3), "stopped after " .. dt .. " s")
      assert.is_true(c:closed(1))
    end)

    it("a second SIGTERM exits at once with a non-zero status", function()
      local gw = start()
      finally(function() gw:stop() end)
      local c = in_flight(gw, 10)
      finally(function() c:close() end)
      assert(gw:signal "TERM")
      assert.truthy(helpers.poll(function() return not helpers.can_connect(gw.addr) end, 1))
      assert.is_true(gw:alive())
      local t0 = helpers.now()
      assert(gw:signal "TERM")
      local how, code = gw:wait(helpers.slack(2))
      assert.truthy(how, "still running after the second SIGTERM")
      assert.is_true(how == "killed" or code ~= 0, "exit status " .. tostring(how) .. " " .. tostring(code))
      assert.is_true(helpers.now() - t0 < helpers.slack(1.5))
    end)
  end)
end)
