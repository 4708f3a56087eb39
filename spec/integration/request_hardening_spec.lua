-- Request hardening II (README "Requests", scgi-lua(8) LIMITS): what the gateway makes of a
-- request head before any route sees it. Malformed header lines never take the process down
-- (whatever follows them); field values lose their surrounding whitespace; Host and the
-- absolute-form authority are validated and the authority wins; HTTP/1.0 with
-- Transfer-Encoding, CONNECT, empty Connection list elements, over-long targets and the real
-- limits.header_bytes; path spellings that must not sidestep an access hook or status.allow;
-- and an access log that escapes what clients send.

local helpers = require "spec.helpers"
local proc = helpers.proc

local function show(s) return string.format("%q", s) end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local SMUGGLED = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"

-- Sends `bytes` on a fresh connection; returns the first final response and whether the
-- gateway closed the connection after it (with whatever else it sent meanwhile).
local function exchange(gw, bytes, opts)
  opts = opts or {}
  local c = assert(gw:connect(nil, { timeout = 5 }))
  local res, err = c:exchange(bytes, { timeout = 5, head = opts.head })
  local closed = res and c:closed(opts.close_wait or 3)
  local rest = c.buf
  c:close()
  return res, err, closed, rest
end

-- The backend's view of the request (the default echo answer: NAME=VALUE lines).
local function env_of(res)
  return (helpers.parse_env_lines(res.body or ""))
end

local function routing_path(env)
  return (env.SCRIPT_NAME or "") .. (env.PATH_INFO or "")
end

local function lines_of(path)
  local out = {}
  for line in (proc.read_file(path) or ""):gmatch "([^\n]*)\n" do out[#out + 1] = line end
  return out
end

local function wait_line(path, needle, timeout)
  return helpers.poll(function()
    for _, l in ipairs(lines_of(path)) do
      if l:find(needle, 1, true) then return l end
    end
  end, timeout or 5)
end

---------------------------------------------------------------------------------------------
describe("request hardening: malformed header lines #integration", function()
  local echo, gw, gw_fmt

  lazy_setup(function()
    echo = helpers.scgi_backend()
    -- the default access log line reads User-Agent and Referer of every request, a 400 too
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = "{DIR}/access.log",
        routes = { { path = "/", pass = %q } },
      }]], echo.url))
    -- a log_format reads every field of the req table
    gw_fmt = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = "{DIR}/access.log",
        log_format = function(req, res)
          local hs = {}
          for k, v in pairs(req.headers or {}) do hs[#hs + 1] = k .. "=" .. tostring(v) end
          table.sort(hs)
          return table.concat({ "FMT", tostring(req.method), tostring(req.uri), tostring(req.path),
                                tostring(req.query), tostring(req.host), res.status,
                                table.concat(hs, ",") }, " ")
        end,
        routes = { { path = "/", pass = %q } },
      }]], echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if gw_fmt then gw_fmt:stop() end
    if echo then echo:stop() end
  end)

  local BAD = {
    ["a space in the name"] = "X Bad: v",
    ["a space before the colon"] = "X-Bad : v",
    ["a tab before the colon"] = "X-Bad\t: v",
    ["a line starting with a space"] = " X-Bad: v",
    ["a line starting with a tab"] = "\tX-Bad: v",
    ["a line without a colon"] = "X-Bad",
  }
  local AFTER = "User-Agent: ua/1.0\r\nReferer: http://ref.example/\r\nConnection: keep-alive\r\n"
  local POSITIONS = {
    first = function(bad) return "GET /p HTTP/1.1\r\n" .. bad .. "\r\nHost: x\r\n" .. AFTER .. "\r\n" end,
    middle = function(bad)
      return "GET /p HTTP/1.1\r\nHost: x\r\nX-Before: 1\r\n" .. bad .. "\r\n" .. AFTER .. "\r\n"
    end,
    last = function(bad) return "GET /p HTTP/1.1\r\nHost: x\r\n" .. AFTER .. bad .. "\r\n\r\n" end,
    only_followed_by_ua = function(bad)
      return "GET /p HTTP/1.1\r\nHost: x\r\n" .. bad .. "\r\nUser-Agent: ua/1.0\r\n\r\n"
    end,
  }

  for _, which in ipairs { "default access log", "log_format" } do
    for kind, bad in pairs(BAD) do
      for pos, build in pairs(POSITIONS) do
        it(which .. ": " .. kind .. " (" .. pos .. ") → 400, and the gateway serves on", function()
          local g = which == "log_format" and gw_fmt or gw
          local res, err, closed = exchange(g, build(bad))
          assert.truthy(res, "no response: " .. tostring(err))
          assert.equal(400, res.status)
          assert.is_true(closed, "the connection stayed open after a 400")
          assert.is_true(g:alive(), "the gateway died")
          local ok = assert(g:request { path = "/next", timeout = 5 })
          assert.equal(200, ok.status)
          assert.is_true(g:alive(), "the gateway died")
        end)
      end
    end
  end

  it("logs the 400 with the fields it could read", function()
    local ua = "bad-line-agent/" .. os.time()
    local res = exchange(gw, "GET /logged HTTP/1.1\r\nHost: x\r\nX Bad: v\r\nUser-Agent: " .. ua ..
                              "\r\n\r\n")
    assert.equal(400, res.status)
    local line = wait_line(gw.dir .. "/access.log", "/logged")
    assert.truthy(line, "no access log line for the 400")
    assert.truthy(line:find('" 400 ', 1, true), line)
  end)
