-- scgi-lua(8) ERRORS (errors the gateway produces) and "Lua hooks" (hook errors): each error has
-- its status, a short text/plain body and a log line naming the cause (client, route or backend).

local helpers = require "spec.helpers"

describe("gateway errors #integration", function()
  local gw
  local ok_backend, silent, broken = nil, nil, {}
  local refused_port

  local BROKEN = {
    garbage = "this is not a header\r\n\r\nbody",
    noblank = "Status: 200 OK\r\nContent-Type: text/plain\r\n",
    empty = "",
    ["status-abc"] = "Status: abc\r\nContent-Type: text/plain\r\n\r\nx",
    ["status-99"] = "Status: 99 Low\r\n\r\nx",
    ["status-600"] = "Status: 600 High\r\n\r\nx",
    bighead = "Status: 200 OK\r\nX-Big: " .. ("a"):rep(17 * 1024) .. "\r\n\r\nx",
    manyheads = "Status: 200 OK\r\n" .. ("X-Header-Line: " .. ("b"):rep(50) .. "\r\n"):rep(400)
                .. "\r\nx",
    binary = "\0\1\2\3\255\254 garbage\r\n\r\n",
  }

  lazy_setup(function()
    ok_backend = helpers.scgi_backend()
    silent = helpers.scgi_backend { handler = [[
      function(req, sock) req:read_body() sleep(30) end ]] }
    for name, reply in pairs(BROKEN) do broken[name] = helpers.scgi_backend { reply = reply } end
    broken.truncated = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        send_all(sock, "Status: 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
      end ]] }
    broken.reset = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" .. ("z"):rep(1000))
        sleep(0.3)
        sock:setoption("linger", { on = true, timeout = 0 })
        sock:close()
      end ]] }
    refused_port = helpers.free_port()

    local routes = {}
    local function add(r) routes[#routes + 1] = r end
    add(string.format([[{ match = function(req)
          if req.headers["x-boom"] then error("match exploded") end
          return false
        end, pass = %q }]], ok_backend.url))
    add(string.format('{ path = "/ok/", pass = %q }', ok_backend.url))
    add(string.format('{ path = "/refused/", pass = "scgi://127.0.0.1:%d/" }', refused_port))
    add(string.format('{ path = "/silent/", pass = %q, timeout = 1 }', silent.url))
    add(string.format('{ path = "/silent-global/", pass = %q }', silent.url))
    for name, b in pairs(broken) do
      add(string.format('{ path = "/%s/", pass = %q }', name, b.url))
    end
    add(string.format([[{ path = "/deny/", pass = %q, access = function(req)
          if req.headers["x-deny"] == "body" then return 403, "go away" end
          if req.headers["x-deny"] then return 403 end
          if req.headers["x-auth"] == nil and req.path == "/deny/auth" then return 401, "who are you?" end
        end }]], ok_backend.url))
    add(string.format([[{ path = "/hookerr/", pass = %q, access = function(req)
          error("hook exploded")
        end }]], ok_backend.url))
    add(string.format([[{ path = "/enverr/", pass = %q, env = {
          BAD = function(req) error("env exploded") end } }]], ok_backend.url))
    gw = helpers.start_gateway(string.format([[
      return {
        access_log = false,
        log_level = "info",
        timeouts = { client_header = 1, client_body = 1, backend = 2, connect = 2, keepalive = 5 },
        limits = { header_bytes = 2048, headers = 20, body_bytes = 100000 },
        routes = { %s },
      }]], table.concat(routes, ",\n")))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if ok_backend then ok_backend:stop() end
    if silent then silent:stop() end
    for _, b in pairs(broken) do b:stop() end
  end)

  -- Request `t`; expect `status` with a text/plain body, and a new log line matching `pattern`.
  local function expect_error(t, status, pattern)
    local mark = gw:log_mark()
    local res = assert(gw:request(t))
    assert.equal(status, res.status, res.body)
    assert.matches("^text/plain", res.headers["content-type"] or "")
    assert.is_true(#res.body > 0 and #res.body < 1024, "short body expected")
    if pattern then
      local log = gw:wait_log(pattern, 3, { from = mark })
      assert.truthy(log, "no log line matching " .. pattern .. " in:\n" .. gw:log():sub(mark + 1))
    end
    return res
  end

  local function quote(s) return (s:gsub("%p", "%%%0")) end

  local function raw_error(bytes, status, pattern)
    local mark = gw:log_mark()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local res = assert(c:exchange(bytes, { timeout = 5 }))
    assert.equal(status, res.status, res.body)
    if pattern then
      assert.truthy(gw:wait_log(pattern, 3, { from = mark }),
                    "no log line matching " .. pattern .. " in:\n" .. gw:log():sub(mark + 1))
    end
    return res, c
  end

  describe("routing and hooks", function()
    it("no route → 404", function()
      expect_error({ path = "/nowhere/at/all" }, 404, "/nowhere/at/all")
    end)

    it("an access hook's status → that status (with its body)", function()
      local res = expect_error({ path = "/deny/x", headers = { ["X-Deny"] = "body" } }, 403)
      assert.equal("go away", res.body)
      res = assert(gw:request { path = "/deny/x", headers = { ["X-Deny"] = "1" } })
      assert.equal(403, res.status)
      res = assert(gw:request { path = "/deny/auth" })
      assert.equal(401, res.status)
      assert.equal("who are you?", res.body)
    end)

    it("an access hook that returns nothing lets the request through", function()
      local res = assert(gw:request { path = "/deny/x" })
      assert.equal(200, res.status)
      assert.equal("/deny/x", ok_backend:last_request().env.SCRIPT_NAME)
    end)

    it("a Lua error in an access hook → 500 with a log line, and the gateway keeps serving", function()
      expect_error({ path = "/hookerr/x" }, 500, "hook exploded")
      assert.is_true(gw:alive())
      local res = assert(gw:request { path = "/ok/after" })
      assert.equal(200, res.status)
    end)

    it("a Lua error in an env function → 500", function()
      local n0 = ok_backend:count()
      expect_error({ path = "/enverr/x" }, 500, "env exploded")
      assert.equal(n0, ok_backend:count())
    end)

    it("a Lua error in a match function → 500", function()
      expect_error({ path = "/ok/x", headers = { ["X-Boom"] = "1" } }, 500, "match exploded")
      assert.equal(200, assert(gw:request { path = "/ok/y" }).status)
    end)
  end)

  describe("bad requests", function()
    it("a header line over limits.header_bytes → 431", function()
      expect_error({ path = "/ok/", headers = { ["X-Big"] = ("h"):rep(3000) } }, 431, "127%.0%.0%.1")
    end)

    it("more than limits.headers headers → 431", function()
      local h = {}
      for i = 1, 30 do h[#h + 1] = { "X-H" .. i, "v" } end
      expect_error({ path = "/ok/", headers = h }, 431, "127%.0%.0%.1")
    end)

    it("exactly limits.headers headers is fine", function()
      local h = {}
      for i = 1, 19 do h[#h + 1] = { "X-H" .. i, "v" } end -- + Host = 20
      assert.equal(200, assert(gw:request { path = "/ok/", headers = h }).status)
    end)

    it("Content-Length together with Transfer-Encoding → 400", function()
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" ..
                "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, "127%.0%.0%.1")
    end)

    it("two different Content-Length headers → 400", function()
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                400, "127%.0%.0%.1")
    end)

    it("a bad Content-Length → 400", function()
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400)
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400)
    end)

    it("Transfer-Encoding whose last coding is not chunked → 400", function()
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400)
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400)
    end)

    it("an unknown coding before chunked → 501", function()
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" ..
                "3\r\nabc\r\n0\r\n\r\n", 501, "127%.0%.0%.1")
    end)

    it("a garbage request line → 400", function()
      raw_error("GARBAGE\r\n\r\n", 400, "127%.0%.0%.1")
      raw_error("GET / HTTP/9.9 extra\r\n\r\n", 400)
    end)

    it("an invalid chunked body → 400", function()
      raw_error("POST /ok/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
                400)
    end)
  end)

  describe("client timeouts", function()
    it("a request head not complete within timeouts.client_header → 408", function()
      local mark = gw:log_mark()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local t0 = helpers.now()
      assert(c:send "GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
      local res = assert(c:read_response { timeout = 5 })
      assert.equal(408, res.status)
      assert.is_true(helpers.now() - t0 >= 0.8, "408 came too early")
      assert.is_true(c:closed(3))
      assert.truthy(gw:wait_log("127%.0%.0%.1", 3, { from = mark }))
    end)

    it("a head trickled byte by byte still times out (total time, not idle time)", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local t0 = helpers.now()
      -- trickled for longer than the bound below, however slow the build
      local head = "GET /ok/ HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("s"):rep(100 * helpers.time_scale)
      local got
      for i = 1, #head do
        if not c:send(head:sub(i, i)) then break end
        if c:closed(0.05) then break end
        if helpers.now() - t0 > helpers.slack(4) then break end
      end
      got = c:read_all(3)
      assert.matches("^HTTP/1%.1 408", got)
      assert.is_true(helpers.now() - t0 < helpers.slack(4), "client_header is a total deadline")
    end)

    it("a body that stalls longer than timeouts.client_body → 408", function()
      local mark = gw:log_mark()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      assert(c:send "POST /ok/slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
      local res = assert(c:read_response { timeout = 6 })
      assert.equal(408, res.status)
      assert.truthy(gw:wait_log("127%.0%.0%.1", 3, { from = mark }))
    end)
  end)

  describe("backend failures", function()
    it("connection refused → 503, logged with the backend address", function()
      expect_error({ path = "/refused/x" }, 503, "127%.0%.0%.1:" .. refused_port)
    end)

    it("no answer within the route timeout → 504", function()
      local t0 = helpers.now()
      expect_error({ path = "/silent/x" }, 504, "127%.0%.0%.1:" .. silent.port)
      local dt = helpers.now() - t0
      assert.is_true(dt >= 0.8 and dt < helpers.slack(3), "route timeout = 1 not honoured: " .. dt)
    end)

    it("no answer within timeouts.backend → 504", function()
      local t0 = helpers.now()
      expect_error({ path = "/silent-global/x" }, 504, "127%.0%.0%.1:" .. silent.port)
      local dt = helpers.now() - t0
      assert.is_true(dt >= 1.8 and dt < helpers.slack(4.5), "timeouts.backend = 2 not honoured: " .. dt)
    end)

    for _, name in ipairs { "garbage", "noblank", "empty", "status-abc", "status-99",
                            "status-600", "bighead", "manyheads", "binary" } do
      it("a malformed backend response (" .. name .. ") → 502, logged with the backend", function()
        local b = broken[name]
        expect_error({ path = "/" .. name .. "/x" }, 502, quote("127.0.0.1:" .. b.port))
      end)
    end

    it("a response cut short after it started → the client connection is closed", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      assert(c:send "GET /truncated/x HTTP/1.1\r\nHost: x\r\n\r\n")
      local res, err = c:read_response { timeout = 5 }
      assert.is_nil(res)
      assert.matches("closed", err)
    end)

    it("a backend reset mid-body → the client connection is closed without a final chunk", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      assert(c:send "GET /reset/x HTTP/1.1\r\nHost: x\r\n\r\n")
      local res, err = c:read_response { timeout = 5 }
      assert.is_nil(res, "a complete response was relayed for a reset backend")
      assert.matches("closed", err)
    end)

    it("keeps serving after all of this", function()
      assert.is_true(gw:alive())
      assert.equal(200, assert(gw:request { path = "/ok/final" }).status)
    end)
  end)
end)
