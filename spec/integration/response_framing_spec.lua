-- Response framing: one rule for "this response has no body" (RFC 9110 §6.4.1, RFC 9112 §6.3)
-- on every path (gateway replies, relayed backend heads, X-Sendfile): 1xx, 204 and 304 go out
-- without Content-Length and without body bytes, HEAD keeps its Content-Length. A backend's
-- 1xx is interim: 103 is forwarded to HTTP/1.1 clients, 100 dropped, 101 is a 502, and a
-- flood of them ends in a 502. Control bytes in backend heads and Connection-listed headers
-- never reach the client. A response is terminated as complete only when its end was seen:
-- a backend reset mid-response closes the client connection without the final chunk, while
-- an early answer with a Content-Length still arrives whole. Pipelined requests check that
-- each answer is framed exactly (one stray body byte would become the next "response").

local helpers = require "spec.helpers"

local HANDLER = [[
function(req, sock)
  local q = req.env.QUERY_STRING
  local tag = req.env.HTTP_X_TAG or "one"
  local final = "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #tag ..
                "\r\n\r\n" .. tag
  local hints = "Status: 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
  local function bytewise(s)
    sock:setoption("tcp-nodelay", true)
    for i = 1, #s do if not send_all(sock, s:sub(i, i)) then return end end
  end
  if q == "early-answer" or q == "reset-midway" or q == "early-fin" then
    -- answer without reading the upload
    if q == "early-answer" then
      send_all(sock, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\n" ..
                     "Content-Length: 15\r\n\r\nno uploads here")
    elseif q == "early-fin" then
      -- a clean end: FIN after a length-less answer, then the upload is drained
      send_all(sock, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno uploads here")
      sock:shutdown("send")
      req:read_body()
      return
    else
      -- a length-less answer cut short: the upload is unread, so the close is a reset
      send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial body")
    end
    req.answered = true
    req:save()
    return
  end
  req:read_body()
  if q == "interim" then
    send_all(sock, hints .. final)
  elseif q == "continue-hints" then
    send_all(sock, "Status: 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n" ..
                   final)
  elseif q == "interim-bytewise" then
    bytewise("Status: 100 Continue\n\n" .. hints .. final)
  elseif q == "interim-lengthless" then
    send_all(sock, hints .. "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nno length")
  elseif q == "interim-flood" then
    sock:settimeout(2)
    for _ = 1, 5000 do
      if not send_all(sock, hints) then return end
    end
    send_all(sock, final)
  elseif q == "switching" then
    send_all(sock, "Status: 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
  elseif q == "no-content" then
    send_all(sock, "Status: 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello")
  elseif q == "not-modified" then
    send_all(sock, "Status: 304 Not Modified\r\nContent-Length: 20\r\nETag: \"v1\"\r\n\r\n" ..
                   "01234567890123456789")
  elseif q == "ctl-soh" then
    send_all(sock, "Status: 200 OK\r\nX-Bad: a\1b\r\nContent-Length: 2\r\n\r\nok")
  elseif q == "ctl-esc" then
    send_all(sock, "Status: 200 OK\r\nX-Bad: \27[2J\r\nContent-Length: 2\r\n\r\nok")
  elseif q == "ctl-del" then
    send_all(sock, "Status: 200 OK\r\nX-Bad: a\127b\r\nContent-Length: 2\r\n\r\nok")
  elseif q == "ctl-reason" then
    send_all(sock, "Status: 200 O\127K\r\nContent-Length: 2\r\n\r\nok")
  elseif q == "connection-listed" then
    send_all(sock, "Status: 200 OK\r\nConnection: X-Hop, close\r\nX-Hop: secret\r\n" ..
                   "X-Keep: yes\r\nConnection: X-Later\r\nX-Later: secret\r\nContent-Length: 2\r\n\r\nok")
  elseif q == "sendfile-204" then
    send_all(sock, "Status: 204 No Content\r\nX-Sendfile: " .. req.env.HTTP_X_PATH .. "\r\n\r\n")
  elseif q == "sendfile-interim" then
    send_all(sock, "Status: 103 Early Hints\r\nX-Sendfile: /etc/hostname\r\nLink: </x>\r\n\r\n" ..
                   "Status: 200 OK\r\nX-Sendfile: " .. req.env.HTTP_X_PATH .. "\r\n\r\n")
  else
    send_all(sock, final)
  end
end]]

local CONFIG = [[
return {
  access_log = false,
  log_level = "info",
  timeouts = { backend = 5, send = 10, client_body = 10, keepalive = 30 },
  routes = {
    { path = "/cors/", pass = %q, access = function(req)
        if req.method == "OPTIONS" then return 204, req.headers["x-body"] end
        if req.path == "/cors/304" then return 304, "not modified, but a body" end
        if req.path == "/cors/204" then return 204 end
        if req.path == "/cors/103" then return 103 end
      end },
    { path = "/sf/", pass = %q, sendfile = true },
    { path = "/b/", pass = %q },
  },
}]]

local FILE_BODY = "file contents\n"

describe("response framing #integration", function()
  local gw, backend, file_path

  lazy_setup(function()
    backend = helpers.scgi_backend { handler = HANDLER }
    file_path = helpers.temp_dir "framing" .. "/file.txt"
    helpers.proc.write_file(file_path, FILE_BODY)
    gw = helpers.start_gateway(string.format(CONFIG, backend.url, backend.url, backend.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if backend then backend:stop() end
  end)

  local function get(path, headers)
    local h = { "GET " .. path .. " HTTP/1.1", "Host: x" }
    for _, line in ipairs(headers or {}) do h[#h + 1] = line end
    return table.concat(h, "\r\n") .. "\r\n\r\n"
  end

  -- Sends all `requests` in one write and reads `n` responses (interim ones included) off the
  -- same connection (heads[i]: response i answers a HEAD). Returns the list; fails on any
  -- framing error.
  local function pipelined(requests, n, heads)
    local c = assert(gw:connect(nil, { timeout = 8 }))
    finally(function() c:close() end)
    assert(c:send(table.concat(requests)))
    local out = {}
    for i = 1, n do
      local res, err = c:read_response { timeout = 8, head = heads and heads[i] }
      assert.truthy(res, "response " .. i .. ": " .. tostring(err))
      out[i] = res
    end
    return out, c
  end

  local function backend_lines(mark, needle)
    local port = ":" .. backend.port
    local lines = {}
    for line in (gw:log():sub(mark + 1)):gmatch "[^\n]+" do
      if line:find(port, 1, true) and (not needle or line:find(needle)) then
        lines[#lines + 1] = line
      end
    end
    return lines
  end

  local function assert_backend_logged(mark, needle)
    local ok = helpers.poll(function() return #backend_lines(mark, needle) > 0 end, 3)
    assert.truthy(ok, "no log line naming the backend (" .. tostring(needle) .. ") in:\n" ..
                      gw:log():sub(mark + 1))
  end

  describe("gateway replies", function()
    it("an access hook's 204 (CORS preflight) has no Content-Length and no body", function()
      local r = pipelined({
        "OPTIONS /cors/ HTTP/1.1\r\nHost: x\r\nX-Body: leaked bytes\r\n\r\n",
        get "/b/?plain",
      }, 2)
      assert.equal(204, r[1].status)
      assert.is_nil(r[1].headers["content-length"])
      assert.is_nil(r[1].headers["content-type"])
      assert.equal(200, r[2].status)
      assert.equal("one", r[2].body)
    end)

    it("a 204 or 304 the gateway makes (no hook body) has no Content-Length and no body", function()
      local r = pipelined({ get "/cors/204", get "/cors/304", get "/b/?plain" }, 3)
      assert.equal(204, r[1].status)
      assert.is_nil(r[1].headers["content-length"])
      assert.equal(304, r[2].status)
      assert.is_nil(r[2].headers["content-length"])
      assert.equal(200, r[3].status)
      assert.equal("one", r[3].body)
    end)

    it("an access hook cannot answer with an interim 1xx: 500, logged", function()
      local mark = gw:log_mark()
      local r = pipelined({ get "/cors/103", get "/b/?plain" }, 2)
      assert.equal(500, r[1].status)
      assert.equal(200, r[2].status)
      assert.truthy(gw:wait_log("interim", 3, { from = mark }), gw:log():sub(mark + 1))
    end)

    it("HEAD keeps the Content-Length of a gateway reply, without the body", function()
      local r = pipelined({ "HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", get "/b/?plain" }, 2, { true })
      assert.equal(404, r[1].status)
      assert.truthy(tonumber(r[1].headers["content-length"]) > 0)
      assert.equal(200, r[2].status)
      assert.equal("one", r[2].body)
    end)
  end)

  describe("backend heads", function()
    it("a backend's 204 loses its Content-Length and body bytes", function()
      local r = pipelined({ get "/b/?no-content", get "/b/?plain" }, 2)
      assert.equal(204, r[1].status)
      assert.is_nil(r[1].headers["content-length"])
      assert.equal("1", r[1].headers["x-a"])
      assert.equal(200, r[2].status)
      assert.equal("one", r[2].body)
    end)

    it("a backend's 304 keeps its validators, not its Content-Length or body", function()
      local r = pipelined({ get "/b/?not-modified", get "/b/?plain" }, 2)
      assert.equal(304, r[1].status)
      assert.is_nil(r[1].headers["content-length"])
      assert.equal('"v1"', r[1].headers["etag"])
      assert.equal(200, r[2].status)
      assert.equal("one", r[2].body)
    end)

    it("103 Early Hints reaches an HTTP/1.1 client, then the final response (no hang)", function()
      local res, err = gw:request { path = "/b/?interim", timeout = 5 }
      assert.truthy(res, err)
      assert.equal(200, res.status)
      assert.equal("one", res.body)
      assert.equal(1, #res.interim)
      assert.equal(103, res.interim[1].status)
      assert.equal("</style.css>; rel=preload", res.interim[1].headers["link"])
    end)

    it("103 then a length-less final response is chunked and complete", function()
      local res, err = gw:request { path = "/b/?interim-lengthless", timeout = 5 }
      assert.truthy(res, err)
      assert.equal(200, res.status)
      assert.truthy(res.chunked)
      assert.equal("no length", res.body)
      assert.equal(103, res.interim[1] and res.interim[1].status)
    end)

    it("100 from a backend is dropped, 103 forwarded, byte by byte as well", function()
      local res, err = gw:request { path = "/b/?interim-bytewise", timeout = 5 }
      assert.truthy(res, err)
      assert.equal(200, res.status)
      assert.equal("one", res.body)
      assert.equal(1, #res.interim)
      assert.equal(103, res.interim[1].status)
    end)

    it("pipelined requests whose backends send 1xx heads get their own final answers, in order", function()
      local r = pipelined({
        get("/b/?interim", { "X-Tag: first" }),
        get("/b/?continue-hints", { "X-Tag: second" }),
        get("/b/?plain", { "X-Tag: third" }),
      }, 5)
      local seen = {}
      for i, res in ipairs(r) do seen[i] = res.status .. " " .. res.body end
      assert.same({ "103 ", "200 first", "103 ", "200 second", "200 third" }, seen)
    end)

    it("an HTTP/1.0 client gets no 1xx at all", function()
      local c = assert(gw:connect(nil, { timeout = 5 }))
      finally(function() c:close() end)
      assert(c:send "GET /b/?interim HTTP/1.0\r\nHost: x\r\n\r\n")
      local raw, closed = c:read_all(5)
      assert.is_true(closed)
      assert.matches("^HTTP/1%.1 200 ", raw)
      assert.is_nil(raw:find("103", 1, true))
      assert.matches("\r\n\r\none$", raw)
    end)

    it("101 from an SCGI backend is a 502, logged", function()
      local mark = gw:log_mark()
      local res, err = gw:request { path = "/b/?switching", timeout = 5 }
      assert.truthy(res, err)
      assert.equal(502, res.status)
      assert.equal(0, #res.interim)
      assert_backend_logged(mark, "101")
    end)

    it("a backend that sends 1xx heads without end gets a 502 after a few, logged", function()
      local mark = gw:log_mark()
      local res, err = gw:request { path = "/b/?interim-flood", timeout = 8 }
      assert.truthy(res, err)
      assert.equal(502, res.status)
      assert.truthy(#res.interim <= 8, #res.interim .. " interim responses relayed")
      assert_backend_logged(mark, "interim")
    end)

    for _, q in ipairs { "ctl-soh", "ctl-esc", "ctl-del", "ctl-reason" } do
      it("control bytes in a backend head (" .. q .. ") → 502, logged naming the backend", function()
        local mark = gw:log_mark()
        local c = assert(gw:connect(nil, { timeout = 5 }))
        finally(function() c:close() end)
        assert(c:send(get("/b/?" .. q)))
        local res, err = c:read_response { timeout = 5 }
        assert.truthy(res, err)
        assert.equal(502, res.status)
        assert.is_nil(res.raw:find("[\1\27\127]"))
        assert_backend_logged(mark, "control")
      end)
    end

    it("headers a backend's Connection lists are dropped with Connection itself", function()
      local r = pipelined({ get "/b/?connection-listed", get "/b/?plain" }, 2)
      local h = r[1].headers
      assert.equal(200, r[1].status)
      assert.equal("yes", h["x-keep"])
      assert.is_nil(h["x-hop"])
      assert.is_nil(h["x-later"])
      assert.is_nil(h["connection"]) -- the backend's close is not the client connection's
      assert.equal("ok", r[1].body)
      assert.equal("one", r[2].body)
    end)
  end)

  describe("X-Sendfile", function()
    it("with a backend 204 sends no file, no Content-Length", function()
      local r = pipelined({ get("/sf/?sendfile-204", { "X-Path: " .. file_path }), get "/b/?plain" }, 2)
      assert.equal(204, r[1].status)
      assert.is_nil(r[1].headers["content-length"])
      assert.equal(200, r[2].status)
      assert.equal("one", r[2].body)
    end)

    it("after a 103 serves the final head's file; the 103 carries no X-Sendfile", function()
      local r = pipelined({ get("/sf/?sendfile-interim", { "X-Path: " .. file_path }), get "/b/?plain" }, 3)
      assert.equal(103, r[1].status)
      assert.is_nil(r[1].headers["x-sendfile"])
      assert.equal("</x>", r[1].headers["link"])
      assert.equal(200, r[2].status)
      assert.equal(FILE_BODY, r[2].body)
      assert.equal("one", r[3].body)
    end)
  end)

  describe("responses cut short", function()
    local UPLOAD = ("u"):rep(8 * 1024 * 1024)

    local function upload(query)
      local c = assert(gw:connect(nil, { timeout = 10 }))
      finally(function() c:close() end)
      local req = helpers.build_request({ method = "POST", path = "/b/?" .. query, body = UPLOAD }, "x")
      local res, err = c:exchange(req, { timeout = 10 })
      return res, err, c
    end

    it("a backend reset mid-response while the client uploads: closed, no final chunk, logged once", function()
      local mark = gw:log_mark()
      local res, err, c = upload "reset-midway"
      assert.is_nil(res, "a cut response was relayed as complete: " .. tostring(res and res.body))
      assert.matches("closed", err)
      assert.is_true(c:closed(5))
      assert.is_nil((c.buf or ""):find("0\r\n\r\n", 1, true))
      assert_backend_logged(mark, "mid%-response")
      assert.equal(1, #backend_lines(mark, "mid%-response"))
    end)

    it("an early answer with a Content-Length, then a reset, arrives whole", function()
      local t0 = helpers.now()
      local res, err = upload "early-answer"
      assert.truthy(res, err)
      assert.equal(403, res.status)
      assert.equal("no uploads here", res.body)
      assert.is_true(helpers.now() - t0 < helpers.slack(8), "took " .. (helpers.now() - t0) .. " s")
    end)

    it("an early length-less answer ended by a clean FIN arrives whole", function()
      local res, err = upload "early-fin"
      assert.truthy(res, err)
      assert.equal(403, res.status)
      assert.truthy(res.chunked)
      assert.equal("no uploads here", res.body)
    end)
  end)
end)
