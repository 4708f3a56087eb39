-- Hardening (scgi-lua(8) "Timeouts", "Limits", THE SCGI REQUEST, ERRORS): request smuggling and
-- hostile parsing, slow and abusive clients, limits.connections, many idle connections, no
-- descriptor leak, and Lua hooks that never return or allocate without bound.
--
-- A malformed request gets 400 (or 431/413/414/501) and the backend receives nothing, or the
-- gateway serves exactly one well-formed request; the SCGI netstring never carries a client NUL.
-- Whether a backend received anything is settled without sleeping: a sentinel request follows
-- every case, and once its answer is back every earlier request has been recorded.

local helpers = require "spec.helpers"
local unistd = require "posix.unistd"

local proc = helpers.proc

-- Under AddressSanitizer freed memory sits in a quarantine (up to 256 MB): RSS says nothing.
local SANITIZED = (proc.read_file(helpers.bin) or ""):find("__asan_init", 1, true) ~= nil
local RSS_GROWTH_KB = SANITIZED and math.huge or 20 * 1024
local CLK_TCK = (unistd.sysconf and unistd._SC_CLK_TCK and unistd.sysconf(unistd._SC_CLK_TCK)) or 100

local function rss_kb(pid)
  local s = proc.read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match "VmRSS:%s*(%d+)") or 0
end

