-- The request lifecycle on one client connection (README "Configuration" timeouts and limits,
-- "Observing it"): nothing of one request outlives it on a keep-alive connection (the access log's
-- backend field of a request that never reached a backend is "-", even after a reload freed the
-- previous request's configuration), timeouts.client_header counts from the first byte of a head
-- and the idle time before it only against timeouts.keepalive, a request's start time (access log,
-- latency histogram) is the first byte of its head (accept for a connection's first request), and
-- a head is parsed with the limits of the configuration in force when it starts.

local helpers = require "spec.helpers"
local proc = helpers.proc

-- host ident user [time] "request" status bytes "referer" "user-agent" seconds backend
local CLF = '^(%S+) (%S+) (%S+) %[([^%]]+)%] "([^"]*)" (%d%d%d) (%d+) "([^"]*)" "([^"]*)" '
            .. '([%d.]+) (%S+)$'

local function parse_line(line)
  local host, _, _, _, request, status, _, _, _, secs, backend = line:match(CLF)
  if not host then return nil end
  return { request = request, status = tonumber(status), seconds = tonumber(secs),
           backend = backend, line = line }
end

-- Poll the access log at `path` until a line containing `needle` (plain) appears; returns its
-- fields, or only { line = ... } when it is not Combined Log Format + time + backend (stray
-- bytes in the backend field, say).
local function wait_entry(path, needle, timeout)
  return helpers.poll(function()
    for line in (proc.read_file(path) or ""):gmatch "([^\n]*)\n" do
      if line:find(needle, 1, true) then return parse_line(line) or { line = line } end
    end
  end, timeout or 5)
end

local function reload(gw)
  local mark = gw:log_mark()
  assert(gw:signal "HUP")
  assert.truthy(gw:wait_log("reloaded [^\n]-%(SIGHUP%)", 5, { from = mark }),
                "no reload line:\n" .. gw:log():sub(mark + 1))
end

describe("request lifecycle #integration #lifecycle", function()
  local backend

  lazy_setup(function()
    backend = helpers.scgi_backend()
  end)

  lazy_teardown(function()
    backend:stop()
  end)

  describe("per-request state on a keep-alive connection", function()
    local gw, log_path

    lazy_setup(function()
      gw = helpers.start_gateway(string.format([[
        return {
          access_log = "{DIR}/access.log",
          limits = { body_bytes = 100 },
          routes = {
            { path = "/deny/", pass = %q, access = function(req) return 403, "denied\n" end },
            { path = "/boom/", pass = %q, access = function(req) error("access hook exploded") end },
            { path = "/", pass = %q },
          },
        }]], backend.url, backend.url, backend.url))
      log_path = gw.dir .. "/access.log"
    end)

    lazy_teardown(function() gw:stop() end)

    -- A request that reaches the backend, a reload (which frees that request's configuration
    -- once it ended), then `second` on the same connection; returns its access log entry.
    local function after_proxied(tag, second, status)
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = assert(c:request { path = "/app/" .. tag .. "-first" })
      assert.equal(200, res.status)
      local first = wait_entry(log_path, "/app/" .. tag .. "-first")
      assert.truthy(first, "no access log line for the proxied request")
      assert.matches("^scgi://127%.0%.0%.1:" .. backend.port, first.backend)
      reload(gw)
      res = assert(c:exchange(second, { timeout = 5 }))
      assert.equal(status, res.status, res.body)
      local e = wait_entry(log_path, tag .. "-second")
      assert.truthy(e, "no access log line for the second request:\n" .. (proc.read_file(log_path) or ""))
      assert.is_true(gw:alive(), "the gateway died")
      return e, c
    end

    it("a 413 after a proxied request and a reload logs backend \"-\"", function()
      local e = after_proxied("big",
        "POST /app/big-second HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", 413)
      assert.equal("-", e.backend, e.line)
    end)

    it("an access hook's answer after a proxied request and a reload logs backend \"-\"", function()
      local e, c = after_proxied("deny", "GET /deny/deny-second HTTP/1.1\r\nHost: x\r\n\r\n", 403)
      assert.equal("-", e.backend, e.line)
      -- the connection goes on, and the next proxied request names its backend again
      local res = assert(c:request { path = "/app/deny-third" })
      assert.equal(200, res.status)
      local third = wait_entry(log_path, "deny-third")
      assert.matches("^scgi://127%.0%.0%.1:" .. backend.port, third.backend)
    end)

    it("an access hook error after a proxied request and a reload logs backend \"-\"", function()
      local e = after_proxied("boom", "GET /boom/boom-second HTTP/1.1\r\nHost: x\r\n\r\n", 500)
      assert.equal("-", e.backend, e.line)
    end)
  end)

  describe("timeouts and start times", function()
    local gw, log_path

    lazy_setup(function()
      gw = helpers.start_gateway(string.format([[
        return {
          access_log = "{DIR}/access.log",
          status = { path = "/status", allow = { "127.0.0.1" } },
          timeouts = { client_header = 1, keepalive = 5 },
          routes = { { path = "/", pass = %q } },
        }]], backend.url))
      log_path = gw.dir .. "/access.log"
    end)

    lazy_teardown(function() gw:stop() end)

    it("idle time before a keep-alive head counts against keepalive only, not client_header", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      assert.equal(200, assert(c:request { path = "/app/idle-1" }).status)
      proc.sleep(2) -- idle, longer than client_header = 1, well under keepalive = 5
      assert(c:send "GET /app/idle-2 HTTP/1.1\r\nHost: x\r\n")
      proc.sleep(0.3)
      assert(c:send "X-Second-Part: yes\r\n\r\n")
      local res = assert(c:read_response { timeout = 5 })
      assert.equal(200, res.status, res.body)
      assert.equal("/app/idle-2", helpers.parse_env_lines(res.body).REQUEST_URI)
    end)

    it("client_header still bounds a keep-alive head, counted from its first byte", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      assert.equal(200, assert(c:request { path = "/app/stall-1" }).status)
      proc.sleep(1.5)
      local t0 = helpers.now()
      assert(c:send "GET /app/stall-2 HTTP/1.1\r\nHost: x\r\n")
      local res = assert(c:read_response { timeout = 5 })
      local dt = helpers.now() - t0
      assert.equal(408, res.status)
      assert.is_true(dt >= 0.7 and dt < helpers.slack(4), "408 after " .. dt .. " s (client_header = 1)")
    end)

    it("a 400 decided in the head is logged with the time since its first byte", function()
      -- a connection's first request: its start is the accept
      local c = assert(gw:connect())
      local res = assert(c:exchange("GET /bad-first HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                                    { timeout = 5 }))
      c:close()
      assert.equal(400, res.status)
      local e = wait_entry(log_path, "/bad-first")
      assert.truthy(e, "no access log line for the 400:\n" .. (proc.read_file(log_path) or ""))
      assert.equal(400, e.status)
      assert.is_true(e.seconds < helpers.slack(5), "request time " .. e.seconds .. " s: " .. e.line)

      -- a later request on a keep-alive connection: its start is its head's first byte
      c = assert(gw:connect())
      finally(function() c:close() end)
      assert.equal(200, assert(c:request { path = "/app/before-bad" }).status)
      proc.sleep(1.5)
      res = assert(c:exchange("GET /bad-later HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                              { timeout = 5 }))
      assert.equal(400, res.status)
      e = wait_entry(log_path, "/bad-later")
      assert.truthy(e, "no access log line for the second 400")
      assert.is_true(e.seconds < 1, "request time " .. e.seconds .. " s includes the idle time: " .. e.line)

      -- and the latency histogram holds nothing above 10 s
      local text = assert(gw:request { path = "/status?format=prometheus" }).body
      local le10 = tonumber(text:match 'scgi_lua_request_duration_seconds_bucket{le="10"} (%d+)')
      local inf = tonumber(text:match 'scgi_lua_request_duration_seconds_bucket{le="%+Inf"} (%d+)')
      local sum = tonumber(text:match "scgi_lua_request_duration_seconds_sum ([%d.e+-]+)")
      assert.truthy(le10 and inf and sum, text)
      assert.equal(le10, inf, "requests counted above 10 s")
      assert.is_true(inf >= 4)
      assert.is_true(sum < 30, "latency sum " .. sum)
    end)
  end)

  describe("limits after a reload", function()
    local gw
    local function config(header_bytes, headers)
      return string.format([[
        return {
          listen = "127.0.0.1:{PORT}",
          access_log = false,
          limits = { header_bytes = %d, headers = %d },
          routes = { { path = "/", pass = %q } },
        }]], header_bytes, headers, backend.url)
    end

    lazy_setup(function()
      gw = helpers.start_gateway(config(8192, 100))
    end)

    lazy_teardown(function() gw:stop() end)

    it("apply to new requests on keep-alive connections opened before it", function()
      local big = { ["X-Big"] = ("b"):rep(2000) }
      local many = {}
      for i = 1, 10 do many["X-H" .. i] = "v" end
      local c1 = assert(gw:connect())
      local c2 = assert(gw:connect())
      local c3 = assert(gw:connect()) -- accepted before the reload, first request after it
      finally(function() c1:close() c2:close() c3:close() end)
      assert.equal(200, assert(c1:request { path = "/big-before", headers = big }).status)
      assert.equal(200, assert(c2:request { path = "/many-before", headers = many }).status)

      local mark = gw:log_mark()
      local src = config(1024, 5):gsub("{PORT}", tostring(gw.port))
      require("spec.helpers.reloading").rewrite(gw, src)
      assert(gw:signal "HUP")
      assert.truthy(gw:wait_log("reloaded [^\n]-generation 1 %-> 2", 5, { from = mark }))

      assert.equal(431, assert(c1:request { path = "/big-after", headers = big }).status)
      assert.equal(431, assert(c2:request { path = "/many-after", headers = many }).status)
      assert.equal(431, assert(c3:request { path = "/big-first", headers = big }).status)
      -- and a small request still passes on a new connection
      assert.equal(200, assert(gw:request { path = "/small" }).status)
    end)
  end)
end)
