-- README "What the client receives" (client side): HTTP/1.1 keep-alive and its idle timeout,
-- pipelining in order, HTTP/1.0 with and without keep-alive, Connection: close.

local helpers = require "spec.helpers"

describe("client connections #integration", function()
  local backend, cl_backend, slow_backend, gw

  lazy_setup(function()
    backend = helpers.scgi_backend()
    cl_backend = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        local body = req.env.REQUEST_URI .. " " .. req.env.REMOTE_PORT
        send_all(sock, "Status: 200 OK\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
      end ]] }
    -- answers slower for lower numbers, to show pipelined responses stay in request order
    slow_backend = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        local n = tonumber(req.env.QUERY_STRING) or 0
        sleep((4 - n) * 0.1)
        send_all(sock, "Status: 200 OK\r\n\r\nanswer " .. n)
      end ]] }
    gw = helpers.start_gateway {
      access_log = false,
      timeouts = { keepalive = 1, client_header = 2 },
      routes = {
        { path = "/cl/", pass = cl_backend.url },
        { path = "/slow/", pass = slow_backend.url },
        { path = "/", pass = backend.url },
      },
    }
  end)

  lazy_teardown(function()
    gw:stop()
    backend:stop()
    cl_backend:stop()
    slow_backend:stop()
  end)

  it("serves several requests on one keep-alive connection", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local _, lport = c:local_address()
    for i = 1, 3 do
      local res = assert(c:request { path = "/ka/" .. i })
      assert.equal(200, res.status)
      local env = helpers.parse_env_lines(res.body)
      assert.equal("/ka/" .. i, env.REQUEST_URI)
      assert.equal(tostring(lport), env.REMOTE_PORT)
    end
    for i = 1, 2 do
      local res = assert(c:request { method = "POST", path = "/cl/" .. i, body = "b" .. i })
      assert.equal("/cl/" .. i .. " " .. lport, res.body)
    end
    assert.is_false(c:closed(0.2))
  end)

  it("answers pipelined requests in order", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local reqs = {}
    for i = 1, 3 do reqs[i] = helpers.build_request({ path = "/slow/?" .. i }, "x") end
    reqs[4] = helpers.build_request({ method = "POST", path = "/cl/p4", body = "four" }, "x")
    assert(c:send(table.concat(reqs)))
    for i = 1, 3 do
      local res = assert(c:read_response())
      assert.equal(200, res.status)
      assert.equal("answer " .. i, res.body)
    end
    local res = assert(c:read_response())
    assert.matches("^/cl/p4 ", res.body)
  end)

  it("answers pipelined requests split at odd places", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local all = helpers.build_request({ path = "/cl/a" }, "x") ..
                helpers.build_request({ method = "POST", path = "/cl/b", body = "xyz" }, "x") ..
                helpers.build_request({ path = "/cl/c" }, "x")
    local cut1, cut2 = 10, #all - 7
    assert(c:send(all:sub(1, cut1)))
    assert(c:send(all:sub(cut1 + 1, cut2)))
    assert(c:send(all:sub(cut2 + 1)))
    for _, p in ipairs { "/cl/a", "/cl/b", "/cl/c" } do
      local res = assert(c:read_response())
      assert.equal(p, res.body:match "^(%S+)")
    end
  end)

  it("closes an HTTP/1.0 connection without keep-alive after the response", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local res = assert(c:request { path = "/cl/old", version = "1.0" })
    assert.equal(200, res.status)
    assert.is_true(c:closed(2))
  end)

  it("keeps an HTTP/1.0 connection with Connection: keep-alive open", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local res = assert(c:request { path = "/cl/a", version = "1.0",
                                   headers = { Connection = "keep-alive" } })
    assert.equal(200, res.status)
    assert.matches("keep%-alive", (res.headers.connection or ""):lower())
    assert.is_false(c:closed(0.3))
    res = assert(c:request { path = "/cl/b", version = "1.0", headers = { Connection = "keep-alive" } })
    assert.equal(200, res.status)
    assert.matches("^/cl/b ", res.body)
  end)

  it("closes an HTTP/1.0 keep-alive connection when the body must be close-delimited", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local res = assert(c:request { path = "/echo", version = "1.0",
                                   headers = { Connection = "keep-alive" } })
    assert.equal(200, res.status)
    assert.is_true(res.close_delimited)
    assert.matches("REQUEST_URI=/echo\n", res.body)
  end)

  it("honours Connection: close from an HTTP/1.1 client", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local res = assert(c:request { path = "/cl/bye", headers = { Connection = "close" } })
    assert.equal(200, res.status)
    assert.equal("close", (res.headers.connection or ""):lower())
    assert.is_true(c:closed(2))
  end)

  it("honours Connection: close on the last of pipelined requests", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send(helpers.build_request({ path = "/cl/1" }, "x") ..
                  helpers.build_request({ path = "/cl/2", headers = { Connection = "close" } }, "x")))
    assert.matches("^/cl/1 ", assert(c:read_response()).body)
    assert.matches("^/cl/2 ", assert(c:read_response()).body)
    assert.is_true(c:closed(2))
  end)

  it("closes an idle keep-alive connection after timeouts.keepalive", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local res = assert(c:request { path = "/cl/idle" })
    assert.equal(200, res.status)
    local t0 = helpers.now()
    assert.is_false(c:closed(0.5))
    assert.is_true(c:closed(helpers.slack(3)))
    local dt = helpers.now() - t0
    assert.is_true(dt >= 0.7 and dt < helpers.slack(3), "closed after " .. dt .. " s")
    assert.equal("", c.buf, "no bytes expected before close")
  end)

  it("closes a connection that never sends a request", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert.is_true(c:closed(4))
  end)

  it("keeps serving many sequential connections", function()
    for i = 1, 50 do
      local res = assert(gw:request { path = "/cl/n" .. i })
      assert.equal(200, res.status)
    end
  end)
end)
