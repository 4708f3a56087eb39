-- Self-test of the black-box helpers: the fake SCGI backend is driven by speaking SCGI to it
-- directly, and the HTTP client's response parser is fed canned bytes from an in-process
-- socket. No gateway involved.

local helpers = require "spec.helpers"
local http = require "spec.helpers.http_client"
local scgi = helpers.scgi
local socket = require "socket"

-- Send one SCGI request to `addr`, read the answer until close.
local function scgi_call(addr, vars, body, opts)
  opts = opts or {}
  local c = assert(http.connect(addr, { timeout = opts.timeout or 5 }))
  local head = scgi.encode(vars)
  assert(c:send(head .. (body or "")))
  local data, closed = c:read_all(opts.timeout or 5)
  c:close()
  return data, closed
end

local function std_vars(body, extra)
  local v = { { "CONTENT_LENGTH", tostring(#(body or "")) }, { "SCGI", "1" },
              { "REQUEST_METHOD", "POST" }, { "REQUEST_URI", "/x?y=1" } }
  for _, kv in ipairs(extra or {}) do v[#v + 1] = kv end
  return v
end

describe("spec helpers #helpers", function()
  it("free_port gives a bindable port", function()
    local p = helpers.free_port()
    assert.is_number(p)
    assert.is_true(p > 0 and p < 65536)
    local s = assert(socket.bind("127.0.0.1", p))
    s:close()
  end)

  it("free_port claims its port: no other spec process gets it, no bind(0) or connect() either", function()
    local ports = require "spec.helpers.ports"
    local p = helpers.free_port()
    assert.is_true(p >= ports.lo and p <= ports.hi, p .. " outside " .. ports.lo .. ".." .. ports.hi)
    local f = io.open "/proc/sys/net/ipv4/ip_local_port_range"
    local eph = tonumber(f:read("*a"):match "%d+")
    f:close()
    assert.is_true(p < eph, "port " .. p .. " is in the ephemeral range from " .. eph)
    -- another process asking for ports never gets this one while we live
    local code, out = helpers.proc.run({ helpers.luajit, "-e", string.format([[
      package.path = "./?.lua;./?/init.lua;" .. package.path
      local ports = require "spec.helpers.ports"
      local seen = {}
      for _ = 1, 200 do seen[ports.take()] = true end
      local claimed = ports.claimed_elsewhere(%d)
      print(seen[%d] and "GOT-IT" or "not-given", claimed and "claimed" or "unclaimed")]], p, p) },
      { cwd = helpers.root })
    assert.equal(0, code, out)
    assert.matches("not%-given%s+claimed", out)
    -- and this process does not hand it out twice
    local again = {}
    for _ = 1, 50 do again[helpers.free_port()] = true end
    assert.is_nil(again[p], "free_port handed out " .. p .. " twice")
  end)

  it("scgi.parse_head and decode_pairs", function()
    local st, payload, raw, rest = scgi.parse_head("5:A\0b\0\0,tail")
    assert.equal("done", st)
    assert.equal("A\0b\0\0", payload)
    assert.equal("5:A\0b\0\0,", raw)
    assert.equal("tail", rest)
    assert.equal("more", (scgi.parse_head "12:abc"))
    assert.equal("error", (scgi.parse_head "3:abcX"))
    assert.equal("error", (scgi.parse_head "x:"))
    local names, env = scgi.decode_pairs("A\0" .. "1\0B\0\0")
    assert.same({ "A", "B" }, names)
    assert.same({ A = "1", B = "" }, env)
    assert.is_nil((scgi.decode_pairs("A\0" .. "1")))
  end)

  describe("scgi_backend (default answer)", function()
    local backend
    lazy_setup(function() backend = helpers.scgi_backend() end)
    lazy_teardown(function() backend:stop() end)

    it("is reachable at once and has a scgi:// url", function()
      assert.matches("^scgi://127%.0%.0%.1:%d+/$", backend.url)
      assert.is_true(helpers.can_connect { host = "127.0.0.1", port = backend.port })
    end)

    it("records names in order, env, raw header and body; echoes NAME=VALUE lines", function()
      local n0 = backend:count()
      local body = "hello=world"
      local vars = std_vars(body, { { "HTTP_X_A", "1" } })
      local data, closed = scgi_call({ host = "127.0.0.1", port = backend.port }, vars, body)
      assert.is_true(closed)
      assert.matches("^Status: 200 OK\r\nContent%-Type: text/plain\r\n\r\n", data)
      local text = data:match "\r\n\r\n(.*)$"
      local env, names = helpers.parse_env_lines(text)
      assert.same({ "CONTENT_LENGTH", "SCGI", "REQUEST_METHOD", "REQUEST_URI", "HTTP_X_A" }, names)
      assert.equal("/x?y=1", env.REQUEST_URI)
      assert.equal(n0 + 1, backend:count())
      local rec = backend:last_request()
      assert.same(names, rec.names)
      assert.equal("11", rec.env.CONTENT_LENGTH)
      assert.equal(scgi.encode(vars), rec.raw_header)
      assert.equal(body, rec.body)
      assert.is_true(rec.body_complete)
    end)

    it("round-trips a binary body with every byte value", function()
      local body = helpers.blob(70000, 7)
      local data = scgi_call({ host = "127.0.0.1", port = backend.port }, std_vars(body), body)
      assert.matches("^Status: 200", data)
      local rec = backend:last_request()
      assert.equal(#body, #rec.body)
      assert.is_true(rec.body == body)
    end)

    it("records a malformed netstring with an error", function()
      local c = assert(http.connect { host = "127.0.0.1", port = backend.port })
      c:send("12:CONTENT_LENGTH\0" .. "0\0X")
      c:close()
      local reqs = assert(helpers.poll(function()
        local r = backend:last_request()
        if r and r.error then return r end
      end, 5))
      assert.matches("netstring", reqs.error)
    end)

    it("ignores connections that send nothing", function()
      local n0 = backend:count()
      assert.is_true(helpers.can_connect { host = "127.0.0.1", port = backend.port })
      scgi_call({ host = "127.0.0.1", port = backend.port }, std_vars "", "")
      assert.equal(n0 + 1, backend:count())
    end)
  end)

  describe("scgi_backend (reply, handler)", function()
    it("writes `reply` verbatim after reading the body", function()
      local b = helpers.scgi_backend { reply = "Status: 201 Created\r\n\r\nok" }
      finally(function() b:stop() end)
      local data = scgi_call({ host = "127.0.0.1", port = b.port }, std_vars "abc", "abc")
      assert.equal("Status: 201 Created\r\n\r\nok", data)
      assert.equal("abc", b:last_request().body)
    end)

    it("runs a handler that does not read the body", function()
      local b = helpers.scgi_backend { handler = [[
        function(req, sock)
          send_all(sock, "Status: 403 Forbidden\r\n\r\nno " .. req.env.REQUEST_METHOD)
        end ]] }
      finally(function() b:stop() end)
      local data = scgi_call({ host = "127.0.0.1", port = b.port }, std_vars "abcd", "abcd")
      assert.equal("Status: 403 Forbidden\r\n\r\nno POST", data)
      local rec = b:last_request()
      assert.is_false(rec.body_read)
      assert.is_nil(rec.body)
    end)

    it("runs a handler that echoes the body it reads", function()
      local b = helpers.scgi_backend { handler = [[
        function(req, sock)
          local body = req:read_body()
          send_all(sock, "Content-Length: " .. #body .. "\r\n\r\n" .. body)
        end ]] }
      finally(function() b:stop() end)
      local data = scgi_call({ host = "127.0.0.1", port = b.port }, std_vars "12345", "12345")
      assert.equal("Content-Length: 5\r\n\r\n12345", data)
      assert.equal("12345", b:last_request().body)
    end)

    it("reports handler errors in its log and closes", function()
      local b = helpers.scgi_backend { handler = [[ function(req, sock) error("boom") end ]] }
      finally(function() b:stop() end)
      local data, closed = scgi_call({ host = "127.0.0.1", port = b.port }, std_vars "", "")
      assert.equal("", data)
      assert.is_true(closed)
      assert.matches("boom", b:last_request().handler_error)
      assert.matches("boom", b:log())
    end)

    it("serves connections concurrently and stop() kills sleeping handlers", function()
      local b = helpers.scgi_backend { handler = [[
        function(req, sock)
          if req.env.REQUEST_URI == "/slow" then sleep(30) end
          send_all(sock, "Status: 200 OK\r\n\r\nfast")
        end ]] }
      local slow = assert(http.connect { host = "127.0.0.1", port = b.port })
      slow:send(scgi.encode { { "CONTENT_LENGTH", "0" }, { "SCGI", "1" }, { "REQUEST_URI", "/slow" } })
      assert(b:wait_requests(1, 5))
      local t0 = helpers.now()
      local data = scgi_call({ host = "127.0.0.1", port = b.port }, std_vars "", "")
      assert.equal("Status: 200 OK\r\n\r\nfast", data)
      assert.is_true(helpers.now() - t0 < 2)
      t0 = helpers.now()
      b:stop()
      assert.is_true(helpers.now() - t0 < 5)
      assert.is_true(slow:closed(2))
      slow:close()
      assert.is_false(helpers.can_connect { host = "127.0.0.1", port = b.port })
    end)

    it("listens on a unix socket", function()
      local dir = helpers.temp_dir "unix"
      local path = dir .. "/b.sock"
      local b = helpers.scgi_backend { unix = path }
      finally(function() b:stop() end)
      assert.equal("scgi+unix:" .. path, b.url)
      local data = scgi_call({ unix = path }, std_vars "q", "q")
      assert.matches("SCGI=1\n", data)
      assert.equal("q", b:last_request().body)
    end)
  end)

  describe("http client", function()
    -- Serve canned bytes once from this process (they fit in the socket buffers).
    local function canned(bytes, keep_open)
      local server = assert(socket.bind("127.0.0.1", 0))
      local _, port = server:getsockname()
      local c = assert(http.connect { host = "127.0.0.1", port = tonumber(port) })
      server:settimeout(2)
      local s = assert(server:accept())
      server:close()
      assert(s:send(bytes))
      if not keep_open then s:close() end
      return c, s
    end

    it("parses Content-Length, chunked and close-delimited bodies in sequence", function()
      local c, s = canned(
        "HTTP/1.1 100 Continue\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc" ..
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "3;ext=1\r\nxyz\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n" ..
        "HTTP/1.0 404 Not Found\nServer: x\n\nrest of it", false)
      local r1 = assert(c:read_response())
      assert.equal(100, r1.status)
      local r2 = assert(c:read_response())
      assert.equal(200, r2.status)
      assert.equal("OK", r2.reason)
      assert.equal("abc", r2.body)
      assert.same({ "1", "2" }, r2.headers["x-a"])
      local r3 = assert(c:read_response())
      assert.equal(201, r3.status)
      assert.is_true(r3.chunked)
      assert.equal("xyz!", r3.body)
      assert.equal("t", r3.trailers["x-trailer"])
      local r4 = assert(c:read_response())
      assert.equal("1.0", r4.version)
      assert.equal(404, r4.status)
      assert.is_true(r4.close_delimited)
      assert.equal("rest of it", r4.body)
      assert.is_true(c:closed(1))
      c:close()
      s:close()
    end)

    it("does not read a body for HEAD and times out instead of hanging", function()
      local c, s = canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true)
      local r = assert(c:read_response { head = true })
      assert.equal("10", r.headers["content-length"])
      assert.equal("", r.body)
      local t0 = helpers.now()
      local r2, err = c:read_response { timeout = 0.3 }
      assert.is_nil(r2)
      assert.matches("timeout", err)
      assert.is_true(helpers.now() - t0 < 1)
      assert.is_false(c:closed(0.2))
      c:close()
      s:close()
    end)

    it("reports a truncated body as an error", function()
      local c = canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
      local r, err = c:read_response()
      assert.is_nil(r)
      assert.matches("missing", err)
      c:close()
    end)

    it("builds requests", function()
      assert.equal("GET / HTTP/1.1\r\nHost: h\r\n\r\n", helpers.build_request({}, "h"))
      assert.equal("POST /p HTTP/1.0\r\nHost: x\r\nA: 1\r\nB: 2\r\nB: 3\r\nContent-Length: 2\r\n\r\nhi",
        helpers.build_request({ method = "POST", path = "/p", version = "1.0", host = "x",
                                headers = { B = { 2, 3 }, A = 1 }, body = "hi" }, "h"))
      assert.equal("PUT / HTTP/1.1\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        helpers.build_request({ method = "PUT", host = false, headers = { "X: y" }, body = "ab",
                                chunked = true }, "h"))
      assert.equal("5\r\nabcde\r\n1\r\nf\r\n0\r\n\r\n", helpers.chunked("abcdef", 5))
    end)
  end)

  describe("processes", function()
    it("proc.run returns the exit code and output, bounded by a deadline", function()
      local code, out = helpers.proc.run { "sh", "-c", "echo out; echo err >&2; exit 3" }
      assert.equal(3, code)
      assert.matches("out\n", out)
      assert.matches("err\n", out)
      local t0 = helpers.now()
      local c2 = helpers.proc.run({ "sleep", "10" }, { timeout = 0.3 })
      assert.is_nil(c2)
      assert.is_true(helpers.now() - t0 < 2)
    end)

    it("start_gateway takes source with {PORT}/{DIR}, and injects listen when missing", function()
      if not helpers.proc.exists(helpers.bin) then pending("binary not built") return end
      local b = helpers.scgi_backend()
      finally(function() b:stop() end)
      local gw = helpers.start_gateway(string.format([[
        return { listen = "127.0.0.1:{PORT}", access_log = "{DIR}/access.log",
                 routes = { { path = "/", pass = %q,
                              env = { F = function(req) return "fn" end } } } }]], b.url))
      finally(function() gw:stop() end)
      assert.is_number(gw.port)
      assert.is_true(gw:alive())
      local res = assert(gw:request { path = "/src" })
      assert.equal(200, res.status)
      assert.equal("fn", b:last_request().env.F)
      assert.matches(gw.dir, gw.source, 1, true)

      local gw2 = helpers.start_gateway(string.format(
        [[return { access_log = false, routes = { { path = "/", pass = %q } } }]], b.url))
      finally(function() gw2:stop() end)
      assert.is_not.equal(gw.port, gw2.port)
      assert.equal(200, assert(gw2:request { path = "/injected" }).status)
      local mark = gw2:log_mark()
      assert.is_nil((gw2:wait_log("never printed", 0.2, { from = mark })))
      local how, code = gw2:stop()
      assert.equal("exited", how)
      assert.equal(0, code)
      assert.is_false(gw2:alive())
    end)

    it("start_gateway fails with the log when the gateway exits at startup", function()
      if not helpers.proc.exists(helpers.bin) then pending("binary not built") return end
      local t0 = helpers.now()
      local ok, err = pcall(helpers.start_gateway, { routes = { { path = 1 } } })
      assert.is_false(ok)
      assert.matches("did not start %(gateway exited", err)
      assert.matches("log:\n.*routes%[1%]", err)
      assert.is_true(helpers.now() - t0 < 5)
    end)

    it("start_gateway fails with a clear message when the binary is missing", function()
      local saved = helpers.bin
      helpers.bin = "/nonexistent/scgi-lua"
      local ok, err = pcall(helpers.start_gateway, { routes = {} })
      helpers.bin = saved
      assert.is_false(ok)
      assert.matches("not built", err)
    end)
  end)
end)