end)

---------------------------------------------------------------------------------------------
describe("request hardening: field values, Host, targets, framing #integration", function()
  local echo, gw

  lazy_setup(function()
    echo = helpers.scgi_backend()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = false,
        limits = { header_bytes = 4096 },
        routes = {
          { path = "/local/", pass = %q, access = function(req) return 200, "local" end },
          { path = "/", pass = %q },
        },
      }]], echo.url, echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
  end)

  -- rejected with one of `statuses`, connection closed, the backend saw nothing
  local function expect_rejected(bytes, statuses)
    local n0 = echo:count()
    local res, err, closed, rest = exchange(gw, bytes)
    assert.truthy(res, "no response: " .. tostring(err))
    assert.truthy(contains(statuses or { 400 }, res.status),
                  "status " .. res.status .. ", expected " .. table.concat(statuses or { 400 }, "/"))
    assert.is_true(closed, "the connection stayed open")
    assert.is_nil(rest:find("HTTP/1.", 1, true), "a second response followed: " .. show(rest))
    -- a later request on a fresh connection is answered only after anything earlier arrived
    assert.equal(200, assert(gw:request { path = "/sentinel", timeout = 5 }).status)
    local recs = echo:requests()
    for i = n0 + 1, #recs do
      assert.equal("/sentinel", recs[i].env.REQUEST_URI,
                   "the backend received " .. show(recs[i].env.REQUEST_URI or "?"))
    end
    return res
  end

  local function served(bytes)
    local res, err = exchange(gw, bytes)
    assert.truthy(res, "no response: " .. tostring(err))
    assert.equal(200, res.status, res.body)
    return env_of(res), res
  end

  describe("whitespace around field values (RFC 9110 §5.5)", function()
    it("Host: a.example followed by spaces and a tab → SERVER_NAME a.example", function()
      local env = served("GET /ows HTTP/1.1\r\nHost: a.example \t\r\nConnection: close\r\n\r\n")
      assert.equal("a.example", env.SERVER_NAME)
    end)

    it("an ordinary header value loses leading and trailing whitespace", function()
      local env = served("GET /ows2 HTTP/1.1\r\nHost: x\r\nX-Pad:  \t v a l \t \r\nConnection: close\r\n\r\n")
      assert.equal("v a l", env.HTTP_X_PAD)
    end)

    it("Expect: 100-continue with a trailing space still gets its 100", function()
      local res = exchange(gw, "POST /expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue \r\n" ..
                               "Content-Length: 3\r\nConnection: close\r\n\r\nabc")
      assert.equal(200, res.status)
      assert.equal(1, #res.interim, "no 100 Continue")
      assert.equal(100, res.interim[1].status)
    end)

    it("Content-Type with trailing whitespace reaches the backend without it", function()
      local env = served("POST /ct HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain \r\n" ..
                         "Content-Length: 1\r\nConnection: close\r\n\r\nz")
      assert.equal("text/plain", env.CONTENT_TYPE)
    end)
  end)

  describe("Host (RFC 9112 §3.2)", function()
    for _, bad in ipairs { "example.com/\\:552", "../123.org", "localhost:80 x", "a..b", ".a",
                           "a b", "a/b", "a\\b", "a@b", "a%2eb", "a:b", "a:99999", "a:-1",
                           "[::1", "[zz::1]", "[::1]x", "[::1]:8x", "::1", "a,b", "a:80:80" } do
      it("Host: " .. bad .. " → 400", function()
        expect_rejected("GET /host HTTP/1.1\r\nHost: " .. bad .. "\r\n\r\n")
      end)
    end

    it("an invalid Host with an absolute-form target → 400", function()
      expect_rejected("GET http://a.example/x HTTP/1.1\r\nHost: ../x\r\n\r\n")
    end)

    for _, case in ipairs {
      { "a.example", "a.example" }, { "a.example:8080", "a.example" }, { "A-b_c.Example", "A-b_c.Example" },
      { "127.0.0.1:80", "127.0.0.1" }, { "[::1]:8080", "[::1]" }, { "[2001:db8::1]", "[2001:db8::1]" },
      { "a.example.", "a.example" }, { "localhost:", "localhost" },
    } do
      it("Host: " .. case[1] .. " → SERVER_NAME " .. case[2], function()
        local env = served("GET /host HTTP/1.1\r\nHost: " .. case[1] .. "\r\nConnection: close\r\n\r\n")
        assert.equal(case[2], env.SERVER_NAME)
      end)
    end

    it("HTTP/1.0 without Host is served", function()
      local env = served "GET /h10 HTTP/1.0\r\n\r\n"
      assert.equal("/h10", env.REQUEST_URI)
    end)
  end)

  describe("absolute-form targets (RFC 9112 §3.2.2)", function()
    it("the authority in the target wins over Host", function()
      local env = served("GET http://a.example/abs HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
      assert.equal("a.example", env.SERVER_NAME)
      assert.equal("/abs", env.SCRIPT_NAME)
    end)

    it("https and a port: the host without the port", function()
      local env = served("GET HTTPS://a.example:8443/s?x=1 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
      assert.equal("a.example", env.SERVER_NAME)
      assert.equal("/s", env.SCRIPT_NAME)
      assert.equal("x=1", env.QUERY_STRING)
    end)

    it("http://h?q=1 keeps its query and routes as /", function()
      local env = served("GET http://h.example?q=1 HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n")
      assert.equal("q=1", env.QUERY_STRING)
      assert.equal("/", env.SCRIPT_NAME)
      assert.equal("h.example", env.SERVER_NAME)
    end)

    it("an IPv6 authority", function()
      local env = served("GET http://[::1]:81/v6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.equal("[::1]", env.SERVER_NAME)
    end)

    for _, target in ipairs { "ftp://a.example/x", "gopher://a.example/", "httpx://a.example/",
                              "http:/a.example/x", "http:///x", "http://user@a.example/x",
                              "http://a.example:8x/", "http://../x", "mailto:a@b", "*" } do
      it("target " .. target .. " → 400", function()
        expect_rejected("GET " .. target .. " HTTP/1.1\r\nHost: a.example\r\n\r\n")
      end)
    end
  end)

  describe("framing", function()
    it("Transfer-Encoding in HTTP/1.0 → 400 and close; the pipelined request is not served", function()
      expect_rejected("POST /te10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" ..
                      SMUGGLED)
    end)

    it("Transfer-Encoding with Connection: keep-alive in HTTP/1.0 → 400 and close", function()
      expect_rejected("POST /te10ka HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n" ..
                      "\r\n0\r\n\r\n" .. SMUGGLED)
    end)

    it("CONNECT with a Content-Length body → 501 and close; the body is not a request", function()
      expect_rejected("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nContent-Length: " ..
                      #SMUGGLED .. "\r\n\r\n" .. SMUGGLED, { 501 })
    end)

    it("CONNECT with a chunked body → 501 and close; the body is not a request", function()
      expect_rejected("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n" ..
                      "Transfer-Encoding: chunked\r\n\r\n" .. helpers.chunked(SMUGGLED) .. SMUGGLED,
                      { 501 })
    end)

    it("CONNECT followed by a pipelined request → 501 and close", function()
      expect_rejected("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n" .. SMUGGLED, { 501 })
    end)

    for _, value in ipairs { ",close", " , close", "foo,,close", "keep-alive, ,close", "CLOSE," } do
      it("Connection: " .. value .. " closes", function()
        local res, err, closed = exchange(gw, "GET /conn HTTP/1.1\r\nHost: x\r\nConnection: " ..
                                              value .. "\r\n\r\n")
        assert.truthy(res, err)
        assert.equal(200, res.status)
        assert.equal("close", (res.headers.connection or ""):lower())
        assert.is_true(closed, "the connection stayed open")
      end)
    end

    it("HTTP/1.0 with Connection: ,keep-alive stays open", function()
      -- a gateway-made answer: it has a Content-Length, so HTTP/1.0 can be kept alive
      local c = assert(gw:connect(nil, { timeout = 5 }))
      finally(function() c:close() end)
      local res = assert(c:exchange("GET /local/ka1 HTTP/1.0\r\nConnection: ,keep-alive\r\n\r\n"))
      assert.equal(200, res.status)
      assert.equal("keep-alive", (res.headers.connection or ""):lower())
      local res2 = assert(c:exchange("GET /local/ka2 HTTP/1.0\r\n\r\n"))
      assert.equal(200, res2.status)
      assert.equal("local", res2.body)
    end)
  end)

  describe("limits", function()
    it("a request-target longer than limits.header_bytes → 414 (RFC 9112 §3)", function()
      expect_rejected("GET /" .. ("t"):rep(5000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", { 414 })
    end)

    it("a request-target that fills the limit exactly, in pieces → 414", function()
      local c = assert(gw:connect(nil, { timeout = 5 }))
      finally(function() c:close() end)
      local target = "/" .. ("u"):rep(4200)
      for i = 1, #target, 700 do assert(c:send(("GET " .. target):sub(i, i + 699))) end
      local res = assert(c:exchange(" HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.equal(414, res.status)
    end)

    it("many header bytes after a short target → 431", function()
      expect_rejected("GET /h HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("b"):rep(5000) .. "\r\n\r\n", { 431 })
    end)

    it("a 100 KB chunk extension → 400/431, bounded", function()
      expect_rejected("POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;" ..
                      ("e"):rep(100000) .. "\r\nabc\r\n0\r\n\r\n", { 400, 431 })
    end)

    it("a 100 KB trailer section → 400/431, bounded", function()
      expect_rejected("POST /trl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" ..
                      ("X-T: " .. ("t"):rep(1000) .. "\r\n"):rep(100) .. "\r\n", { 400, 431 })
    end)
  end)
end)

---------------------------------------------------------------------------------------------
describe("request hardening: limits.header_bytes up to its maximum #integration", function()
  local echo, gw

  lazy_setup(function()
    echo = helpers.scgi_backend()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = false,
        limits = { header_bytes = 1048576 },
        routes = { { path = "/", pass = %q } },
      }]], echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
  end)

  it("a 900 KB head is served (http-parser's own 80 KiB cap does not answer first)", function()
    local res = assert(gw:request { path = "/big", timeout = 10,
                                    headers = { ["X-Big"] = ("b"):rep(900 * 1024) } })
    assert.equal(200, res.status)
    assert.equal(900 * 1024, #(env_of(res).HTTP_X_BIG or ""))
  end)

  it("a 200 KB request-target is served", function()
    local res = assert(gw:request { path = "/" .. ("p"):rep(200 * 1024), timeout = 10 })
    assert.equal(200, res.status)
  end)

  it("a head over 1 MiB → 431", function()
    local res = assert(gw:request { path = "/huge", timeout = 10,
                                    headers = { ["X-Big"] = ("b"):rep(1048576) } })
    assert.equal(431, res.status)
  end)
end)

---------------------------------------------------------------------------------------------
describe("request hardening: path spellings #integration", function()
  local echo, admin, gw

  lazy_setup(function()
    echo = helpers.scgi_backend()
    admin = helpers.scgi_backend { reply = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nFROM-THE-ADMIN-BACKEND" }
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = false,
        status = { allow = { "192.0.2.1" } }, -- not the test client
        routes = {
          { path = "/admin/", pass = %q, access = function(req) return 403, "admin is closed" end },
          { path = "/raw/", pass = %q, allow_encoded_slashes = true },
          { path = "/", pass = %q },
        },
      }]], admin.url, echo.url, echo.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
    if admin then admin:stop() end
  end)

  local function get(target)
    local res, err = exchange(gw, "GET " .. target .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.truthy(res, "no response for " .. target .. ": " .. tostring(err))
    assert.is_nil(res.body:find("FROM-THE-ADMIN-BACKEND", 1, true), target .. " reached the admin backend")
    return res
  end

  -- the request never got past /admin/'s hook, by any route
  local function denied(target, statuses)
    local res = get(target)
    assert.truthy(contains(statuses or { 403 }, res.status),
                  target .. ": status " .. res.status .. " " .. show(res.body:sub(1, 200)))
  end

  -- served, or refused, but what the backend sees is not under /admin/
  local function confined(target)
    local res = get(target)
    if res.status == 200 then
      local p = routing_path(env_of(res))
      assert.is_nil(p:find "^/admin/", target .. " reached " .. p .. " past the hook")
      assert.is_nil(p:find "//", target .. ": an empty segment reached the backend: " .. p)
      assert.is_nil(p:find "/%.%.?/" or p:find "/%.%.?$", target .. ": a dot segment: " .. p)
    else
      assert.truthy(contains({ 400, 403, 404 }, res.status), target .. ": status " .. res.status)
    end
  end

  for _, t in ipairs {
    "/admin/x", "//admin/x", "///admin/x", "/admin//x", "/./admin/x", "/.//admin/x",
    "/x/../admin/x", "/x//../admin/x", "/x/%2e%2e/admin/x", "/x/%2E%2E/admin/x", "/x/%2e%2E/admin/x",
    "/x/.%2E/admin/x", "/%2e/admin/x", "/%2E//admin/x", "/%61dmin/x", "/%61%64%6D%69%6e/x",
    "/admin/x/.", "/admin/x/..", "/admin/.", "/admin/x/%2e", "/raw/../admin/x", "/raw//..//admin/x",
    "/raw/.%2e/admin/x", "/admin%2F", "/admin/%2e%2e%2Fx", "/admin/..%2Fx", "/admin/..%2fx",
    "/x%2Fy/../admin/x",
  } do
    it(t .. " never gets past /admin/'s access hook", function()
      denied(t, { 403, 404 })
    end)
  end

  for _, t in ipairs {
    "/x/..%2Fadmin/x", "/x/..%2fadmin/x", "/x/%2e%2e%2fadmin/x", "/x/%2E%2E%2Fadmin/x",
    "/admin%2Fx", "/%2Fadmin/x", "/x/..%5Cadmin/x", "/x/..%5cadmin/x", "/x/..\\admin/x",
    "/\\admin/x", "/ADMIN/x", "/Admin/x", "/%41dmin/x", "/admin./x", "/admin%20/x",
    "/raw/..%2F..%2Fadmin/x", "/raw/%2e%2e%2F%2e%2e%2Fadmin/x", "/admin/..", "/admin/../x",
  } do
    it(t .. " is confined", function()
      confined(t)
    end)
  end

  it("an encoded slash is refused with 404 where the route does not allow it", function()
    assert.equal(404, get("/a%2Fb").status)
    assert.equal(404, get("/a%2fb").status)
  end)

  it("a route with allow_encoded_slashes keeps %2F encoded, not a separator", function()
    local res = get "/raw/a%2fb/..%2Fc"
    assert.equal(200, res.status)
    assert.equal("/raw/a%2Fb/..%2Fc", routing_path(env_of(res)))
  end)

  it("slashes are merged for routing and for what the backend sees", function()
    local res = get "//raw///a//b/"
    assert.equal(200, res.status)
    local env = env_of(res)
    assert.equal("/raw/a/b/", routing_path(env))
    assert.equal("//raw///a//b/", env.REQUEST_URI, "REQUEST_URI is the raw target")
  end)

  for _, t in ipairs {
    "/.well-known/scgi-lua/status", "//.well-known/scgi-lua/status",
    "/.well-known//scgi-lua/status", "/.well-known/./scgi-lua/status",
    "/x/../.well-known/scgi-lua/status", "/%2ewell-known/scgi-lua/status",
    "/.well-known/x/../scgi-lua/status", "/.well-known/scgi-lua/x/../status",
    "/.well-known/scgi-lua/%73tatus", "http://x//.well-known/scgi-lua/status",
  } do
    it(t .. " is refused by status.allow", function()
      local res = get(t)
      assert.equal(403, res.status, t .. ": " .. show(res.body:sub(1, 200)))
    end)
  end

  for _, t in ipairs { "/.well-known%2Fscgi-lua/status", "/.well-known/scgi-lua%2Fstatus",
                       "/.WELL-KNOWN/scgi-lua/status", "/.well-known/scgi-lua/status/." } do
    it(t .. " does not show the status page", function()
      local res = get(t)
      assert.is_nil(res.body:find("generation", 1, true), t .. ": " .. show(res.body:sub(1, 200)))
      assert.truthy(res.status == 404 or (res.status == 200 and res.body:find("SCGI=1", 1, true)),
                    t .. ": status " .. res.status)
    end)
  end
end)

---------------------------------------------------------------------------------------------
describe("request hardening: access log escaping #integration", function()
  local echo, gw, log_path

  lazy_setup(function()
    echo = helpers.scgi_backend()
    gw = helpers.start_gateway(string.format([[
      return {
        workers = 1,
        access_log = "{DIR}/access.log",
        routes = { { path = "/", pass = %q } },
      }]], echo.url))
    log_path = gw.dir .. "/access.log"
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if echo then echo:stop() end
  end)

  it("escapes quotes, backslashes and control bytes in the request line, referer and agent", function()
    local res = exchange(gw, 'GET /esc/"q"\\b?x="1" HTTP/1.1\r\nHost: x\r\n' ..
                             'User-Agent: agent "007" \\ tab\there \128\r\n' ..
                             'Referer: http://r.example/"\\\r\nConnection: close\r\n\r\n')
    assert.equal(200, res.status)
    local line = wait_line(log_path, "/esc/")
    assert.truthy(line, "no access log line")
    assert.truthy(line:find('"GET /esc/\\x22q\\x22\\x5Cb?x=\\x221\\x22 HTTP/1.1"', 1, true), line)
    assert.truthy(line:find('"agent \\x22007\\x22 \\x5C tab\\x09here \\x80"', 1, true), line)
    assert.truthy(line:find('"http://r.example/\\x22\\x5C"', 1, true), line)
    -- exactly the six quotes of the format are left
    local _, quotes = line:gsub('"', "")
    assert.equal(6, quotes, line)
  end)
end)
