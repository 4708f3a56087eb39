-- Hardening against hostile backends (scgi-lua(8) ERRORS): endless or garbage response heads, NUL
-- bytes and invalid Status values, malformed Content-Length, a backend that never reads a large
-- request body, one that closes before the Content-Length it promised, one that sends more than it
-- promised. Each ends in a 502/504 or a closed client connection, with a log line naming the
-- backend, and the gateway's memory stays bounded while the backend floods it.

local helpers = require "spec.helpers"
local serialize = require "spec.helpers.serialize"

-- Under AddressSanitizer freed memory sits in a quarantine (up to 256 MB): RSS says nothing.
local RSS_GROWTH_KB = helpers.sanitized and math.huge or 20 * 1024

local function rss_kb(pid)
  local s = helpers.proc.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match "VmRSS:%s*(%d+)") or 0
end

-- Backend records read fresh from disk (the handler updates them after the body was read).
local function records(b)
  local out = {}
  for _, name in ipairs(helpers.proc.list_dir(b.records)) do
    if name:match "^%d+%.req$" then
      local rec = serialize.load_file(b.records .. "/" .. name)
      if rec then out[#out + 1] = rec end
    end
  end
  return out
end

local function find_record(b, query)
  for _, r in ipairs(records(b)) do
    if r.env and r.env.QUERY_STRING == query then return r end
  end
end

-- Static malformed replies, by query string.
local MALFORMED = {
  ["nul-value"] = "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Bad: a\0b\r\n\r\nbody",
  ["nul-name"] = "Status: 200 OK\r\nContent-Type: text/plain\r\nX-B\0ad: a\r\n\r\nbody",
  ["nul-status"] = "Status: 200\0 OK\r\nContent-Type: text/plain\r\n\r\nbody",
  ["status-4digits"] = "Status: 2000 Too Long\r\n\r\nbody",
  ["status-2digits"] = "Status: 20 Short\r\n\r\nbody",
  ["status-suffix"] = "Status: 200abc\r\n\r\nbody",
  ["status-negative"] = "Status: -200 Negative\r\n\r\nbody",
  ["status-empty"] = "Status: \r\n\r\nbody",
  ["status-hex"] = "Status: 0xC8 Hex\r\n\r\nbody",
  ["status-plus"] = "Status: +200 Plus\r\n\r\nbody",
  ["status-split"] = "Status: 2 00 Split\r\n\r\nbody",
  ["status-1000"] = "Status: 1000\r\n\r\nbody",
  ["statusline-4digits"] = "HTTP/1.1 2000 Too Long\r\n\r\nbody",
  ["statusline-99"] = "HTTP/1.1 99 Low\r\n\r\nbody",
  ["statusline-abc"] = "HTTP/1.1 abc Letters\r\n\r\nbody",
  ["cl-conflict"] = "Status: 200 OK\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nbody",
  ["cl-letters"] = "Status: 200 OK\r\nContent-Length: abc\r\n\r\nbody",
  ["cl-negative"] = "Status: 200 OK\r\nContent-Length: -4\r\n\r\nbody",
}

local HOSTILE = string.format([[
function(req, sock)
  local q = req.env.QUERY_STRING
  local REPLIES = loadstring(%q)()
  sock:settimeout(1)
  -- Send head, then piece over and over until `total` bytes, an error, or 20 s; record it all.
  local function flood(head, piece, total)
    local t_end = proc.now() + 20
    if head ~= "" and not send_all(sock, head) then req.send_error = "head" req:save() return end
    local sent, i = 0, 1
    while sent < total and proc.now() < t_end do
      local last, err, partial = sock:send(piece, i)
      if last then
        sent = sent + (#piece - i + 1)
        i = 1
      else
        partial = partial or (i - 1)
        sent = sent + (partial - i + 1)
        i = partial + 1
        if i > #piece then i = 1 end
        if err ~= "timeout" then req.send_error = err break end
      end
    end
    req.sent = sent
    req.flood_done = true
    req:save()
  end
  if q == "endless-headers" then
    flood("Status: 200 OK\r\n", "X-Endless: " .. ("h"):rep(80) .. "\r\n", 1024 * 1024 * 1024)
  elseif q == "garbage" then
    flood("", (blob(65536, 5):gsub("[\r\n]", "x")), 1024 * 1024 * 1024)
  elseif q == "never-reads" then
    sleep(20)
  elseif q == "early-close" then
    -- the length makes the answer provably whole: the close with the upload unread is a reset
    send_all(sock, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nno uploads here")
  elseif q == "early-hold" then
    send_all(sock, "Status: 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\ndenied")
    sleep(20)
  elseif q == "short" then
    req:read_body()
    send_all(sock, "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n" ..
                   "Content-Length: 1048576\r\n\r\n" .. ("s"):rep(100000))
  elseif q == "overlong" then
    req:read_body()
    send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n" ..
                   "helloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
  elseif REPLIES[q] then
    req:read_body()
    send_all(sock, REPLIES[q])
  else
    req:read_body()
    send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" .. env_lines(req))
  end
end ]], serialize.chunk(MALFORMED))

describe("hostile backends #integration", function()
  local gw, hostile, ok_backend

  lazy_setup(function()
    hostile = helpers.scgi_backend { handler = HOSTILE }
    ok_backend = helpers.scgi_backend()
    gw = helpers.start_gateway {
      workers = 1, -- /proc/PID below is the one serving process
      access_log = false,
      log_level = "info",
      timeouts = { client_header = 2, client_body = 5, backend = 2, connect = 2, send = 5,
                   keepalive = 5 },
      routes = {
        { path = "/h/", pass = hostile.url },
        { path = "/ok/", pass = ok_backend.url },
      },
    }
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if hostile then hostile:stop() end
    if ok_backend then ok_backend:stop() end
  end)

  local backend_pat = function() return "127%.0%.0%.1:" .. hostile.port end

  local function assert_logged(mark, what)
    assert.truthy(gw:wait_log(backend_pat(), helpers.slack(3), { from = mark }),
                  "no log line naming the backend for " .. what .. " in:\n" .. gw:log():sub(mark + 1))
  end

  -- Send a request for /h/?query, wait for the head of the answer while sampling the gateway's
  -- RSS. Returns res (or nil, err), seconds taken, peak RSS growth in KiB.
  local function flooded_request(query, timeout)
    local base = rss_kb(gw.pid)
    local peak = base
    local c = assert(gw:connect(nil, { timeout = timeout }))
    finally(function() c:close() end)
    local t0 = helpers.now()
    assert(c:send("GET /h/?" .. query .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
    helpers.poll(function()
      c:fill(helpers.now() + 0.05)
      peak = math.max(peak, rss_kb(gw.pid))
      return c.eof or c.buf:find "\r?\n\r?\n"
    end, timeout, 0)
    local dt = helpers.now() - t0
    local res, err = c:read_response { timeout = 1 }
    return res, err, dt, peak - base
  end

  it("endless backend headers (no blank line ever) → 502 after 16 KiB, memory bounded", function()
    local mark = gw:log_mark()
    local res, err, dt, growth = flooded_request("endless-headers", helpers.slack(10))
    assert.truthy(res, "no response: " .. tostring(err))
    assert.equal(502, res.status)
    assert.is_true(dt < helpers.slack(5), "502 took " .. dt .. " s")
    assert.is_true(growth < RSS_GROWTH_KB, "gateway RSS grew by " .. growth .. " KiB")
    assert_logged(mark, "endless headers")
    -- the gateway hung up on the backend: the flood stopped long before 1 GiB
    local rec = helpers.poll(function()
      local r = find_record(hostile, "endless-headers")
      return r and r.flood_done and r
    end, helpers.slack(10))
    assert.truthy(rec, "the backend was never cut off")
    assert.truthy(rec.send_error, "the backend sent everything it wanted")
    assert.is_true(rec.sent < 64 * 1024 * 1024, "the gateway read " .. tostring(rec.sent) .. " bytes")
  end)

  it("a 1 GB stream of garbage without any line break → 502 quickly, memory bounded", function()
    local mark = gw:log_mark()
    local res, err, dt, growth = flooded_request("garbage", helpers.slack(10))
    assert.truthy(res, "no response: " .. tostring(err))
    assert.equal(502, res.status)
    assert.is_true(dt < helpers.slack(5), "502 took " .. dt .. " s")
    assert.is_true(growth < RSS_GROWTH_KB, "gateway RSS grew by " .. growth .. " KiB")
    assert_logged(mark, "garbage")
    local rec = helpers.poll(function()
      local r = find_record(hostile, "garbage")
      return r and r.flood_done and r
    end, helpers.slack(10))
    assert.truthy(rec, "the backend was never cut off")
    assert.truthy(rec.send_error, "the backend sent everything it wanted")
    assert.is_true(rec.sent < 64 * 1024 * 1024, "the gateway read " .. tostring(rec.sent) .. " bytes")
  end)

  local names = {}
  for name in pairs(MALFORMED) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    it("a malformed response head (" .. name .. ") → 502 with a log line", function()
      local mark = gw:log_mark()
      local res = assert(gw:request { path = "/h/?" .. name, timeout = helpers.slack(5) })
      assert.equal(502, res.status, res.body)
      assert.not_equal("body", res.body, "the backend's body was relayed")
      assert_logged(mark, name)
    end)
  end

  it("a backend that answers without reading an 8 MiB upload and closes → its answer", function()
    local body = ("u"):rep(8 * 1024 * 1024)
    local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
    finally(function() c:close() end)
    local t0 = helpers.now()
    local res, err = c:exchange(helpers.build_request({ method = "POST", path = "/h/?early-close",
                                                        body = body }, "x"), { timeout = helpers.slack(10) })
    assert.truthy(res, "no response: " .. tostring(err))
    assert.equal(403, res.status)
    assert.equal("no uploads here", res.body)
    assert.is_true(helpers.now() - t0 < helpers.slack(8), "took " .. (helpers.now() - t0) .. " s")
  end)

  it("a backend that answers without reading the upload and keeps the connection → no hang", function()
    local body = ("u"):rep(8 * 1024 * 1024)
    local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
    finally(function() c:close() end)
    local t0 = helpers.now()
    local res, err = c:exchange(helpers.build_request({ method = "POST", path = "/h/?early-hold",
                                                        body = body }, "x"), { timeout = helpers.slack(10) })
    assert.truthy(res, "no response: " .. tostring(err))
    assert.truthy(res.status == 403 or res.status == 504, "status " .. res.status)
    if res.status == 403 then assert.equal("denied", res.body) end
    assert.is_true(helpers.now() - t0 < helpers.slack(8), "took " .. (helpers.now() - t0) .. " s")
  end)

  it("a backend that never reads the upload nor answers → 504 per timeouts, logged", function()
    local mark = gw:log_mark()
    local body = ("u"):rep(8 * 1024 * 1024)
    local c = assert(gw:connect(nil, { timeout = helpers.slack(10) }))
    finally(function() c:close() end)
    local t0 = helpers.now()
    local res, err = c:exchange(helpers.build_request({ method = "POST", path = "/h/?never-reads",
                                                        body = body }, "x"), { timeout = helpers.slack(10) })
    assert.truthy(res, "no response: " .. tostring(err))
    assert.equal(504, res.status)
    local dt = helpers.now() - t0
    assert.is_true(dt < helpers.slack(8), "took " .. dt .. " s (timeouts.backend = 2)")
    assert_logged(mark, "a backend that never reads")
  end)

  it("a backend that closes before its promised Content-Length → client connection closed", function()
    local mark = gw:log_mark()
    local c = assert(gw:connect(nil, { timeout = helpers.slack(5) }))
    finally(function() c:close() end)
    assert(c:send "GET /h/?short HTTP/1.1\r\nHost: x\r\n\r\n")
    local res, err = c:read_response { timeout = helpers.slack(5) }
    assert.is_nil(res, "a complete-looking response was relayed")
    assert.matches("closed", err)
    assert_logged(mark, "a short body")
  end)

  it("a backend that sends more than its Content-Length cannot inject a response", function()
    local c = assert(gw:connect(nil, { timeout = helpers.slack(5) }))
    finally(function() c:close() end)
    assert(c:send(helpers.build_request({ path = "/h/?overlong" }, "x") ..
                  helpers.build_request({ path = "/ok/second" }, "x")))
    -- the promised 5 bytes and nothing more (as nginx: the rest is dropped with the backend
    -- connection), then the client's own second request: the extra bytes never become one
    local res, err = c:read_response { timeout = helpers.slack(5) }
    assert.truthy(res, "no first response: " .. tostring(err))
    assert.equal(200, res.status)
    assert.equal("5", res.headers["content-length"])
    assert.equal("hello", res.body)
    local res2, err2 = c:read_response { timeout = helpers.slack(5) }
    assert.truthy(res2, "no second response on the connection: " .. tostring(err2))
    assert.equal(200, res2.status)
    assert.is_nil(res2.body:find("SMUGGLED", 1, true), "the backend's extra bytes became a response")
    assert.matches("REQUEST_URI=/ok/second\n", res2.body, 1, true)
    assert.is_nil(c.buf:find("SMUGGLED", 1, true), "the backend's extra bytes reached the client")
  end)

  it("keeps serving after all of this", function()
    assert.is_true(gw:alive())
    local res = assert(gw:request { path = "/ok/final", timeout = helpers.slack(5) })
    assert.equal(200, res.status)
  end)
end)
