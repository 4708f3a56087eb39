-- README "What the client receives": CGI-style heads with \n or \r\n, Status and HTTP/1.x status
-- lines, Location → 302, header filtering, chunked vs close-delimited framing, HEAD, large bodies,
-- and an early answer while the client is still uploading.

local helpers = require "spec.helpers"

describe("relaying the backend response #integration", function()
  local gw, static_pipes
  local backends = {}
  local BIG = 10 * 1024 * 1024

  local REPLIES = {
    lf = "Status: 200 OK\nContent-Type: text/plain\nX-A: 1\n\nlf body",
    crlf = "Status: 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\ncrlf body",
    created = "Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nmade",
    statusline = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
    statusline10 = "HTTP/1.0 202 Accepted\r\nX-B: 2\r\n\r\nlater",
    nostatus = "Content-Type: text/html\r\n\r\n<p>hi</p>",
    location = "Location: http://example.com/elsewhere\r\n\r\n",
    location303 = "Status: 303 See Other\r\nLocation: /x\r\n\r\n",
    relative = "Location: /x\r\nContent-Type: text/plain\r\n\r\nrel",
    cl = "Status: 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    hop = "Status: 200 OK\r\nKeep-Alive: timeout=99\r\nUpgrade: foo/1\r\n" ..
          "Proxy-Connection: keep-alive\r\nX-Kept: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhop",
    nobody204 = "Status: 204 No Content\r\n\r\n",
    reason = "Status: 299 Custom Reason Here\r\n\r\nr",
  }

  lazy_setup(function()
    for name, reply in pairs(REPLIES) do backends[name] = helpers.scgi_backend { reply = reply } end
    backends.echo = helpers.scgi_backend()
    backends.big = helpers.scgi_backend { handler = string.format([[
      function(req, sock)
        req:read_body()
        local data = blob(%d, 21)
        local head = "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
        if req.env.QUERY_STRING == "cl" then head = head .. "Content-Length: " .. #data .. "\r\n" end
        send_all(sock, head .. "\r\n")
        for i = 1, #data, 65536 do
          if not send_all(sock, data:sub(i, i + 65535)) then return end
        end
      end ]], BIG) }
    backends.mid = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        local data = blob(100000, 7)
        send_all(sock, "Status: 200 OK\r\nContent-Length: " .. #data .. "\r\n\r\n" .. data)
      end ]] }
    backends.early = helpers.scgi_backend { handler = [[
      function(req, sock)
        -- the length makes the answer provably whole: the close with the upload unread is a
        -- reset (a length-less one would end the client connection without its final chunk)
        send_all(sock, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\ncsrf rejected")
      end ]] }
    backends.early_drain = helpers.scgi_backend { handler = [[
      function(req, sock)
        send_all(sock, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nrejected, drained")
        sock:shutdown("send")
        req:read_body()
      end ]] }
    backends.stream = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part\n")
        sleep(1.5)
        send_all(sock, "second part\n")
      end ]] }
    backends.trickle = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i = 1, 5 do send_all(sock, "part" .. i .. "\n") sleep(0.05) end
      end ]] }

    local routes = {}
    for name, b in pairs(backends) do
      local route = { path = "/" .. name .. "/", pass = b.url }
      if name == "relative" then route.internal_redirect = false end
      routes[#routes + 1] = route
    end
    gw = helpers.start_gateway {
      access_log = false,
      timeouts = { backend = 10, send = 10 },
      routes = routes,
    }
    -- before any request no splice pipe exists: pipes open now are not the gateway's own
    static_pipes = helpers.proc.pipes(gw.pid)
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    for _, b in pairs(backends) do b:stop() end
  end)

  local function nfds() return #helpers.proc.list_dir("/proc/" .. gw.pid .. "/fd") end

  -- Splice pipes the gateway has open now (pooled or in use), as a list of inodes.
  local function splice_pipes()
    local l = {}
    for ino in pairs(helpers.proc.pipes(gw.pid)) do
      if not static_pipes[ino] then l[#l + 1] = ino end
    end
    return l
  end

  -- The gateway's descriptor count once it is quiet: no splice pipe left (the pool is closed
  -- after a quiet second) and the same count twice in a row (a connection the client just
  -- closed is gone). nil after the deadline.
  local function settled_fds()
    local last
    return helpers.poll(function()
      local n = nfds()
      local ok = #splice_pipes() == 0 and n == last
      last = n
      if ok then return n end
    end, helpers.slack(10), 0.2)
  end

  local function get(path, t)
    t = t or {}
    t.path = path
    return assert(gw:request(t))
  end

  describe("the head", function()
    it("accepts \\n line endings", function()
      local res = get "/lf/"
      assert.equal(200, res.status)
      assert.equal("1", res.headers["x-a"])
      assert.equal("text/plain", res.headers["content-type"])
      assert.equal("lf body", res.body)
    end)

    it("accepts \\r\\n line endings", function()
      local res = get "/crlf/"
      assert.equal(200, res.status)
      assert.equal("1", res.headers["x-a"])
      assert.equal("crlf body", res.body)
    end)

    it("takes the status from Status: 201 Created", function()
      local res = get "/created/"
      assert.equal(201, res.status)
      assert.equal("Created", res.reason)
      assert.equal("made", res.body)
    end)

    it("keeps a custom reason phrase", function()
      local res = get "/reason/"
      assert.equal(299, res.status)
      assert.equal("Custom Reason Here", res.reason)
    end)

    it("accepts an HTTP/1.x status line", function()
      local res = get "/statusline/"
      assert.equal(404, res.status)
      assert.equal("Not Found", res.reason)
      assert.equal("nope", res.body)
      res = get "/statusline10/"
      assert.equal(202, res.status)
      assert.equal("2", res.headers["x-b"])
      assert.equal("1.1", res.version)
    end)

    it("defaults to 200 without Status", function()
      local res = get "/nostatus/"
      assert.equal(200, res.status)
      assert.equal("text/html", res.headers["content-type"])
      assert.equal("<p>hi</p>", res.body)
    end)

    it("turns an absolute Location without Status into 302", function()
      local res = get "/location/"
      assert.equal(302, res.status)
      assert.equal("http://example.com/elsewhere", res.headers.location)
    end)

    it("keeps an explicit Status with a relative Location", function()
      local res = get "/location303/"
      assert.equal(303, res.status)
      assert.equal("/x", res.headers.location)
    end)

    it("passes a relative Location through when internal_redirect = false", function()
      local res = get "/relative/"
      assert.equal(200, res.status)
      assert.equal("/x", res.headers.location)
      assert.equal("rel", res.body)
    end)

    it("does not pass Status or hop-by-hop headers; passes the others (repeated ones too)", function()
      local res = get "/hop/"
      assert.equal(200, res.status)
      assert.is_nil(res.headers.status)
      assert.is_nil(res.headers.upgrade)
      assert.is_nil(res.headers["proxy-connection"])
      assert.is_not.equal("timeout=99", res.headers["keep-alive"])
      assert.equal("yes", res.headers["x-kept"])
      assert.same({ "a=1", "b=2" }, res.headers["set-cookie"])
      for _, kv in ipairs(res.header_list) do assert.is_not.equal("status", kv[1]:lower()) end
    end)

    it("sends no body for 204", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = assert(c:request { path = "/nobody204/" })
      assert.equal(204, res.status)
      assert.equal("", res.body)
      assert.is_nil(res.headers["transfer-encoding"])
      -- the connection is still in sync
      res = assert(c:request { path = "/cl/" })
      assert.equal("hello", res.body)
    end)
  end)

  describe("framing", function()
    it("passes the backend's Content-Length", function()
      local res = get "/cl/"
      assert.equal("5", res.headers["content-length"])
      assert.is_nil(res.chunked)
      assert.equal("hello", res.body)
    end)

    it("uses chunked encoding for HTTP/1.1 clients without a backend Content-Length", function()
      local res = get("/echo/x?y")
      assert.equal(200, res.status)
      assert.is_true(res.chunked)
      assert.is_nil(res.headers["content-length"])
      assert.matches("REQUEST_URI=/echo/x%?y\n", res.body)
    end)

    it("relays the body as it arrives (chunked)", function()
      local res = get "/trickle/"
      assert.is_true(res.chunked)
      assert.equal("part1\npart2\npart3\npart4\npart5\n", res.body)
    end)

    it("streams the body: the first part reaches the client before the backend finishes", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      assert(c:send "GET /stream/ HTTP/1.1\r\nHost: x\r\n\r\n")
      local seen = helpers.poll(function()
        c:fill(helpers.now() + 0.05)
        return c.buf:find("first part\n", 1, true)
      end, helpers.slack(5))
      assert.truthy(seen, "no first part")
      -- ordering, not a clock: the backend sends the second part 1.5 s after the first
      assert.is_nil(c.buf:find("second part", 1, true),
                    "the first part came only with the second: the body was not streamed")
      local res = assert(c:read_response { timeout = helpers.slack(5) })
      assert.equal("first part\nsecond part\n", res.body)
    end)

    it("delimits the body by close for HTTP/1.0 clients", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = assert(c:request { path = "/echo/x", version = "1.0" })
      assert.equal(200, res.status)
      assert.is_nil(res.headers["transfer-encoding"])
      assert.is_true(res.close_delimited)
      assert.matches("SERVER_PROTOCOL=HTTP/1.0\n", res.body)
      assert.is_true(c:closed(2))
    end)

    it("sends no body for HEAD (Content-Length and chunked responses)", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = assert(c:request { method = "HEAD", path = "/cl/" })
      assert.equal(200, res.status)
      assert.equal("", res.body)
      res = assert(c:request { method = "HEAD", path = "/echo/" })
      assert.equal(200, res.status)
      assert.equal("", res.body)
      assert.equal("HEAD", backends.echo:last_request().env.REQUEST_METHOD)
      -- no stray body bytes: the next response on the connection parses
      res = assert(c:request { path = "/cl/" })
      assert.equal(200, res.status)
      assert.equal("hello", res.body)
    end)

    it("relays a 10 MiB chunked response intact", function()
      local res = get("/big/", { timeout = helpers.slack(10) })
      assert.equal(200, res.status)
      assert.is_true(res.chunked)
      assert.equal(BIG, #res.body)
      assert.is_true(res.body == helpers.blob(BIG, 21), "body differs")
    end)

    it("relays a 10 MiB Content-Length response intact", function()
      local res = get("/big/?cl", { timeout = helpers.slack(10) })
      assert.equal(200, res.status)
      assert.equal(tostring(BIG), res.headers["content-length"])
      assert.is_true(res.body == helpers.blob(BIG, 21), "body differs")
    end)

    -- Content-Length bodies from 32 KiB on go backend → pipe → client with splice(2)
    it("keeps the connection for the next request after a large Content-Length response", function()
      local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
      finally(function() c:close() end)
      for _ = 1, 2 do
        local res = assert(c:request { path = "/big/?cl" })
        assert.equal(200, res.status)
        assert.is_true(res.body == helpers.blob(BIG, 21), "body differs")
        res = assert(c:request { method = "HEAD", path = "/big/?cl" })
        assert.equal(tostring(BIG), res.headers["content-length"])
        assert.equal("", res.body)
        res = assert(c:request { path = "/cl/" })
        assert.equal("hello", res.body)
      end
    end)

    it("a client gone in the middle of a large response leaves no descriptor behind", function()
      assert.equal(200, get("/cl/").status)
      local fds0 = assert(settled_fds(), "the gateway's descriptors never settled")
      for _ = 1, 5 do
        local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
        assert(c:send "GET /big/?cl HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.truthy(helpers.poll(function()
          c:fill(helpers.now() + 0.05)
          return #c.buf > 300000
        end, helpers.slack(5)), "no body bytes arrived")
        c:close()
      end
      -- the pipes of the cut responses stay pooled until a quiet second has passed
      local settled = helpers.poll(function() return nfds() <= fds0 end, helpers.slack(10))
      assert.truthy(settled, "descriptors left open: " .. nfds() .. ", " .. fds0 .. " before")
      assert.equal("hello", get("/cl/").body)
    end)

    it("reuses one splice pipe across sequential responses and closes it once idle", function()
      -- Counted by pipe inode, not by descriptor totals: the backend socket is closed only
      -- after the client got its last byte, so a count taken then races the gateway.
      assert.truthy(helpers.poll(function() return #splice_pipes() == 0 end, helpers.slack(10)),
                    "a pipe pooled by an earlier test was never closed")
      local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
      finally(function() c:close() end)
      local body = helpers.blob(100000, 7)
      local seen, nseen, pauses, last = {}, 0, 0, helpers.now()
      for i = 1, 30 do
        local res = assert(c:request { path = "/mid/" })
        assert.is_true(res.body == body, "body differs")
        -- only a second without any request lets the gateway close its pool in between
        if helpers.now() - last > 0.5 then pauses = pauses + 1 end
        last = helpers.now()
        local open = splice_pipes()
        -- one connection, one response at a time: never a second pipe
        assert.is_true(#open <= 1, #open .. " splice pipes open after response " .. i)
        for _, ino in ipairs(open) do
          if not seen[ino] then seen[ino], nseen = true, nseen + 1 end
        end
      end
      assert.is_true(nseen >= 1, "no splice pipe seen: the 100 kB responses were copied")
      assert.is_true(nseen <= 1 + pauses, nseen .. " different pipes for 30 responses (" ..
                     pauses .. " pauses): pipes are not reused")
      assert.truthy(helpers.poll(function() return #splice_pipes() == 0 end, helpers.slack(10)),
                    "the pooled pipe was not closed after a quiet second")
      assert.equal(100000, #assert(c:request { path = "/mid/" }).body)
    end)

    it("relays a 10 MiB response to a slow reader (backpressure) intact", function()
      local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
      finally(function() c:close() end)
      assert(c:send "GET /big/?cl HTTP/1.1\r\nHost: x\r\n\r\n")
      helpers.proc.sleep(0.5) -- let the gateway hit the full socket buffers
      local res = assert(c:read_response())
      assert.equal(BIG, #res.body)
      assert.is_true(res.body == helpers.blob(BIG, 21), "body differs")
    end)
  end)

  describe("an early answer from the backend", function()
    it("reaches the client completely while it uploads 10 MiB (backend closes)", function()
      local body = helpers.blob(BIG, 5)
      local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
      finally(function() c:close() end)
      local res, err = c:exchange("POST /early/ HTTP/1.1\r\nHost: x\r\nContent-Length: " ..
                                        #body .. "\r\n\r\n" .. body)
      assert.truthy(res, err)
      assert.equal(403, res.status)
      assert.equal("csrf rejected", res.body)
    end)

    it("reaches the client completely while it uploads 10 MiB (backend drains)", function()
      local body = helpers.blob(BIG, 6)
      local res = assert(gw:request { method = "POST", path = "/early_drain/", body = body })
      assert.equal(403, res.status)
      assert.equal("rejected, drained", res.body)
    end)

    it("leaves the gateway serving", function()
      assert.equal("hello", get("/cl/").body)
    end)
  end)
end)
