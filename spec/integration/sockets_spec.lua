-- scgi-lua(8) "Routes": backends over unix sockets (scgi+unix:/path and Apache's
-- unix:/path|scgi://localhost/), listening on IPv6 [::1]:PORT, on unix:/path, and on several
-- addresses at once.

local helpers = require "spec.helpers"
local socket = require "socket"

local function have_ipv6()
  local s = socket.tcp6()
  if not s then return false end
  local ok = s:bind("::1", 0)
  s:close()
  return ok ~= nil
end

describe("unix-socket backends #integration", function()
  local dir, plain, apache, gw

  lazy_setup(function()
    dir = helpers.temp_dir "sock"
    plain = helpers.scgi_backend { unix = dir .. "/plain.sock" }
    apache = helpers.scgi_backend { unix = dir .. "/apache.sock" }
    gw = helpers.start_gateway {
      access_log = false,
      routes = {
        { path = "/plain/", pass = "scgi+unix:" .. dir .. "/plain.sock" },
        { path = "/apache/", pass = "unix:" .. dir .. "/apache.sock|scgi://localhost/",
          env = { ["proxy-scgi-pathinfo"] = "1" } },
        { path = "/missing/", pass = "scgi+unix:" .. dir .. "/nobody-here.sock" },
      },
    }
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if plain then plain:stop() end
    if apache then apache:stop() end
  end)

  it("forwards to scgi+unix:/path", function()
    local res = assert(gw:request { method = "POST", path = "/plain/x?q=1", body = "over unix" })
    assert.equal(200, res.status)
    local rec = plain:last_request()
    assert.equal("/plain/x?q=1", rec.env.REQUEST_URI)
    assert.equal("over unix", rec.body)
    assert.equal("127.0.0.1", rec.env.REMOTE_ADDR)
  end)

  it("forwards to unix:/path|scgi://localhost/", function()
    local res = assert(gw:request { path = "/apache/foo/bar" })
    assert.equal(200, res.status)
    local env = apache:last_request().env
    assert.equal("/apache", env.SCRIPT_NAME)
    assert.equal("/foo/bar", env.PATH_INFO)
  end)

  it("answers 503 when nothing listens on the socket path", function()
    local mark = gw:log_mark()
    local res = assert(gw:request { path = "/missing/x" })
    assert.equal(503, res.status)
    assert.truthy(gw:wait_log("nobody%-here%.sock", 3, { from = mark }), gw:log():sub(mark + 1))
  end)
end)

describe("listen addresses #integration", function()
  local backend

  lazy_setup(function() backend = helpers.scgi_backend() end)
  lazy_teardown(function() backend:stop() end)

  it("listens on [::1]:PORT", function()
    if not have_ipv6() then
      pending("no IPv6 loopback on this machine")
      return
    end
    local port = helpers.free_port()
    local gw = helpers.start_gateway {
      listen = "[::1]:" .. port, access_log = false,
      routes = { { path = "/", pass = backend.url } },
    }
    finally(function() gw:stop() end)
    assert.equal("::1", gw.host)
    local res = assert(gw:request { path = "/six" })
    assert.equal(200, res.status)
    local env = backend:last_request().env
    assert.equal("::1", env.SERVER_ADDR)
    assert.equal("::1", env.REMOTE_ADDR)
    assert.equal(tostring(port), env.SERVER_PORT)
  end)

  it("listens on unix:/path (HTTP over a unix socket)", function()
    local dir = helpers.temp_dir "listen"
    local gw = helpers.start_gateway {
      listen = "unix:" .. dir .. "/gw.sock", access_log = false,
      routes = { { path = "/", pass = backend.url } },
    }
    finally(function() gw:stop() end)
    local res = assert(gw:request { path = "/over/unix?x=1", host = "unix.example" })
    assert.equal(200, res.status)
    local env = backend:last_request().env
    assert.equal("/over/unix?x=1", env.REQUEST_URI)
    assert.equal("unix.example", env.SERVER_NAME)
    -- keep-alive works on unix sockets too
    local c = assert(gw:connect())
    finally(function() c:close() end)
    for i = 1, 2 do assert.equal(200, assert(c:request { path = "/u" .. i }).status) end
  end)

  it("listens on several addresses at once", function()
    local dir = helpers.temp_dir "multi"
    local p1, p2 = helpers.free_port(), helpers.free_port()
    local gw = helpers.start_gateway {
      listen = { "127.0.0.1:" .. p1, "127.0.0.1:" .. p2, "unix:" .. dir .. "/gw.sock" },
      access_log = false,
      routes = { { path = "/", pass = backend.url } },
    }
    finally(function() gw:stop() end)
    local res = assert(gw:request { path = "/one", addr = { host = "127.0.0.1", port = p1 } })
    assert.equal(200, res.status)
    assert.equal(tostring(p1), backend:last_request().env.SERVER_PORT)
    res = assert(gw:request { path = "/two", addr = { host = "127.0.0.1", port = p2 } })
    assert.equal(200, res.status)
    assert.equal(tostring(p2), backend:last_request().env.SERVER_PORT)
    res = assert(gw:request { path = "/three", addr = { unix = dir .. "/gw.sock" } })
    assert.equal(200, res.status)
    assert.equal("/three", backend:last_request().env.REQUEST_URI)
  end)
end)
