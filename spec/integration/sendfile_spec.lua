-- README "X-Sendfile and internal redirects" and scgi-lua(8) "Routes" (route `sendfile`,
-- `sendfile_root`): the backend names a file in a response header and the gateway serves it itself.
-- Header on/off/custom name and stripping, backend body discarded, validators (ETag/Last-Modified)
-- and conditional requests, Range (206/416, If-Range), HEAD, keep-alive, errors (404/403/502 with
-- log lines), sendfile_root confinement against `..` and symlink escapes, a 100 MiB file byte for
-- byte, 20 concurrent downloads and a stalled reader that must not block the event loop.

local helpers = require "spec.helpers"
local socket = require "socket"
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"
local utime = require "posix.utime"

local MiB = 1024 * 1024
local SMALL = "0123456789abcdefghij" -- 20 bytes: easy to read ranges off
local MTIME = 1700000000 -- Tue, 14 Nov 2023 22:13:20 GMT
local BACKEND_BODY = "backend body that must be discarded\n"

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

-- The fake application: answers with the header named by X-Sf-Header (default X-Sendfile)
-- set to X-Sf-Path, the status in X-Sf-Status, extra header lines in X-Sf-Extra ("|"
-- separated) and a short body with its own Content-Length. With X-Sf-Body: endless it streams
-- a body until the gateway closes the connection (recorded as req.send_error / req.sent).
local HANDLER = [[
function(req, sock)
  local e = req.env
  local name = e.HTTP_X_SF_HEADER or "X-Sendfile"
  local head = "Status: " .. (e.HTTP_X_SF_STATUS or "200 OK") .. "\r\n" ..
               "Content-Type: text/x-from-backend\r\nX-Backend: app\r\n"
  if e.HTTP_X_SF_PATH then head = head .. name .. ": " .. e.HTTP_X_SF_PATH .. "\r\n" end
  for line in (e.HTTP_X_SF_EXTRA or ""):gmatch "[^|]+" do head = head .. line .. "\r\n" end
  if e.HTTP_X_SF_BODY == "endless" then
    sock:settimeout(1)
    local ok, err = send_all(sock, head .. "\r\n")
    local chunk, sent, t0 = ("x"):rep(65536), 0, socket.gettime()
    while ok and socket.gettime() - t0 < 20 do
      local last, serr = sock:send(chunk)
      if not last then ok, err = false, serr else sent = sent + #chunk end
    end
    req.sent, req.send_error = sent, err or "still open after 20 s"
    req:save()
    return
  end
  local body = "backend body that must be discarded\n"
  send_all(sock, head .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
end]]

local function write(path, data)
  helpers.proc.write_file(path, data)
end

local function symlink(target, path)
  os.remove(path)
  assert(unistd.link(target, path, true))
end

-- Lines of the gateway log written after `mark` that contain `needle` (plain) and, if given,
-- `also` (a Lua pattern, matched case-insensitively). Polls up to 3 s.
local function log_line(gw, mark, needle, also)
  return helpers.poll(function()
    for line in (gw:log():sub(mark + 1)):gmatch "[^\n]+" do
      if line:find(needle, 1, true) and (not also or line:lower():find(also)) then return line end
    end
  end, 3)
end

-- Read `n` body bytes already framed by a parsed head (bytes left in c.buf), handing each
-- piece to `sink`. Returns the count, or nil, err. Bounded by `timeout`.
local function stream_body(c, n, sink, timeout)
  local deadline = helpers.now() + timeout
  local got = 0
  while got < n do
    if c.buf == "" then
      if c.eof then return nil, "connection closed after " .. got .. " of " .. n .. " bytes" end
      local ok, err = c:fill(deadline)
      if not ok then return nil, tostring(err) .. " after " .. got .. " of " .. n .. " bytes" end
    end
    local piece = c.buf
    if #piece > n - got then
      c.buf = piece:sub(n - got + 1)
      piece = piece:sub(1, n - got)
    else
      c.buf = ""
    end
    got = got + #piece
    sink(piece)
  end
  return got
end

-- A sink comparing pieces with the bytes of `path` from `offset`; check() → nil or the first
-- differing offset (relative to `offset`).
local function file_comparer(path, offset)
  local f = assert(io.open(path, "rb"))
  if offset then f:seek("set", offset) end
  local pos, bad = 0, nil
  local function sink(piece)
    if bad then return end
    local want = f:read(#piece) or ""
    if want ~= piece then
      for i = 1, #piece do
        if want:byte(i) ~= piece:byte(i) then bad = pos + i - 1 break end
      end
    end
    pos = pos + #piece
  end
  local function check()
    f:close()
    return bad
  end
  return sink, check
end

local function count_headers(res, name)
  local n = 0
  for _, kv in ipairs(res.header_list) do
    if kv[1]:lower() == name then n = n + 1 end
  end
  return n
end

describe("X-Sendfile #integration", function()
  local app, gw
  local D, ROOT, ROOT2, OUTSIDE
  local F = {}

  lazy_setup(function()
    D = helpers.temp_dir "sendfile"
    ROOT, ROOT2, OUTSIDE = D .. "/root", D .. "/root2", D .. "/outside"
    for _, d in ipairs { ROOT, ROOT2, OUTSIDE, ROOT .. "/dir", D .. "/root-evil" } do
      assert(stat.mkdir(d, 493))
    end
    F.small = ROOT .. "/small.txt"
    write(F.small, SMALL)
    assert(utime.utime(F.small, MTIME, MTIME))
    F.pct = ROOT .. "/a%20b.txt"
    write(F.pct, "the literal percent name")
    F.space = ROOT .. "/a b.txt"
    write(F.space, "the decoded name")
    F.mutable = ROOT .. "/mutable.txt"
    write(F.mutable, "v1")
    F.other = ROOT2 .. "/other.txt"
    write(F.other, "in the second root")
    F.secret = OUTSIDE .. "/secret.txt"
    write(F.secret, "top secret")
    F.evil = D .. "/root-evil/secret.txt"
    write(F.evil, "prefix trick")
    F.inside_link = ROOT .. "/inside-link"
    symlink(F.small, F.inside_link)
    F.escape_link = ROOT .. "/escape-link"
    symlink(F.secret, F.escape_link)
    F.escape_dir = ROOT .. "/escape-dir"
    symlink(OUTSIDE, F.escape_dir)
    F.swap = ROOT .. "/swap-link"
    symlink(F.small, F.swap)

    -- 100 MiB and 10 MiB files, written 1 MiB at a time (a different block per MiB, so a
    -- lost or repeated MiB is seen)
    F.big = ROOT .. "/big100.bin"
    local f = assert(io.open(F.big, "wb"))
    for i = 1, 100 do assert(f:write(helpers.blob(MiB, i))) end
    assert(f:close())
    F.ten = ROOT .. "/ten.bin"
    f = assert(io.open(F.ten, "wb"))
    for i = 1, 10 do assert(f:write(helpers.blob(MiB, 1000 + i))) end
    assert(f:close())

    app = helpers.scgi_backend { handler = HANDLER }
    gw = helpers.start_gateway {
      access_log = false,
      timeouts = { backend = 10, send = 10 },
      routes = {
        { path = "/sf/", pass = app.url, sendfile = true },
        { path = "/off/", pass = app.url },
        { path = "/explicit-off/", pass = app.url, sendfile = false },
        { path = "/custom/", pass = app.url, sendfile = "X-Accel-Redirect" },
        { path = "/rooted/", pass = app.url, sendfile = true, sendfile_root = ROOT },
        { path = "/roots/", pass = app.url, sendfile = true, sendfile_root = { ROOT2, ROOT } },
      },
    }
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if app then app:stop() end
  end)

  -- GET (or t.method) `route`..`name` with the backend answering X-Sendfile: file.
  -- t: headers (merged), extra (backend header lines), status, header (backend header name).
  local function sf(route, file, t)
    t = t or {}
    local h = { ["X-Sf-Path"] = file, ["X-Sf-Extra"] = t.extra, ["X-Sf-Status"] = t.status,
                ["X-Sf-Header"] = t.header, ["X-Sf-Body"] = t.body }
    for k, v in pairs(t.headers or {}) do h[k] = v end
    local req = { method = t.method, path = route .. (t.name or "file"), headers = h,
                  timeout = t.timeout or 10 }
    if t.conn then return assert(t.conn:request(req)) end
    return assert(gw:request(req))
  end

  describe("the header", function()
    it("sendfile = true: serves the file named by X-Sendfile, strips the header, drops the backend body",
       function()
      local res = sf("/sf/", F.small)
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.is_nil(res.headers["x-sendfile"])
      assert.equal("20", res.headers["content-length"])
      assert.equal(1, count_headers(res, "content-length"))
      assert.is_nil(res.headers["transfer-encoding"])
    end)

    it("keeps the backend's status and other headers", function()
      local res = sf("/sf/", F.small, { status = "404 Not Found", extra = "X-Extra: kept|Cache-Control: no-cache" })
      assert.equal(404, res.status)
      assert.equal(SMALL, res.body)
      assert.equal("text/x-from-backend", res.headers["content-type"])
      assert.equal("app", res.headers["x-backend"])
      assert.equal("kept", res.headers["x-extra"])
      assert.equal("no-cache", res.headers["cache-control"])
      assert.is_nil(res.headers["x-sendfile"])
    end)

    it("fires on a non-2xx status too (a 503 page from a file)", function()
      local res = sf("/sf/", F.other, { status = "503 Service Unavailable" })
      assert.equal(503, res.status)
      assert.equal("in the second root", res.body)
    end)

    it("sendfile off (default): X-Sendfile passes through untouched with the backend body", function()
      local res = sf("/off/", F.small)
      assert.equal(200, res.status)
      assert.equal(F.small, res.headers["x-sendfile"])
      assert.equal(BACKEND_BODY, res.body)
    end)

    it("sendfile = false: X-Sendfile passes through untouched with the backend body", function()
      local res = sf("/explicit-off/", F.small)
      assert.equal(200, res.status)
      assert.equal(F.small, res.headers["x-sendfile"])
      assert.equal(BACKEND_BODY, res.body)
    end)

    it("a custom header name acts and is stripped; X-Sendfile then passes through", function()
      local res = sf("/custom/", F.small, { header = "X-Accel-Redirect" })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.is_nil(res.headers["x-accel-redirect"])

      res = sf("/custom/", F.small)  -- backend sends X-Sendfile on a route configured otherwise
      assert.equal(200, res.status)
      assert.equal(F.small, res.headers["x-sendfile"])
      assert.equal(BACKEND_BODY, res.body)
    end)

    it("matches the configured header name case-insensitively", function()
      local res = sf("/custom/", F.small, { header = "x-accel-redirect" })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.is_nil(res.headers["x-accel-redirect"])
    end)

    it("does not URL-decode the path", function()
      local res = sf("/sf/", F.pct)
      assert.equal(200, res.status)
      assert.equal("the literal percent name", res.body)
    end)

    it("is checked before the internal redirect (Location: /… on a 200 is not followed)", function()
      local n0 = app:count()
      local res = sf("/sf/", F.small, { extra = "Location: /off/redirected-here" })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.equal(n0 + 1, app:count())
      for _, r in ipairs(app:requests()) do
        assert.is_not.equal("/off/redirected-here", r.env and r.env.REQUEST_URI)
      end
    end)

    it("stops reading the backend body and closes the backend connection", function()
      local n0 = app:count()
      local t0 = helpers.now()
      local res = sf("/sf/", F.small, { body = "endless", timeout = 5 })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.is_true(helpers.now() - t0 < helpers.slack(3), "the file waited for the backend body")
      local rec = helpers.poll(function()
        local r = app:requests()[n0 + 1]
        if r and r.send_error then return r end
      end, 5)
      assert.truthy(rec, "the backend could still write after 5 s: connection not closed")
      assert.is_not.equal("timeout", rec.send_error,
                          "the backend's writes stalled (gateway stopped reading but did not close)")
    end)
  end)

  describe("validators and conditional requests", function()
    it("sets Last-Modified from the file and a strong ETag", function()
      local res = sf("/sf/", F.small)
      assert.equal(http_date(MTIME), res.headers["last-modified"])
      local etag = res.headers.etag
      assert.is_string(etag)
      assert.matches('^"[^"]*"$', etag) -- quoted and not W/ (weak)
      -- stable across requests
      assert.equal(etag, sf("/sf/", F.small).headers.etag)
    end)

    it("the ETag changes when the file changes", function()
      write(F.mutable, "v1")
      assert(utime.utime(F.mutable, MTIME, MTIME))
      local e1 = sf("/sf/", F.mutable).headers.etag
      write(F.mutable, "version two")
      assert(utime.utime(F.mutable, MTIME + 60, MTIME + 60))
      local res = sf("/sf/", F.mutable)
      assert.equal("version two", res.body)
      assert.is_string(e1)
      assert.is_not.equal(e1, res.headers.etag)
    end)

    it("keeps an ETag and Last-Modified the backend set (not overwritten, not doubled)", function()
      local res = sf("/sf/", F.small, {
        extra = 'ETag: "from-backend"|Last-Modified: Wed, 01 Jan 2020 00:00:00 GMT' })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.equal('"from-backend"', res.headers.etag)
      assert.equal("Wed, 01 Jan 2020 00:00:00 GMT", res.headers["last-modified"])
      assert.equal(1, count_headers(res, "etag"))
      assert.equal(1, count_headers(res, "last-modified"))
    end)

    it("If-None-Match with the current ETag → 304 without body", function()
      local etag = sf("/sf/", F.small).headers.etag
      local res = sf("/sf/", F.small, { headers = { ["If-None-Match"] = etag } })
      assert.equal(304, res.status)
      assert.equal("", res.body)
      assert.equal(etag, res.headers.etag)
      res = sf("/sf/", F.small, { headers = { ["If-None-Match"] = '"nope", ' .. etag } })
      assert.equal(304, res.status)
    end)

    it("If-None-Match with another ETag → 200 with the file", function()
      local res = sf("/sf/", F.small, { headers = { ["If-None-Match"] = '"something-else"' } })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
    end)

    it("If-Modified-Since equal to Last-Modified → 304; an earlier date → 200", function()
      local res = sf("/sf/", F.small, { headers = { ["If-Modified-Since"] = http_date(MTIME) } })
      assert.equal(304, res.status)
      assert.equal("", res.body)
      res = sf("/sf/", F.small, { headers = { ["If-Modified-Since"] = http_date(MTIME - 3600) } })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
    end)

    it("If-None-Match that does not match wins over a matching If-Modified-Since → 200", function()
      local res = sf("/sf/", F.small, { headers = { ["If-None-Match"] = '"other"',
                                                    ["If-Modified-Since"] = http_date(MTIME) } })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
    end)

    it("keeps the connection usable after a 304", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = sf("/sf/", F.small, { conn = c, headers = { ["If-Modified-Since"] = http_date(MTIME) } })
      assert.equal(304, res.status)
      res = sf("/sf/", F.small, { conn = c })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
    end)
  end)

  describe("Range", function()
    local function range(r, extra)
      local h = { Range = r }
      for k, v in pairs(extra or {}) do h[k] = v end
      return sf("/sf/", F.small, { headers = h })
    end

    it("bytes=2-5 → 206 with Content-Range", function()
      local res = range "bytes=2-5"
      assert.equal(206, res.status)
      assert.equal("2345", res.body)
      assert.equal("bytes 2-5/20", res.headers["content-range"])
      assert.equal("4", res.headers["content-length"])
    end)

    it("suffix bytes=-5 → the last 5 bytes", function()
      local res = range "bytes=-5"
      assert.equal(206, res.status)
      assert.equal("fghij", res.body)
      assert.equal("bytes 15-19/20", res.headers["content-range"])
    end)

    it("open bytes=5- → from byte 5 to the end", function()
      local res = range "bytes=5-"
      assert.equal(206, res.status)
      assert.equal("56789abcdefghij", res.body)
      assert.equal("bytes 5-19/20", res.headers["content-range"])
    end)

    it("a last byte past the end is clamped (bytes=15-100)", function()
      local res = range "bytes=15-100"
      assert.equal(206, res.status)
      assert.equal("fghij", res.body)
      assert.equal("bytes 15-19/20", res.headers["content-range"])
    end)

    it("unsatisfiable bytes=20-30 → 416 with Content-Range bytes */20", function()
      local res = range "bytes=20-30"
      assert.equal(416, res.status)
      assert.equal("bytes */20", res.headers["content-range"])
      assert.is_nil(res.body:find(SMALL, 1, true))
    end)

    it("multi-range bytes=0-1,3-4 → 200 with the whole file (multi-range out of scope; "
       .. "a correct multipart 206 is accepted too)", function()
      local res = range "bytes=0-1,3-4"
      if res.status == 200 then
        assert.equal(SMALL, res.body)
      else
        assert.equal(206, res.status)
        assert.matches("^multipart/byteranges", res.headers["content-type"] or "")
        assert.matches("Content%-Range: bytes 0%-1/20\r?\n\r?\n01\r?\n", res.body)
        assert.matches("Content%-Range: bytes 3%-4/20\r?\n\r?\n34\r?\n", res.body)
      end
    end)

    it("If-Range with the current ETag → 206", function()
      local etag = sf("/sf/", F.small).headers.etag
      local res = range("bytes=2-5", { ["If-Range"] = etag })
      assert.equal(206, res.status)
      assert.equal("2345", res.body)
    end)

    it("If-Range with a stale ETag → the full 200", function()
      local res = range("bytes=2-5", { ["If-Range"] = '"stale-etag"' })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.is_nil(res.headers["content-range"])
    end)

    it("If-Range with the Last-Modified date → 206; with another date → the full 200", function()
      local res = range("bytes=2-5", { ["If-Range"] = http_date(MTIME) })
      assert.equal(206, res.status)
      assert.equal("2345", res.body)
      res = range("bytes=2-5", { ["If-Range"] = http_date(MTIME - 86400) })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
    end)

    it("a range of the 100 MiB file (bytes=99999990-100000009)", function()
      local res = sf("/sf/", F.big, { headers = { Range = "bytes=99999990-100000009" } })
      assert.equal(206, res.status)
      assert.equal("bytes 99999990-100000009/" .. 100 * MiB, res.headers["content-range"])
      local f = assert(io.open(F.big, "rb"))
      f:seek("set", 99999990)
      local want = f:read(20)
      f:close()
      assert.equal(want, res.body)
    end)
  end)

  describe("HEAD and keep-alive", function()
    it("HEAD sends the headers only, and the connection stays in sync", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = sf("/sf/", F.big, { conn = c, method = "HEAD" })
      assert.equal(200, res.status)
      assert.equal(tostring(100 * MiB), res.headers["content-length"])
      assert.equal("", res.body)
      assert.is_nil(res.headers["x-sendfile"])
      assert.equal("HEAD", app:last_request().env.REQUEST_METHOD)
      -- no stray body bytes: the next response parses
      res = sf("/sf/", F.small, { conn = c })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
      assert.equal("", c.buf)
    end)

    it("keep-alive continues after a file: sendfile, range, relayed, sendfile on one connection",
       function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = sf("/sf/", F.small, { conn = c })
      assert.equal(SMALL, res.body)
      res = sf("/sf/", F.small, { conn = c, headers = { Range = "bytes=-3" } })
      assert.equal(206, res.status)
      assert.equal("hij", res.body)
      res = sf("/off/", F.small, { conn = c })
      assert.equal(BACKEND_BODY, res.body)
      res = sf("/sf/", F.ten, { conn = c, timeout = 20 })
      assert.equal(10 * MiB, #res.body)
      res = sf("/sf/", F.other, { conn = c })
      assert.equal("in the second root", res.body)
      assert.is_false(c:closed(0.2))
    end)
  end)

  describe("errors", function()
    local function expect(file, status, t)
      local mark = gw:log_mark()
      local res = sf((t and t.route) or "/sf/", file)
      assert.equal(status, res.status, res.body)
      assert.is_nil(res.headers["x-sendfile"])
      assert.is_nil(res.body:find(BACKEND_BODY, 1, true))
      local line = log_line(gw, mark, (t and t.needle) or file, t and t.level)
      assert.truthy(line, "no log line naming " .. ((t and t.needle) or file) ..
                    (t and t.level and (" at level " .. t.level) or "") .. " in:\n" ..
                    gw:log():sub(mark + 1))
      return res
    end

    it("a missing file → 404, logged", function()
      expect(ROOT .. "/no-such-file.txt", 404)
    end)

    it("a directory → 403, logged", function()
      expect(ROOT .. "/dir", 403)
    end)

    it("a relative path → 502 (a backend error), logged", function()
      expect("relative/path.txt", 502)
    end)

    it("keeps the connection usable after an error", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = sf("/sf/", ROOT .. "/no-such-file.txt", { conn = c })
      assert.equal(404, res.status)
      res = sf("/sf/", F.small, { conn = c })
      assert.equal(200, res.status)
      assert.equal(SMALL, res.body)
    end)
  end)

  describe("sendfile_root", function()
    local function ok(route, file, want)
      local res = sf(route, file)
      assert.equal(200, res.status, res.body)
      assert.equal(want, res.body)
    end

    local function refused(route, file)
      local mark = gw:log_mark()
      local res = sf(route, file)
      assert.equal(403, res.status, res.body)
      assert.is_nil(res.body:find("top secret", 1, true))
      assert.is_nil(res.body:find("prefix trick", 1, true))
      assert.is_nil(res.body:find(BACKEND_BODY, 1, true))
      local line = log_line(gw, mark, file, "warn")
      assert.truthy(line, "no warning naming " .. file .. " in:\n" .. gw:log():sub(mark + 1))
    end

    it("serves a file inside the root", function()
      ok("/rooted/", F.small, SMALL)
    end)

    it("the same file outside any root is served on a route without sendfile_root", function()
      ok("/sf/", F.secret, "top secret")
    end)

    it("a file outside the root → 403 and a warning", function()
      refused("/rooted/", F.secret)
    end)

    it("`..` out of the root → 403 and a warning", function()
      refused("/rooted/", ROOT .. "/../outside/secret.txt")
      refused("/rooted/", ROOT .. "/dir/../../outside/secret.txt")
    end)

    it("`..` that stays inside the root is served", function()
      ok("/rooted/", ROOT .. "/dir/../small.txt", SMALL)
    end)

    it("a symlink inside the root pointing out → 403 and a warning", function()
      refused("/rooted/", F.escape_link)
    end)

    it("a symlinked directory inside the root pointing out → 403 and a warning", function()
      refused("/rooted/", F.escape_dir .. "/secret.txt")
    end)

    it("a symlink inside the root pointing inside is followed", function()
      ok("/rooted/", F.inside_link, SMALL)
    end)

    it("a sibling directory sharing the root's name as prefix (root-evil) → 403", function()
      refused("/rooted/", F.evil)
    end)

    it("a symlink swapped to point outside is refused on the next request", function()
      symlink(F.small, F.swap)
      ok("/rooted/", F.swap, SMALL)
      symlink(F.secret, F.swap)
      refused("/rooted/", F.swap)
      symlink(F.small, F.swap)
      ok("/rooted/", F.swap, SMALL)
    end)

    it("a list of roots: a file in any of them is served, others → 403", function()
      ok("/roots/", F.other, "in the second root")
      ok("/roots/", F.small, SMALL)
      refused("/roots/", F.secret)
      refused("/roots/", F.escape_link)
    end)

    it("a missing file inside the root is still a 404", function()
      local res = sf("/rooted/", ROOT .. "/no-such-file.txt")
      assert.equal(404, res.status)
    end)
  end)

  describe("big files and concurrency", function()
    it("serves a 100 MiB file byte for byte", function()
      local c = assert(gw:connect(nil, { timeout = 60 }))
      finally(function() c:close() end)
      assert(c:send(helpers.build_request({ path = "/sf/big", headers = { ["X-Sf-Path"] = F.big } },
                                          gw:host_header())))
      local res = assert(c:read_response { head = true, timeout = 10 })
      assert.equal(200, res.status)
      assert.equal(tostring(100 * MiB), res.headers["content-length"])
      local sink, check = file_comparer(F.big)
      local n, err = stream_body(c, 100 * MiB, sink, 60)
      local bad = check()
      assert.equal(100 * MiB, n, err)
      assert.is_nil(bad, "body differs from the file at byte " .. tostring(bad))
      -- nothing extra after the announced length, and the connection is reusable
      local res2 = sf("/sf/", F.small, { conn = c })
      assert.equal(SMALL, res2.body)
    end)

    it("20 concurrent downloads of a 10 MiB file all complete intact", function()
      local size = 10 * MiB
      local expected = assert(helpers.proc.read_file(F.ten))
      local conns = {}
      finally(function() for _, st in ipairs(conns) do st.c:close() end end)
      local req = helpers.build_request({ path = "/sf/ten", headers = { ["X-Sf-Path"] = F.ten } },
                                        gw:host_header())
      for i = 1, 20 do
        local c = assert(gw:connect(nil, { timeout = 30 }))
        conns[i] = { c = c, got = 0, i = i }
        assert(c:send(req))
      end
      local deadline = helpers.now() + 60
      local left = #conns
      while left > 0 and helpers.now() < deadline do
        local socks, by = {}, {}
        for _, st in ipairs(conns) do
          if not st.done then socks[#socks + 1] = st.c.sock by[st.c.sock] = st end
        end
        local ready = socket.select(socks, nil, math.max(0.01, math.min(1, deadline - helpers.now())))
        for _, s in ipairs(ready) do
          local st = by[s]
          st.c:fill(deadline)
          if not st.status then
            local e = st.c.buf:find("\r\n\r\n", 1, true)
            if e then
              local head = st.c.buf:sub(1, e + 3)
              st.c.buf = st.c.buf:sub(e + 4)
              st.status = tonumber(head:match "^HTTP/1%.%d (%d%d%d)")
              st.length = tonumber(head:lower():match "\ncontent%-length:%s*(%d+)")
            end
          end
          if st.status and st.c.buf ~= "" then
            local piece = st.c.buf
            st.c.buf = ""
            if st.got + #piece > size then
              st.err = st.err or "more bytes than the file has"
            elseif not st.err and piece ~= expected:sub(st.got + 1, st.got + #piece) then
              st.err = "bytes differ near offset " .. st.got
            end
            st.got = st.got + #piece
          end
          if st.got >= size or st.c.eof then
            if st.got < size then st.err = st.err or ("closed after " .. st.got .. " bytes") end
            st.done = true
            left = left - 1
          end
        end
      end
      for _, st in ipairs(conns) do
        assert.is_true(st.done, "download " .. st.i .. " unfinished at the deadline (" .. st.got .. " bytes)")
        assert.equal(200, st.status)
        assert.equal(size, st.length)
        assert.is_nil(st.err, "download " .. st.i .. ": " .. tostring(st.err))
        assert.equal(size, st.got)
      end
    end)

    it("a stalled reader of the 100 MiB file does not block another client's small requests, "
       .. "then resumes intact", function()
      local slow = assert(gw:connect(nil, { timeout = 60 }))
      finally(function() slow:close() end)
      assert(slow:send(helpers.build_request({ path = "/sf/slow", headers = { ["X-Sf-Path"] = F.big } },
                                             gw:host_header())))
      local head = assert(slow:read_response { head = true, timeout = 10 })
      assert.equal(200, head.status)
      -- the slow client now reads nothing: socket buffers fill within milliseconds and the
      -- gateway's writes to it return EAGAIN. For 1.5 s, other clients must be served at once.
      local window_end = helpers.now() + 1.5
      local n = 0
      repeat
        local t0 = helpers.now()
        local res, err = gw:request { path = "/sf/small", headers = { ["X-Sf-Path"] = F.small },
                                      timeout = 3 }
        assert.truthy(res, "small sendfile request failed while another client stalls: " .. tostring(err))
        assert.equal(SMALL, res.body)
        res, err = gw:request { path = "/off/x", timeout = 3 }
        assert.truthy(res, "relayed request failed while another client stalls: " .. tostring(err))
        assert.equal(BACKEND_BODY, res.body)
        local took = helpers.now() - t0
        assert.is_true(took < helpers.slack(1), string.format("two small requests took %.2f s", took))
        n = n + 1
      until helpers.now() >= window_end
      assert.is_true(n >= 2)
      -- the stalled download resumes where it stopped (partial writes) and ends intact
      local sink, check = file_comparer(F.big)
      local got, err = stream_body(slow, 100 * MiB, sink, 60)
      local bad = check()
      assert.equal(100 * MiB, got, err)
      assert.is_nil(bad, "body differs from the file at byte " .. tostring(bad))
    end)
  end)

  describe("a file the gateway cannot read", function()
    local gw2, why_not
    local UNREADABLE

    lazy_setup(function()
      UNREADABLE = ROOT .. "/unreadable.txt"
      write(UNREADABLE, "you cannot read me")
      assert(stat.chmod(UNREADABLE, 0))
      local bin = helpers.bin
      if unistd.geteuid() == 0 then
        -- root reads mode-000 files: run this gateway without CAP_DAC_OVERRIDE/READ_SEARCH
        if not helpers.proc.exists "/usr/bin/setpriv" then
          why_not = "running as root and setpriv(1) is not available"
          return
        end
        bin = D .. "/no-dac-override.sh"
        write(bin, "#!/bin/sh\nexec /usr/bin/setpriv --bounding-set=-dac_override,-dac_read_search -- '"
                   .. helpers.bin .. "' \"$@\"\n")
        assert(stat.chmod(bin, 493))
      end
      local saved = helpers.bin
      helpers.bin = bin
      local ok, res = pcall(helpers.start_gateway, {
        access_log = false,
        routes = { { path = "/sf/", pass = app.url, sendfile = true } },
      })
      helpers.bin = saved
      if not ok then error(res, 0) end
      gw2 = res
    end)

    lazy_teardown(function()
      if gw2 then gw2:stop() end
      if UNREADABLE then stat.chmod(UNREADABLE, 420) end
    end)

    it("an unreadable file → 403, logged", function()
      if why_not then pending(why_not) return end
      local mark = gw2:log_mark()
      local res = assert(gw2:request { path = "/sf/x", headers = { ["X-Sf-Path"] = UNREADABLE } })
      assert.equal(403, res.status, res.body)
      assert.is_nil(res.body:find("you cannot read me", 1, true))
      assert.is_nil(res.headers["x-sendfile"])
      assert.truthy(log_line(gw2, mark, UNREADABLE),
                    "no log line naming the file in:\n" .. gw2:log():sub(mark + 1))
    end)

    it("the same gateway serves a readable file (the 403 is about the file)", function()
      if why_not then pending(why_not) return end
      local res = assert(gw2:request { path = "/sf/x", headers = { ["X-Sf-Path"] = F.small } })
      assert.equal(200, res.status, res.body)
      assert.equal(SMALL, res.body)
    end)
  end)
end)
