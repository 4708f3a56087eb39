-- scgi-lua(8) THE SCGI REQUEST (request body): Content-Length bodies streamed to the backend,
-- chunked bodies de-chunked with an exact CONTENT_LENGTH (memory and temp-file paths), Expect:
-- 100-continue, limits.body_bytes → 413.

local helpers = require "spec.helpers"

describe("request bodies #integration", function()
  local backend, gw

  lazy_setup(function()
    backend = helpers.scgi_backend()
    gw = helpers.start_gateway {
      access_log = false,
      limits = { body_bytes = 8 * 1024 * 1024 },
      timeouts = { client_body = 5, backend = 10 },
      routes = { { path = "/", pass = backend.url } },
    }
  end)

  lazy_teardown(function()
    gw:stop()
    backend:stop()
  end)

  local function post(t)
    local n0 = backend:count()
    local res = assert(gw:request(t))
    assert.equal(200, res.status, res.body)
    assert.equal(n0 + 1, backend:count())
    return backend:last_request(), res
  end

  it("forwards a Content-Length body exactly", function()
    local body = "a=1&b=" .. ("\0\1\2\r\n"):rep(10)
    local rec = post { method = "POST", path = "/cl", body = body }
    assert.equal(tostring(#body), rec.env.CONTENT_LENGTH)
    assert.equal(body, rec.body)
    assert.is_true(rec.body_complete)
  end)

  it("forwards an empty Content-Length: 0 body", function()
    local rec = post { method = "POST", path = "/empty", body = "" }
    assert.equal("0", rec.env.CONTENT_LENGTH)
    assert.equal("", rec.body)
  end)

  it("streams a 5 MiB body intact", function()
    local body = helpers.blob(5 * 1024 * 1024, 11)
    local rec = post { method = "PUT", path = "/big", body = body }
    assert.equal(tostring(#body), rec.env.CONTENT_LENGTH)
    assert.equal(#body, #rec.body)
    assert.is_true(rec.body == body, "body differs")
  end)

  it("de-chunks a small chunked body and sends its exact length", function()
    local body = "hello, chunked world"
    local rec = post { method = "POST", path = "/chunked", body = body, chunked = true,
                       chunk_size = 3 }
    assert.equal(tostring(#body), rec.env.CONTENT_LENGTH)
    assert.equal(body, rec.body)
  end)

  it("de-chunks a chunked body with chunk extensions", function()
    local raw = "5;name=val\r\nhello\r\n1;x\r\n!\r\n0\r\n\r\n"
    local rec = post { method = "POST", path = "/ext", body = raw,
                       headers = { ["Transfer-Encoding"] = "chunked" } }
    assert.equal("6", rec.env.CONTENT_LENGTH)
    assert.equal("hello!", rec.body)
  end)

  it("de-chunks a 3 MiB chunked body (temp-file path) with its exact length", function()
    local body = helpers.blob(3 * 1024 * 1024 + 17, 12)
    local rec = post { method = "POST", path = "/bigchunked", body = body, chunked = true,
                       chunk_size = 65536 }
    assert.equal(tostring(#body), rec.env.CONTENT_LENGTH)
    assert.equal(#body, #rec.body)
    assert.is_true(rec.body == body, "body differs")
  end)

  it("handles an empty chunked body", function()
    local rec = post { method = "POST", path = "/nochunks", body = "", chunked = true }
    assert.equal("0", rec.env.CONTENT_LENGTH)
    assert.equal("", rec.body)
  end)

  it("answers Expect: 100-continue with 100 Continue, then the final response", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send("POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" ..
                  "Expect: 100-continue\r\n\r\n"))
    local interim = assert(c:read_response { timeout = 2 })
    assert.equal(100, interim.status)
    assert(c:send "12345")
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    local rec = backend:last_request()
    assert.equal("/expect", rec.env.REQUEST_URI)
    assert.equal("12345", rec.body)
  end)

  it("answers Expect: 100-continue on a chunked body with 100 Continue", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send("POST /expect-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" ..
                  "Expect: 100-continue\r\n\r\n"))
    local interim = assert(c:read_response { timeout = 2 })
    assert.equal(100, interim.status)
    assert(c:send(helpers.chunked("chunked after continue", 5)))
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    local rec = backend:last_request()
    assert.equal("/expect-chunked", rec.env.REQUEST_URI)
    assert.equal("22", rec.env.CONTENT_LENGTH)
    assert.equal("chunked after continue", rec.body)
  end)

  it("accepts a body sent right away despite Expect: 100-continue", function()
    local res = assert(gw:request { method = "POST", path = "/expect2", body = "abc",
                                    headers = { Expect = "100-continue" } })
    assert.equal(200, res.status)
    assert.equal("abc", backend:last_request().body)
  end)
end)

describe("request body streaming #integration", function()
  local backend, gw

  lazy_setup(function()
    -- records the first 5 body bytes as soon as they arrive, then reads the rest and echoes it
    backend = helpers.scgi_backend { handler = [[
      function(req, sock)
        local first = req:read_body(5)
        local rest = sock:receive(tonumber(req.env.CONTENT_LENGTH) - 5) or ""
        req.body = first .. rest
        req:save()
        send_all(sock, "Status: 200 OK\r\nContent-Length: " .. #req.body .. "\r\n\r\n" .. req.body)
      end ]] }
    gw = helpers.start_gateway { access_log = false, timeouts = { client_body = 5 },
                                 routes = { { path = "/", pass = backend.url } } }
  end)

  lazy_teardown(function()
    gw:stop()
    backend:stop()
  end)

  it("forwards the first bytes of a Content-Length body before the rest arrives", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello")
    local rec = helpers.poll(function()
      local r = backend:last_request()
      return r and r.body == "hello" and r
    end, 3)
    assert.truthy(rec, "the backend did not get the first body bytes before the rest was sent")
    assert.equal("11", rec.env.CONTENT_LENGTH)
    assert(c:send " world")
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.equal("hello world", res.body)
  end)

  -- The gateway reads 16 KiB at a time; a read that fills it makes the gateway read the
  -- body again before connecting. These pin the cases where that second read finds
  -- nothing yet, or the end of the connection.
  local function full_first_read(total)
    local head = "POST /burst HTTP/1.1\r\nHost: x\r\nContent-Length: " .. total .. "\r\n\r\n"
    local body = helpers.blob(total, 5)
    local first = 16384 - #head
    return head .. body:sub(1, first), body:sub(first + 1), body
  end

  it("forwards a body whose first read filled the buffer and whose rest comes later", function()
    local burst, rest, body = full_first_read(40000)
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send(burst))
    local rec = helpers.poll(function()
      local r = backend:last_request()
      return r and r.env.REQUEST_URI == "/burst" and r.body == body:sub(1, 5) and r
    end, 3)
    assert.truthy(rec, "the backend did not get the first body bytes")
    assert(c:send(rest))
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.is_true(res.body == body, "echoed body differs")
  end)

  it("forwards a 64 KiB body sent in one burst with its head", function()
    local burst, rest, body = full_first_read(65536)
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send(burst .. rest))
    local res = assert(c:read_response())
    assert.equal(200, res.status)
    assert.is_true(res.body == body, "echoed body differs")
  end)

  it("logs a client that closes right after a full first read, and keeps serving", function()
    local burst = full_first_read(40000)
    local mark = gw:log_mark()
    local c = assert(gw:connect())
    assert(c:send(burst))
    c:close()
    assert.truthy(gw:wait_log("client closed the connection before the request body was complete",
                              3, { from = mark }))
    local res = assert(gw:request { path = "/after", method = "POST", body = "hello world" })
    assert.equal(200, res.status)
    assert.equal("hello world", res.body)
  end)
end)

describe("request body limits #integration", function()
  local backend, gw

  lazy_setup(function()
    backend = helpers.scgi_backend()
    gw = helpers.start_gateway {
      access_log = false,
      limits = { body_bytes = 1000 },
      routes = { { path = "/", pass = backend.url } },
    }
  end)

  lazy_teardown(function()
    gw:stop()
    backend:stop()
  end)

  it("accepts a body of exactly limits.body_bytes", function()
    local res = assert(gw:request { method = "POST", path = "/ok", body = ("x"):rep(1000) })
    assert.equal(200, res.status)
    assert.equal(1000, #backend:last_request().body)
  end)

  it("answers 413 to a Content-Length over limits.body_bytes, without calling the backend", function()
    local n0 = backend:count()
    local res = assert(gw:request { method = "POST", path = "/big", body = ("x"):rep(1001) })
    assert.equal(413, res.status)
    assert.equal(n0, backend:count())
  end)

  it("answers 413 to a large Content-Length at once, without 100 Continue", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    assert(c:send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n" ..
                  "Expect: 100-continue\r\n\r\n"))
    local res = assert(c:read_response { timeout = 5 })
    assert.equal(413, res.status)
  end)

  it("answers 413 to a chunked body that grows over limits.body_bytes", function()
    local n0 = backend:count()
    local res = assert(gw:request { method = "POST", path = "/bigchunked",
                                    body = ("y"):rep(3000), chunked = true, chunk_size = 100 })
    assert.equal(413, res.status)
    assert.equal(n0, backend:count())
  end)
end)

-- On its own gateway: a crash here must not take the other body specs down with it.
describe("chunked request trailers #integration", function()
  local backend, gw

  lazy_setup(function()
    backend = helpers.scgi_backend()
    gw = helpers.start_gateway { access_log = false, routes = { { path = "/", pass = backend.url } } }
  end)

  lazy_teardown(function()
    gw:stop()
    backend:stop()
  end)

  it("de-chunks a chunked body with trailer fields (trailers are not forwarded)", function()
    local raw = "5\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
    local res = assert(gw:request { method = "POST", path = "/trailers", body = raw,
                                    headers = { ["Transfer-Encoding"] = "chunked" } })
    assert.equal(200, res.status)
    local rec = backend:last_request()
    assert.equal("6", rec.env.CONTENT_LENGTH)
    assert.equal("hello!", rec.body)
    assert.is_nil(rec.env.HTTP_X_TRAILER)
  end)

  it("keeps running after a request with trailers", function()
    assert.is_true(gw:alive(), "the gateway died")
    assert.equal(200, assert(gw:request { path = "/after" }).status)
  end)
end)