-- User + system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat).
local function cpu_seconds(pid)
  local s = proc.read_file("/proc/" .. pid .. "/stat") or ""
  local f = {}
  for x in (s:match "%)%s+(.*)$" or ""):gmatch "%S+" do f[#f + 1] = x end
  return ((tonumber(f[12]) or 0) + (tonumber(f[13]) or 0)) / CLK_TCK
end

local function fd_count(pid)
  return #proc.list_dir("/proc/" .. pid .. "/fd")
end

local function nofile_limit()
  local ok, res = pcall(require, "posix.sys.resource")
  if not ok then return nil end
  local l = res.getrlimit(res.RLIMIT_NOFILE)
  return l and tonumber(l.rlim_cur)
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function show(s) return string.format("%q", s) end

local H = "Host: x\r\n"
local SMUGGLED = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"

---------------------------------------------------------------------------------------------
describe("hardening: request parsing and smuggling #integration", function()
  local gw, echo, admin

  lazy_setup(function()
    echo = helpers.scgi_backend()
    admin = helpers.scgi_backend()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1, -- /proc/PID below is the one serving process
        access_log = false,
        timeouts = { client_header = 2, client_body = 2, keepalive = 5, backend = 5 },
        limits = { header_bytes = 4096, headers = 50, body_bytes = 1000000 },
        routes = {
          { path = "/admin/", pass = %q, access = function(req) return 403, "admin is closed" end },
          { path = "/pi/", pass = %q, env = { ["proxy-scgi-pathinfo"] = "1" } },
          { path = "/", pass = %q },
        },
      }]], admin.url, echo.url, echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
    if admin then admin:stop() end
  end)

  local function last_seq(b)
    local r = b:requests()
    return r[#r] and r[#r].seq or 0
  end

  local sentinels = 0
  local settle

  -- Send a sentinel request and wait until the echo backend has recorded it and every request
  -- accepted before it. Returns the echo records since `since` other than the sentinel.
  function settle(since)
    sentinels = sentinels + 1
    local uri = "/sentinel/" .. sentinels
    local res = assert(gw:request { path = uri, timeout = 5 })
    assert.equal(200, res.status, "the sentinel request failed")
    local sseq
    for _, r in ipairs(echo:requests()) do
      if r.env and r.env.REQUEST_URI == uri then sseq = r.seq end
    end
    assert.truthy(sseq, "the sentinel was not recorded")
    -- connections accepted before the sentinel's record theirs a moment later, or never (a
    -- connection closed without a byte leaves no record): a short bounded poll
    helpers.poll(function()
      local have = {}
      for _, r in ipairs(echo:requests()) do have[r.seq] = true end
      for s = since + 1, sseq do if not have[s] then return false end end
      return true
    end, 0.5)
    local out = {}
    for _, r in ipairs(echo:requests()) do
      if r.seq > since and r.seq ~= sseq then out[#out + 1] = r end
    end
    return out
  end

  -- The echo backend's last record once everything sent so far has arrived (a case that failed
  -- halfway may have left a request in flight: it must not count against the next case).
  local function baseline()
    local since = last_seq(echo)
    settle(since)
    return last_seq(echo)
  end

  local function describe_records(recs)
    local t = {}
    for _, r in ipairs(recs) do
      t[#t + 1] = r.error and ("malformed netstring: " .. r.error)
                  or ((r.env.REQUEST_METHOD or "?") .. " " .. show(r.env.REQUEST_URI or "?"))
    end
    return table.concat(t, "; ")
  end

  -- The netstring is intact: CONTENT_LENGTH first, SCGI second, no name twice, names of safe
  -- characters only, and exactly two NULs per variable (no NUL from the client inside).
  local function assert_well_formed(rec)
    assert.is_nil(rec.error, "malformed netstring: " .. tostring(rec.error))
    assert.equal("CONTENT_LENGTH", rec.names[1])
    assert.equal("SCGI", rec.names[2])
    local seen = {}
    for _, n in ipairs(rec.names) do
      assert.truthy(n:match "^[%w_%-]+$", "odd variable name " .. show(n))
      assert.is_nil(seen[n], "variable sent twice: " .. n)
      seen[n] = true
    end
    local payload = rec.raw_header:match "^%d+:(.*),$" or ""
    local _, nuls = payload:gsub("%z", "")
    assert.equal(2 * #rec.names, nuls, "a NUL inside a value")
    for n, v in pairs(rec.env) do
      assert.is_nil(v:find "[\r\n]", n .. " carries CR or LF: " .. show(v))
    end
  end

  -- The request must be rejected with one of `statuses`, the connection closed after the error
  -- (when `keep_open_ok` is not set), and no backend may have seen anything.
  local function expect_rejected(bytes, statuses, keep_open_ok)
    statuses = statuses or { 400 }
    local e0, a0 = baseline(), last_seq(admin)
    local c = assert(gw:connect(nil, { timeout = 5 }))
    finally(function() c:close() end)
    local res, err = c:exchange(bytes, { timeout = 5 })
    assert.truthy(res, "no response: " .. tostring(err))
    assert.truthy(contains(statuses, res.status),
                  "status " .. res.status .. ", expected one of " .. table.concat(statuses, "/"))
    if not keep_open_ok then
      assert.is_true(c:closed(3), "the connection stayed open after a rejected request")
      assert.is_nil(c.buf:find("HTTP/1.", 1, true), "a second response followed: " .. show(c.buf))
    end
    c:close()
    local others = settle(e0)
    assert.equal(0, #others, "the backend received: " .. describe_records(others))
    assert.equal(a0, last_seq(admin), "the admin backend received a request")
    return res
  end

  -- Either rejected as above, or served as exactly one well-formed request (`check(rec)` then
  -- looks at it), after which the same connection answers our next request, not leftover bytes.
  local function expect_one_or_rejected(bytes, check, statuses)
    statuses = statuses or { 400 }
    local e0, a0 = baseline(), last_seq(admin)
    local c = assert(gw:connect(nil, { timeout = 5 }))
    finally(function() c:close() end)
    local res, err = c:exchange(bytes, { timeout = 5 })
    assert.truthy(res, "no response: " .. tostring(err))
    if contains(statuses, res.status) then
      assert.is_true(c:closed(3), "the connection stayed open after a rejected request")
      assert.is_nil(c.buf:find("HTTP/1.", 1, true), "a second response followed: " .. show(c.buf))
      c:close()
      local others = settle(e0)
      assert.equal(0, #others, "the backend received: " .. describe_records(others))
      assert.equal(a0, last_seq(admin), "the admin backend received a request")
      return "rejected", res
    end
    assert.equal(200, res.status, "neither rejected nor served: " .. res.status .. " " .. res.body)
    local after = "/after/" .. (sentinels + 1)
    if c:send(helpers.build_request({ path = after }, "x")) then
      local res2 = c:read_response { timeout = 5 }
      if res2 then -- or closed: also fine
        assert.equal(200, res2.status)
        assert.truthy(res2.body:find("REQUEST_URI=" .. after .. "\n", 1, true),
                      "leftover bytes were answered as a request: " .. show(res2.body:sub(1, 200)))
      end
    end
    c:close()
    local others = {}
    for _, r in ipairs(settle(e0)) do
      if not (r.env and r.env.REQUEST_URI == after) then others[#others + 1] = r end
    end
    assert.equal(1, #others, "expected exactly one request at the backend, got: " ..
                 describe_records(others))
    assert.equal(a0, last_seq(admin), "the admin backend received a request")
    assert_well_formed(others[1])
    if check then check(others[1], res) end
    return "served", res, others[1]
  end

  -- A path trick must not escape its route: rejected, denied by /admin/'s hook, or served with
  -- a path that has no dot segment and is not under /admin/.
  local function expect_confined(target)
    local e0, a0 = baseline(), last_seq(admin)
    local res = assert(gw:request { raw = "GET " .. target .. " HTTP/1.1\r\nHost: x\r\n" ..
                                          "Connection: close\r\n\r\n", timeout = 5 })
    local others = settle(e0)
    assert.equal(a0, last_seq(admin), "the admin backend received " .. target)
    if res.status == 200 then
      assert.equal(1, #others, describe_records(others))
      local rec = others[1]
      assert_well_formed(rec)
      local path = (rec.env.SCRIPT_NAME or "") .. (rec.env.PATH_INFO or "")
      assert.is_nil(path:find "/%.%.?/", "a dot segment reached the backend: " .. show(path))
      assert.is_nil(path:find "/%.%.?$", "a dot segment reached the backend: " .. show(path))
      assert.is_nil(path:find "^/+admin/", "/admin/ reached through another route: " .. show(path))
      assert.truthy(path:find "^/", "the path left the root: " .. show(path))
    else
      assert.truthy(contains({ 400, 403, 404 }, res.status), "status " .. res.status)
      assert.equal(0, #others, "the backend received: " .. describe_records(others))
    end
  end

  it("serves a plain request (control)", function()
    local _, res, rec = expect_one_or_rejected("GET /echo/plain HTTP/1.1\r\n" .. H .. "\r\n", nil, {})
    assert.equal(200, res.status)
    assert.equal("/echo/plain", rec.env.SCRIPT_NAME)
  end)

  it("passes NUL bytes in a request body untouched (the body is not the netstring)", function()
    local body = "a\0b\0\0c"
    expect_one_or_rejected("POST /echo/nulbody HTTP/1.1\r\n" .. H .. "Content-Length: " .. #body ..
                           "\r\n\r\n" .. body, function(rec)
      assert.equal(body, rec.body)
    end, {})
  end)

  describe("Content-Length and Transfer-Encoding", function()
    it("Content-Length with Transfer-Encoding: chunked → 400", function()
      expect_rejected("POST /echo/clte HTTP/1.1\r\n" .. H .. "Content-Length: 5\r\n" ..
                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED)
    end)

    it("Transfer-Encoding: chunked with Content-Length after it → 400", function()
      expect_rejected("POST /echo/tecl HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n" ..
                      "Content-Length: " .. (5 + #SMUGGLED) .. "\r\n\r\n0\r\n\r\n" .. SMUGGLED)
    end)

    it("Transfer-Encoding obs-folded onto a second line, with Content-Length → 400", function()
      expect_rejected("POST /echo/tefold HTTP/1.1\r\n" .. H .. "Transfer-Encoding:\r\n chunked\r\n" ..
                      "Content-Length: 5\r\n\r\n0\r\n\r\n" .. SMUGGLED)
    end)

    it("Transfer-Encoding with a vertical tab before chunked → 400/501", function()
      expect_rejected("POST /echo/tevt HTTP/1.1\r\n" .. H .. "Transfer-Encoding: \vchunked\r\n" ..
                      "Content-Length: 5\r\n\r\n0\r\n\r\n" .. SMUGGLED, { 400, 501 })
    end)

    it("Transfer-Encoding: xchunked → 400/501", function()
      expect_rejected("POST /echo/xchunked HTTP/1.1\r\n" .. H .. "Transfer-Encoding: xchunked\r\n" ..
                      "\r\n0\r\n\r\n" .. SMUGGLED, { 400, 501 })
    end)

    it("chunked applied twice (two Transfer-Encoding lines) → 400/501", function()
      expect_rejected("POST /echo/twice HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n" ..
                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, { 400, 501 })
    end)

    it("two different Content-Length headers → 400", function()
      expect_rejected("POST /echo/cl2 HTTP/1.1\r\n" .. H .. "Content-Length: 3\r\n" ..
                      "Content-Length: " .. (3 + #SMUGGLED) .. "\r\n\r\nabc" .. SMUGGLED)
    end)

    it("a Content-Length list with different values → 400", function()
      expect_rejected("POST /echo/cllist HTTP/1.1\r\n" .. H .. "Content-Length: 3, " ..
                      (3 + #SMUGGLED) .. "\r\n\r\nabc" .. SMUGGLED)
    end)

    for name, value in pairs { plus = "+3", inner_space = "3 3", hex = "0x3", decimal = "3.0",
                               obs_fold = "3\r\n 0" } do
      it("Content-Length " .. show(value) .. " (" .. name .. ") → 400", function()
        expect_rejected("POST /echo/clbad HTTP/1.1\r\n" .. H .. "Content-Length: " .. value ..
                        "\r\n\r\nabc" .. SMUGGLED)
      end)
    end

    it("a Content-Length that overflows 64 bits → 400/413", function()
      expect_rejected("POST /echo/clhuge HTTP/1.1\r\n" .. H ..
                      "Content-Length: 184467440737095516170\r\n\r\nabc", { 400, 413 })
    end)

    it("the same Content-Length twice → 400, or one request with that body", function()
      expect_one_or_rejected("POST /echo/cldup HTTP/1.1\r\n" .. H .. "Content-Length: 3\r\n" ..
                             "Content-Length: 3\r\n\r\nabc", function(rec)
        assert.equal("abc", rec.body)
        assert.equal("3", rec.env.CONTENT_LENGTH)
      end)
    end)

    it("a Content-Length list of equal values → 400, or one request with that body", function()
      expect_one_or_rejected("POST /echo/cldup2 HTTP/1.1\r\n" .. H .. "Content-Length: 3, 3\r\n\r\nabc",
                             function(rec) assert.equal("abc", rec.body) end)
    end)
  end)

  describe("header syntax", function()
    it("whitespace before the colon of Content-Length → 400", function()
      expect_rejected("POST /echo/wscl HTTP/1.1\r\n" .. H .. "Content-Length : 3\r\n\r\nabc" .. SMUGGLED)
    end)

    it("whitespace before the colon of Transfer-Encoding (with Content-Length) → 400", function()
      expect_rejected("POST /echo/wste HTTP/1.1\r\n" .. H .. "Transfer-Encoding : chunked\r\n" ..
                      "Content-Length: 5\r\n\r\n0\r\n\r\n" .. SMUGGLED)
    end)

    it("a tab before the colon of Host → 400", function()
      expect_rejected("GET /echo/wshost HTTP/1.1\r\nHost\t: x\r\n\r\n")
    end)

    it("obs-fold in an ordinary header → 400, or one request with the value unfolded", function()
      expect_one_or_rejected("GET /echo/fold HTTP/1.1\r\n" .. H .. "X-Folded: a\r\n b\r\n\r\n",
                             function(rec)
        assert.truthy((rec.env.HTTP_X_FOLDED or ""):match "^a[ \t]+b$",
                      "folded value: " .. show(rec.env.HTTP_X_FOLDED or "(none)"))
      end)
    end)

    it("a header line without a colon → 400", function()
      expect_rejected("GET /echo/nocolon HTTP/1.1\r\n" .. H .. "NoColonHere\r\n\r\n")
    end)

    it("an empty header name → 400", function()
      expect_rejected("GET /echo/noname HTTP/1.1\r\n" .. H .. ": value\r\n\r\n")
    end)

    it("a space inside a header name → 400", function()
      expect_rejected("GET /echo/spacename HTTP/1.1\r\n" .. H .. "X Y: value\r\n\r\n")
    end)

    it("HTTP/1.1 without Host → 400 (RFC 9112 §3.2)", function()
      expect_rejected("GET /echo/nohost HTTP/1.1\r\nX-A: b\r\n\r\n")
    end)

    it("two Host headers → 400 (RFC 9112 §3.2)", function()
      expect_rejected("GET /echo/twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    end)
  end)

  describe("bare CR and LF", function()
    it("a bare CR ending the request line → 400", function()
      expect_rejected("GET /echo/cr HTTP/1.1\r" .. H .. "\r\n")
    end)

    it("a bare CR inside the request target → 400", function()
      expect_rejected("GET /echo/a\rb HTTP/1.1\r\n" .. H .. "\r\n")
    end)

    it("a bare CR inside a header value → 400, or one request without it", function()
      expect_one_or_rejected("GET /echo/crvalue HTTP/1.1\r\n" .. H .. "X-A: a\rb\r\n\r\n")
    end)

    it("a bare CR ending a header line → 400", function()
      expect_rejected("POST /echo/crline HTTP/1.1\r\n" .. H .. "X-A: a\rContent-Length: 3\r\n\r\nabc" ..
                      SMUGGLED)
    end)

    it("bare LF line ends → 400, or one request", function()
      expect_one_or_rejected("GET /echo/lf HTTP/1.1\nHost: x\nX-A: b\n\n", function(rec)
        assert.equal("/echo/lf", rec.env.SCRIPT_NAME)
        assert.equal("b", rec.env.HTTP_X_A)
      end)
    end)

    it("mixed CRLF and bare LF line ends → 400, or one request", function()
      expect_one_or_rejected("POST /echo/mixed HTTP/1.1\r\nHost: x\nContent-Length: 3\r\nX-A: b\n\r\nabc",
                             function(rec)
        assert.equal("/echo/mixed", rec.env.SCRIPT_NAME)
        assert.equal("abc", rec.body)
      end)
    end)

    it("bare LF in chunked framing → 400, or one request with the right body", function()
      expect_one_or_rejected("POST /echo/lfchunk HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n" ..
                             "\r\n3\nabc\n0\n\n", function(rec) assert.equal("abc", rec.body) end)
    end)
  end)

  describe("chunked bodies", function()
    local function chunked(body)
      return "POST /echo/chunked HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n" .. body
    end

    it("a valid chunk extension is accepted (control)", function()
      expect_one_or_rejected(chunked "3;name=value\r\nabc\r\n2;q=\"a b\"\r\nde\r\n0\r\n\r\n",
                             function(rec) assert.equal("abcde", rec.body) end, {})
    end)

    for name, body in pairs {
      negative = "-3\r\nabc\r\n0\r\n\r\n",
      hex_prefix = "0x3\r\nabc\r\n0\r\n\r\n",
      empty_size = "\r\nabc\r\n0\r\n\r\n",
      leading_space = " 3\r\nabc\r\n0\r\n\r\n",
      letters = "3z\r\nabc\r\n0\r\n\r\n",
      nul_in_extension = "3;a=\0\r\nabc\r\n0\r\n\r\n",
      cr_in_extension = "3;a=b\rc\r\nabc\r\n0\r\n\r\n",
      data_too_long = "3\r\nabcde\r\n0\r\n\r\n",
      no_crlf_after_data = "3\r\nabc0\r\n\r\n",
    } do
      it("an invalid chunk (" .. name .. ") → 400", function()
        expect_rejected(chunked(body) .. SMUGGLED)
      end)
    end

    it("a chunk size that overflows 64 bits → 400/413", function()
      expect_rejected(chunked "1" .. ("0"):rep(20) .. "\r\nabc\r\n0\r\n\r\n", { 400, 413 })
    end)

    it("a 100 KB chunk extension → 400/413/431, bounded", function()
      expect_rejected(chunked("3;" .. ("e"):rep(100000) .. "\r\nabc\r\n0\r\n\r\n"), { 400, 413, 431 })
    end)
  end)

  describe("NUL and control bytes", function()
    for name, bytes in pairs {
      ["NUL in the target"] = "GET /echo/a\0b HTTP/1.1\r\n" .. H .. "\r\n",
      ["NUL in the query"] = "GET /echo/q?a=\0 HTTP/1.1\r\n" .. H .. "\r\n",
      ["NUL in the method"] = "G\0ET /echo/m HTTP/1.1\r\n" .. H .. "\r\n",
      ["NUL in the version"] = "GET /echo/v HTTP/1.1\0\r\n" .. H .. "\r\n",
      ["NUL in a header value"] = "GET /echo/hv HTTP/1.1\r\n" .. H .. "X-A: a\0b\r\n\r\n",
      ["NUL in a header name"] = "GET /echo/hn HTTP/1.1\r\n" .. H .. "X-\0A: b\r\n\r\n",
      ["NUL in Host"] = "GET /echo/hh HTTP/1.1\r\nHost: x\0y\r\n\r\n",
      ["a control byte in the target"] = "GET /echo/a\1b HTTP/1.1\r\n" .. H .. "\r\n",
      ["DEL in the target"] = "GET /echo/a\127b HTTP/1.1\r\n" .. H .. "\r\n",
      ["a tab in the target"] = "GET /echo/a\tb HTTP/1.1\r\n" .. H .. "\r\n",
      ["a space in the target"] = "GET /echo/a b HTTP/1.1\r\n" .. H .. "\r\n",
      ["a control byte in a header name"] = "GET /echo/cn HTTP/1.1\r\n" .. H .. "X-\1A: b\r\n\r\n",
    } do
      it(name .. " → 400", function()
        expect_rejected(bytes)
      end)
    end

    for name, value in pairs { SOH = "a\1b", ESC = "\27[31mred", BS = "a\8b" } do
      it("a control byte (" .. name .. ") in a header value → 400, or one well-formed request",
         function()
        expect_one_or_rejected("GET /echo/ctl HTTP/1.1\r\n" .. H .. "X-Ctl: " .. value .. "\r\n\r\n")
      end)
    end

    it("%00 in the path → 400, or one request whose netstring is intact", function()
      expect_one_or_rejected("GET /echo/a%00b HTTP/1.1\r\n" .. H .. "\r\n")
    end)

    it("%00 in the path of a PATH_INFO route → 400, or an intact netstring", function()
      expect_one_or_rejected("GET /pi/a%00b/c HTTP/1.1\r\n" .. H .. "\r\n")
    end)

    it("%00 in the query → passed raw, the netstring intact", function()
      expect_one_or_rejected("GET /echo/q?x=%00 HTTP/1.1\r\n" .. H .. "\r\n", function(rec)
        assert.equal("x=%00", rec.env.QUERY_STRING)
      end)
    end)
  end)

  describe("request targets", function()
    it("absolute-form → 400, or routed on its path", function()
      expect_one_or_rejected("GET http://elsewhere.example/echo/abs?q=1 HTTP/1.1\r\n" .. H .. "\r\n",
                             function(rec)
        assert.equal("/echo/abs", rec.env.SCRIPT_NAME)
        assert.equal("q=1", rec.env.QUERY_STRING)
      end)
    end)

    it("absolute-form cannot bypass /admin/'s access hook", function()
      for _, target in ipairs { "http://x/admin/secret", "HTTP://X/admin/secret",
                                "http://x:80/admin/secret" } do
        expect_rejected("GET " .. target .. " HTTP/1.1\r\n" .. H .. "Connection: close\r\n\r\n",
                        { 400, 403 }, true)
      end
    end)

    it("a target without a leading slash → 400", function()
      expect_rejected("GET echo/relative HTTP/1.1\r\n" .. H .. "\r\n")
    end)

    it("CONNECT (authority-form) is never forwarded", function()
      expect_rejected("CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443\r\n\r\n",
                      { 400, 405, 501 }, true)
    end)

    for _, target in ipairs {
      "/echo/../admin/x", "/echo/%2e%2e/admin/x", "/echo/%2E%2E/admin/x", "/echo/.%2e/admin/x",
      "/echo/..%2fadmin/x", "/echo/..%2Fadmin/x", "/admin%2fx", "/%61dmin/x", "/echo/./../admin/x",
      "/../../../etc/passwd", "/echo/%252e%252e/admin/x", "/pi/..%2f..%2fadmin/x", "/pi/../../admin/x",
      "/echo/..", "/echo/%2e%2e",
    } do
      it("the path " .. target .. " stays confined", function()
        expect_confined(target)
      end)
    end
  end)

  describe("limits", function()
    it("a 20 KB request line → 400/414/431", function()
      expect_rejected("GET /echo/" .. ("l"):rep(20000) .. " HTTP/1.1\r\n" .. H .. "\r\n", { 400, 414, 431 })
    end)

    it("a 64 KB header line → 431", function()
      expect_rejected("GET /echo/longline HTTP/1.1\r\n" .. H .. "X-Long: " .. ("v"):rep(65536) ..
                      "\r\n\r\n", { 431 })
    end)

    it("a 10 KB header name → 400/431", function()
      expect_rejected("GET /echo/longname HTTP/1.1\r\n" .. H .. ("N"):rep(10240) .. ": v\r\n\r\n",
                      { 400, 431 })
    end)

    it("a 1 MB head that never ends a line → 400/431 before it is all sent", function()
      local base = rss_kb(gw.pid)
      expect_rejected("GET /echo/endless HTTP/1.1\r\n" .. H .. "X-Endless: " .. ("e"):rep(1024 * 1024),
                      { 400, 431 })
      local growth = rss_kb(gw.pid) - base
      assert.is_true(growth < RSS_GROWTH_KB, "gateway RSS grew by " .. growth .. " KiB")
    end)

    it("1000 headers → 431", function()
      expect_rejected("GET /echo/many HTTP/1.1\r\n" .. H .. ("A: b\r\n"):rep(1000) .. "\r\n", { 431 })
    end)
  end)

  it("is still alive and serving", function()
    assert.is_true(gw:alive())
    assert.equal(200, assert(gw:request { path = "/echo/final", timeout = 5 }).status)
  end)
end)

---------------------------------------------------------------------------------------------
describe("hardening: slow and abusive clients #integration", function()
  local gw, echo, flood

  lazy_setup(function()
    echo = helpers.scgi_backend()
    -- streams 200 MiB (64 KiB at a time) and records how far it got and why it stopped
    flood = helpers.scgi_backend { handler = [[
      function(req, sock)
        sock:settimeout(1)
        local total, piece = 200 * 1024 * 1024, ("f"):rep(65536)
        local t_end = proc.now() + 20
        send_all(sock, "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n" ..
                       "Content-Length: " .. total .. "\r\n\r\n")
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
      end ]] }
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1, -- /proc/PID below is the one serving process
        access_log = false,
        timeouts = { client_header = 1, client_body = 1, send = 2, keepalive = 30, backend = 5 },
        limits = { connections = 15000 }, -- room for the 10,000 idle ones and the fresh client
        routes = {
          { path = "/hook/", pass = %q, access = function(req) return 200, "hooked" end },
          { path = "/flood/", pass = %q },
          { path = "/", pass = %q },
        },
      }]], echo.url, flood.url, echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
    if flood then flood:stop() end
  end)

  -- Drive `slow` connections with `tick(c)` every 0.1 s until each has an answer or is closed,
  -- serving a normal request per round. Returns per-connection outcomes and the worst latency.
  local function drive(slow, tick, timeout)
    local t0 = helpers.now()
    local outcome, worst, served = {}, 0, 0
    helpers.poll(function()
      local pending = 0
      for i, c in ipairs(slow) do
        if not outcome[i] then
          c:fill(helpers.now() + 0.001)
          if c.buf:find "\r\n\r\n" or c.eof then
            outcome[i] = { at = helpers.now() - t0, status = tonumber(c.buf:match "^HTTP/1%.%d (%d%d%d)"),
                           eof = c.eof }
          else
            tick(c)
            pending = pending + 1
          end
        end
      end
      if pending == 0 then return true end
      local t1 = helpers.now()
      local res = gw:request { path = "/echo/normal", timeout = 3 }
      assert.truthy(res and res.status == 200, "a normal request failed meanwhile")
      worst = math.max(worst, helpers.now() - t1)
      served = served + 1
    end, timeout, 0.1)
    return outcome, worst, served
  end

  it("slowloris heads get 408 after timeouts.client_header while others are served", function()
    local slow = {}
    finally(function() for _, c in ipairs(slow) do c:close() end end)
    for i = 1, 30 do
      slow[i] = assert(gw:connect(nil, { timeout = 5 }))
      assert(slow[i]:send "GET /echo/slowloris HTTP/1.1\r\nHost: x\r\n")
    end
    local outcome, worst, served = drive(slow, function(c) c:send "X-Drip: d\r\n" end, helpers.slack(6))
    for i = 1, #slow do
      local o = outcome[i]
      assert.truthy(o, "slow connection " .. i .. " was never cut off")
      assert.equal(408, o.status, "slow connection " .. i .. " got " .. show(slow[i].buf:sub(1, 40)))
      assert.is_true(o.at >= 0.7 and o.at < helpers.slack(3.5), "408 after " .. o.at .. " s (client_header = 1)")
    end
    assert.is_true(served >= 3, "only " .. served .. " normal requests served meanwhile")
    assert.is_true(worst < helpers.slack(1), "a normal request took " .. worst .. " s meanwhile")
  end)

  it("stalled bodies get 408 after timeouts.client_body while others are served", function()
    local slow = {}
    finally(function() for _, c in ipairs(slow) do c:close() end end)
    for i = 1, 20 do
      slow[i] = assert(gw:connect(nil, { timeout = 5 }))
      assert(slow[i]:send "POST /echo/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    end
    local outcome, worst, served = drive(slow, function() end, helpers.slack(6))
    for i = 1, #slow do
      local o = outcome[i]
      assert.truthy(o, "stalled connection " .. i .. " was never cut off")
      assert.equal(408, o.status, "stalled connection " .. i .. " got " .. show(slow[i].buf:sub(1, 40)))
      assert.is_true(o.at < helpers.slack(3.5), "408 after " .. o.at .. " s (client_body = 1)")
    end
    assert.is_true(served >= 3, "only " .. served .. " normal requests served meanwhile")
    assert.is_true(worst < helpers.slack(1), "a normal request took " .. worst .. " s meanwhile")
  end)

  it("a client that never reads a 200 MiB response is cut off by timeouts.send, memory bounded",
     function()
    assert.equal(200, assert(gw:request { path = "/echo/warm" }).status)
    local fds0 = fd_count(gw.pid)
    local base = rss_kb(gw.pid)
    local peak = base
    local c = assert(gw:connect(nil, { timeout = 5 }))
    finally(function() c:close() end)
    local t0 = helpers.now()
    assert(c:send "GET /flood/x HTTP/1.1\r\nHost: x\r\n\r\n")
    -- never read; the gateway must give up on us and on the backend
    local rec = helpers.poll(function()
      peak = math.max(peak, rss_kb(gw.pid))
      for _, r in ipairs(flood:requests()) do -- never cached: the handler reads no body
        if r.flood_done then return r end
      end
    end, 15, 0.05)
    local dt = helpers.now() - t0
    assert.truthy(rec, "the backend is still streaming after 15 s: the client was never cut off")
    assert.truthy(rec.send_error, "the backend sent all 200 MiB to a client that reads nothing")
    assert.is_true(rec.sent < 100 * 1024 * 1024, "the gateway took " .. rec.sent .. " bytes")
    assert.is_true(dt >= 1.5, "cut off after " .. dt .. " s, before timeouts.send = 2")
    local closed = helpers.poll(function()
      peak = math.max(peak, rss_kb(gw.pid))
      return fd_count(gw.pid) <= fds0
    end, 5)
    assert.truthy(closed, "the client connection is still open: " .. fd_count(gw.pid) .. " fds, " ..
                  fds0 .. " before")
    local growth = peak - base
    assert.is_true(growth < RSS_GROWTH_KB, "gateway RSS grew by " .. growth .. " KiB")
  end)

  -- One response on a connection whose descriptor may be past FD_SETSIZE (no select(2)):
  -- blocking reads with a timeout. Handles Content-Length bodies only.
  local function blocking_response(c, timeout)
    local sock = c.sock
    sock:settimeout(timeout)
    local line, err = sock:receive "*l"
    if not line then return nil, err end
    local status = tonumber(line:match "^HTTP/1%.%d (%d%d%d)")
    local len
    repeat
      line, err = sock:receive "*l"
      if not line then return nil, err end
      len = len or tonumber(line:lower():match "^content%-length:%s*(%d+)")
    until line == ""
    if not len then return nil, "no Content-Length" end
    local body
    body, err = sock:receive(len)
    if not body then return nil, err end
    return { status = status, body = body }
  end

  it("10,000 idle keep-alive connections (2,000 under a low ulimit) do not stop service to a new client", function()
    local limit = nofile_limit()
    local N = (limit and limit >= 10300) and 10000 or 2000
    if not limit or limit < N + 300 then
      pending("RLIMIT_NOFILE is " .. tostring(limit) .. ": need 2300 descriptors for 2000 idle " ..
              "connections (raise `ulimit -n`)")
      return
    end
    local idle, low = {}, {}
    finally(function()
      for _, f in ipairs(low) do f:close() end
      for _, c in ipairs(idle) do c:close() end
    end)
    -- keep a few low descriptor numbers free for the new client (select(2) needs < 1024)
    for i = 1, 8 do low[i] = assert(io.open("/dev/null")) end
    local req = helpers.build_request({ path = "/hook/idle" }, "x")
    for batch = 0, N / 100 - 1 do
      local conns = {}
      for i = 1, 100 do
        local c = assert(gw:connect(nil, { timeout = 5 }))
        idle[#idle + 1] = c
        conns[i] = c
        assert(c:send(req))
      end
      for i, c in ipairs(conns) do
        local res, err = blocking_response(c, 5)
        assert.truthy(res, "idle connection " .. (batch * 100 + i) .. ": " .. tostring(err))
        assert.equal(200, res.status)
      end
    end
    for _, f in ipairs(low) do f:close() end
    low = {}
    local t0 = helpers.now()
    local res = assert(gw:request { path = "/echo/fresh", timeout = 5 })
    local dt = helpers.now() - t0
    assert.equal(200, res.status)
    assert.is_true(dt < helpers.slack(1), "a new request took " .. dt .. " s with " .. N .. " idle connections")
    -- they really were held open: a few of them still answer
    for _, i in ipairs { 1, N / 2, N } do
      assert(idle[i]:send(helpers.build_request({ path = "/hook/again" }, "x")))
      local r, err = blocking_response(idle[i], 5)
      assert.truthy(r, "idle connection " .. i .. " is gone: " .. tostring(err))
      assert.equal(200, r.status)
    end
  end)
end)

---------------------------------------------------------------------------------------------
describe("hardening: limits.connections #integration", function()
  local gw, echo

  lazy_setup(function()
    echo = helpers.scgi_backend()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1, -- /proc/PID below is the one serving process
        access_log = false,
        timeouts = { client_header = 10, keepalive = 30 },
        limits = { connections = 4 },
        routes = {
          { path = "/hook/", pass = %q, access = function(req) return 200, "hooked" end },
          { path = "/", pass = %q },
        },
      }]], echo.url, echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
  end)

  it("holds new connections while at the limit without spinning, and resumes when one closes",
     function()
    local held, extra = {}, {}
    finally(function()
      for _, c in ipairs(held) do c:close() end
      for _, c in ipairs(extra) do c:close() end
    end)
    for i = 1, 4 do
      held[i] = assert(gw:connect(nil, { timeout = 5 }))
      assert.equal(200, assert(held[i]:request({ path = "/hook/held" }, "x")).status)
    end
    for i = 1, 2 do -- into the backlog, or refused: both fine
      local c = gw:connect(nil, { timeout = 2 })
      if c then
        extra[#extra + 1] = c
        c:send(helpers.build_request({ path = "/hook/extra" .. i }, "x"))
      end
    end
    -- over the limit for 2 s: nothing served beyond it, and the gateway is not busy-looping
    local cpu0, t0 = cpu_seconds(gw.pid), helpers.now()
    helpers.poll(function()
      for _, c in ipairs(extra) do c:fill(helpers.now() + 0.01) end
      return helpers.now() - t0 >= 2
    end, 3, 0.05)
    local cpu = cpu_seconds(gw.pid) - cpu0
    for _, c in ipairs(extra) do
      local status = tonumber(c.buf:match "^HTTP/1%.%d (%d%d%d)")
      assert.truthy(status == nil or status == 503,
                    "a connection beyond limits.connections was served: " .. show(c.buf:sub(1, 40)))
    end
    assert.is_true(cpu < helpers.slack(0.5), "the gateway used " .. cpu .. " s of CPU in 2 s while at the limit")
    assert.is_true(gw:alive())
    -- closing held connections lets the waiting ones (or new ones) in
    held[1]:close()
    held[2]:close()
    local waiting = 0
    for _, c in ipairs(extra) do
      if c.buf == "" and not c.eof then
        waiting = waiting + 1
        local res, err = c:read_response { timeout = 5 }
        assert.truthy(res, "a waiting connection was not served after others closed: " .. tostring(err))
        assert.equal(200, res.status)
      end
    end
    if waiting == 0 then
      for _, c in ipairs(extra) do c:close() end
      local res = assert(gw:request { path = "/hook/later", timeout = 5 })
      assert.equal(200, res.status)
    end
  end)
end)

---------------------------------------------------------------------------------------------
describe("hardening: no descriptor leak #integration", function()
  local gw, echo, broken, stream, refused_port

  lazy_setup(function()
    echo = helpers.scgi_backend()
    broken = helpers.scgi_backend { reply = "this is not a header block\r\n\r\nbody" }
    stream = helpers.scgi_backend { handler = [[
      function(req, sock)
        sock:settimeout(1)
        local piece = ("s"):rep(65536)
        if not send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n") then return end
        local t_end = proc.now() + 10
        for _ = 1, 128 do
          local ok, err = sock:send(piece)
          if not ok and err ~= "timeout" then return end
          if proc.now() > t_end then return end
        end
      end ]] }
    refused_port = helpers.free_port()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1, -- /proc/PID below is the one serving process
        access_log = false,
        log_level = "error",
        timeouts = { client_header = 1, client_body = 1, keepalive = 2, backend = 3, connect = 2,
                     send = 2 },
        routes = {
          { path = "/ok/", pass = %q },
          { path = "/broken/", pass = %q },
          { path = "/stream/", pass = %q },
          { path = "/refused/", pass = "scgi://127.0.0.1:%d/" },
        },
      }]], echo.url, broken.url, stream.url, refused_port))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    for _, b in ipairs { echo, broken, stream } do b:stop() end
  end)

  it("is back to its baseline of descriptors after 2000 requests with errors mixed in", function()
    local base = fd_count(gw.pid)
    local slow = {}
    finally(function() for _, c in ipairs(slow) do c:close() end end)
    -- 408s from short timeouts, expiring while the rest runs
    for i = 1, 20 do
      local c = assert(gw:connect(nil, { timeout = 5 }))
      slow[#slow + 1] = c
      if i % 2 == 0 then
        assert(c:send "GET /ok/slow HTTP/1.1\r\nHost: x\r\n")
      else
        assert(c:send "POST /ok/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
      end
    end
    local counts = {}
    local function expect(status, res, err)
      assert.truthy(res, "no response: " .. tostring(err))
      assert.equal(status, res.status)
      counts[status] = (counts[status] or 0) + 1
    end
    for i = 1, 2000 do
      local kind = i % 10
      if kind <= 2 then
        expect(404, gw:request { path = "/nowhere/" .. i, timeout = 5 })
      elseif kind == 3 then
        expect(200, gw:request { path = "/ok/" .. i, timeout = 5 })
      elseif kind == 4 then
        expect(502, gw:request { path = "/broken/" .. i, timeout = 5 })
      elseif kind == 5 then
        expect(503, gw:request { path = "/refused/" .. i, timeout = 5 })
      elseif kind == 6 then -- gone in the middle of the head
        local c = assert(gw:connect(nil, { timeout = 5 }))
        c:send("GET /ok/" .. i .. " HTTP/1.1\r\nHost: x\r\nX-Half: ")
        c:close()
      elseif kind == 7 then -- gone in the middle of the body
        local c = assert(gw:connect(nil, { timeout = 5 }))
        c:send("POST /ok/" .. i .. " HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" .. ("b"):rep(1000))
        c:close()
      elseif kind == 8 then -- gone in the middle of the response
        local c = assert(gw:connect(nil, { timeout = 5 }))
        c:send("GET /stream/" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        helpers.poll(function() c:fill(helpers.now() + 0.05) return c.eof or #c.buf > 1000 end, 5, 0)
        c:close()
      else -- two keep-alive requests, then gone
        local c = assert(gw:connect(nil, { timeout = 5 }))
        expect(200, c:request({ path = "/ok/ka" .. i }, "x"))
        expect(404, c:request({ path = "/nowhere/ka" .. i }, "x"))
        c:close()
      end
    end
    for i, c in ipairs(slow) do
      local data = c:read_all(5)
      assert.truthy(data:match "^HTTP/1%.1 408", "slow connection " .. i .. ": " .. show(data:sub(1, 40)))
      c:close()
    end
    assert.is_true(gw:alive())
    local now_count
    local back = helpers.poll(function()
      now_count = fd_count(gw.pid)
      return now_count <= base + 2
    end, 10, 0.1)
    assert.truthy(back, "descriptors: " .. base .. " at start, " .. tostring(now_count) .. " now")
  end)
end)

---------------------------------------------------------------------------------------------
describe("hardening: Lua hooks that never return #integration", function()
  local echo

  lazy_setup(function()
    echo = helpers.scgi_backend()
  end)

  lazy_teardown(function()
    if echo then echo:stop() end
  end)

  local function start()
    local gw = helpers.start_gateway(string.format([[
      return {
        workers = 1, -- /proc/PID below is the one serving process
        access_log = false,
        routes = {
          { path = "/spin/", pass = %q, access = function(req) while true do end end },
          { path = "/hog/", pass = %q, access = function(req)
              local t, i = {}, 0
              while true do i = i + 1 t[i] = { i, tostring(i) } end
            end },
          { path = "/", pass = %q },
        },
      }]], echo.url, echo.url, echo.url))
    return gw
  end

  -- Wait for the answer on `c` (10 s), killing the gateway if its RSS passes `max_kb`.
  local function await(gw, c, max_kb)
    local peak = 0
    local got = helpers.poll(function()
      c:fill(helpers.now() + 0.05)
      local rss = rss_kb(gw.pid)
      peak = math.max(peak, rss)
      if max_kb and rss > max_kb then
        helpers.proc.kill(gw.pid, "KILL")
        return "killed"
      end
      return (c.eof or c.buf:find "\r\n\r\n") and "answered"
    end, 10, 0)
    return got, peak
  end

  it("an access hook that loops forever → 500 within seconds; others are served", function()
    local gw = start()
    local mark = gw:log_mark()
    local a = assert(gw:connect(nil, { timeout = 10 }))
    local b = assert(gw:connect(nil, { timeout = 10 }))
    finally(function() a:close() b:close() gw:stop(2) end)
    local t0 = helpers.now()
    assert(a:send "GET /spin/x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert(b:send "GET /echo/during HTTP/1.1\r\nHost: x\r\n\r\n")
    local got = await(gw, a)
    assert.equal("answered", got, "no answer in 10 s: the hook was never stopped")
    local res = assert(a:read_response { timeout = 1 })
    assert.equal(500, res.status)
    assert.is_true(helpers.now() - t0 < 10)
    local res_b = assert(b:read_response { timeout = 10 })
    assert.equal(200, res_b.status)
    assert.truthy(gw:wait_log("/spin/", 3, { from = mark, plain = true }), "no log line for the hook")
    assert.is_true(gw:alive())
    assert.equal(200, assert(gw:request { path = "/echo/after", timeout = 5 }).status)
  end)

  it("an access hook that allocates without bound → 500 within seconds; others are served",
     function()
    local gw = start()
    local mark = gw:log_mark()
    local a = assert(gw:connect(nil, { timeout = 10 }))
    finally(function() a:close() gw:stop(2) end)
    assert(a:send "GET /hog/x HTTP/1.1\r\nHost: x\r\n\r\n")
    local got, peak = await(gw, a, (SANITIZED and 3072 or 1024) * 1024)
    assert.are_not.equal("killed", got, "the gateway passed 1 GiB of RSS; killed")
    assert.equal("answered", got, "no answer in 10 s: the hook was never stopped (gateway RSS peaked at "
                 .. math.floor(peak / 1024) .. " MiB)")
    local res = assert(a:read_response { timeout = 1 })
    assert.equal(500, res.status)
    assert.truthy(gw:wait_log("/hog/", 3, { from = mark, plain = true }), "no log line for the hook")
    assert.is_true(gw:alive())
    assert.equal(200, assert(gw:request { path = "/echo/after", timeout = 5 }).status)
  end)
end)
