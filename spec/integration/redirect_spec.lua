-- README "X-Sendfile and internal redirects" and scgi-lua(8) "Routes" (route `internal_redirect`):
-- a 200 whose Location (or a configured header) starts with "/" is routed again through the route
-- table as a GET (HEAD stays HEAD) without body. Header on/off/custom name and stripping,
-- pass-through cases, Set-Cookie carried over, REDIRECT_STATUS / REDIRECT_REQUEST_URI and no
-- REDIRECT_URL, chains across backends and a balancer, the 10-redirect limit and loops (500 + log),
-- HEAD, keep-alive, and a Django-style mount (X-Location, proxy-scgi-pathinfo).

local helpers = require "spec.helpers"
local serialize = require "spec.helpers.serialize"

-- Source of a fake application named `name`. `script` maps a request path (REQUEST_URI
-- without query) to { head = { header lines }, body = "...", endless = true }. Unscripted paths
-- answer 200 with "<name>\n", the variables as NAME=VALUE lines and "BODY=<request body>".
-- A path ending in /count redirects to itself with n-1 while the query has n > 0.
-- Every answer carries X-Backend: <name>. `endless` streams a body until the gateway closes
-- the connection (recorded as req.send_error).
local function app_handler(name, script)
  return string.format([[
function(req, sock)
  local NAME, SCRIPT = %q, %s
  local e = req.env
  local path = e.REQUEST_URI:match "^[^?]*"
  local r = SCRIPT[path] or {}
  if r.endless then
    sock:settimeout(1)
    local ok, err = send_all(sock, table.concat(r.head, "\r\n") .. "\r\nX-Backend: " .. NAME .. "\r\n\r\n")
    local chunk, sent, t0 = ("x"):rep(65536), 0, socket.gettime()
    while ok and socket.gettime() - t0 < 20 do
      local last, serr = sock:send(chunk)
      if not last then ok, err = false, serr else sent = sent + #chunk end
    end
    req.sent, req.send_error = sent, err or "still open after 20 s"
    req:save()
    return
  end
  local body_in = req:read_body()
  local head = r.head
  if not head then
    head = { "Status: 200 OK" }
    local n, tag = (e.QUERY_STRING or ""):match "n=(%%d+)&t=(%%w+)"
    n = tonumber(n)
    if path:match "/count$" and n and n > 0 then
      head[2] = "Location: " .. path .. "?n=" .. (n - 1) .. "&t=" .. tag
    end
  end
  local body = r.body or (NAME .. "\n" .. env_lines(req) .. "BODY=" .. body_in .. "\n")
  send_all(sock, table.concat(head, "\r\n") .. "\r\nX-Backend: " .. NAME ..
           "\r\nContent-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
end]], name, serialize.value(script))
end

local FIRST_BODY = "first response body, to be discarded"

describe("internal redirect #integration", function()
  local A, B, gw
  local D, FILE

  lazy_setup(function()
    D = helpers.temp_dir "redirect"
    FILE = D .. "/served.txt"
    helpers.proc.write_file(FILE, "served by sendfile after a redirect")

    local function r(lines, body) return { head = lines, body = body or FIRST_BODY } end
    A = helpers.scgi_backend { handler = app_handler("A", {
      ["/app/start"] = r { "Status: 200 OK", "Location: /b/target?y=2", "X-First: 1" },
      ["/app/nostatus"] = r { "Location: /b/target?from=nostatus" },
      ["/app/to-same"] = r { "Status: 200 OK", "Location: /app/final-same" },
      ["/app/302"] = r { "Status: 302 Found", "Location: /b/target" },
      ["/app/201"] = r { "Status: 201 Created", "Location: /b/target" },
      ["/app/absolute"] = r { "Status: 200 OK", "Location: http://example.com/b/target" },
      ["/app/cookies"] = r { "Status: 200 OK", "Set-Cookie: s=1; Path=/", "Set-Cookie: t=2",
                             "Location: /b/cookie-final" },
      ["/app/post"] = r { "Status: 200 OK", "Location: /b/after-post?from=post" },
      ["/app/chain1"] = r { "Status: 200 OK", "Location: /b/chain2" },
      ["/app/chain3"] = r { "Status: 200 OK", "Location: /b/chain4?last=1" },
      ["/app/loop"] = r { "Status: 200 OK", "Location: /app/loop" },
      ["/app/nowhere"] = r { "Status: 200 OK", "Location: /nowhere/at/all" },
      ["/app/pool"] = r { "Status: 200 OK", "Location: /pool/member?z=1" },
      ["/app/encoded"] = r { "Status: 200 OK", "Location: /b/a%20b/c%2Bd?q=%41&r" },
      ["/app/sendfile"] = r { "Status: 200 OK", "Location: /sfb/file" },
      ["/app/to-django"] = r { "Status: 200 OK", "Location: /django/media/x.css?v=1" },
      ["/app/endless"] = { endless = true, head = { "Status: 200 OK", "Location: /b/after-endless" } },
      ["/off/start"] = r { "Status: 200 OK", "Location: /b/target" },
      ["/custom/x"] = r { "Status: 200 OK", "X-Location: /b/target?c=1", "X-First: 1" },
      ["/custom/lower"] = r { "Status: 200 OK", "x-location: /b/target?c=2" },
      ["/custom/loc"] = r { "Status: 200 OK", "Location: /b/target" },
      ["/custom/abs"] = r { "Status: 200 OK", "X-Location: http://example.com/x" },
      ["/custom/both"] = r { "Status: 200 OK", "Location: /b/not-this", "X-Location: /b/this" },
    }) }
    B = helpers.scgi_backend { handler = app_handler("B", {
      ["/b/cookie-final"] = { head = { "Status: 200 OK", "Set-Cookie: u=3" }, body = "final" },
      ["/b/chain2"] = r { "Status: 200 OK", "Location: /app/chain3" },
      ["/sfb/file"] = r { "Status: 200 OK", "X-Sendfile: " .. FILE },
      ["/django/login"] = r { "Status: 302 Found", "Location: http://testserver/django/accounts/profile/" },
      ["/django/nostatus"] = r { "Location: http://testserver/django/x/" },
      ["/django/download"] = r { "Status: 200 OK", "X-Location: /django/media/report.pdf?v=3" },
      ["/django/rel"] = r { "Status: 200 OK", "Location: /django/elsewhere/" },
    }) }
    gw = helpers.start_gateway {
      access_log = false,
      timeouts = { backend = 10 },
      balancers = { pool = { members = { (B.url:gsub("/$", "")) } } },
      routes = {
        { path = "/app/", pass = A.url },
        { path = "/b/", pass = B.url },
        { path = "/off/", pass = A.url, internal_redirect = false },
        { path = "/custom/", pass = A.url, internal_redirect = "X-Location" },
        { path = "/django/", pass = B.url, internal_redirect = "X-Location",
          env = { ["proxy-scgi-pathinfo"] = "1" } },
        { path = "/pool/", pass = "balancer://pool/" },
        { path = "/sfb/", pass = B.url, sendfile = true },
      },
    }
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if A then A:stop() end
    if B then B:stop() end
  end)

  local function get(t)
    if type(t) == "string" then t = { path = t } end
    t.timeout = t.timeout or 10
    if t.conn then return assert(t.conn:request(t)) end
    return assert(gw:request(t))
  end

  -- The variables the final backend saw, from its default answer.
  local function env_of(res)
    return (helpers.parse_env_lines(res.body))
  end

  -- Records of `backend` whose REQUEST_URI is `uri`, oldest first.
  local function records(backend, uri)
    local out = {}
    for _, rec in ipairs(backend:requests()) do
      if rec.env and rec.env.REQUEST_URI == uri then out[#out + 1] = rec end
    end
    return out
  end

  local function last_record(backend, uri)
    local l = records(backend, uri)
    return l[#l]
  end

  -- A log line after `mark` matching `pattern` (case-insensitive). Polls up to 3 s.
  local function log_line(mark, pattern)
    return helpers.poll(function()
      for line in (gw:log():sub(mark + 1)):gmatch "[^\n]+" do
        if line:lower():find(pattern) then return line end
      end
    end, 3)
  end

  describe("with Location (the default)", function()
    it("a 200 with Location: /path is routed again; the client gets the second response", function()
      local res = get "/app/start?x=1"
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      assert.is_nil(res.headers.location)
      assert.is_nil(res.headers["x-first"])
      assert.is_nil(res.body:find(FIRST_BODY, 1, true))
      local env = env_of(res)
      assert.equal("/b/target?y=2", env.REQUEST_URI)
      assert.equal("/b/target", env.SCRIPT_NAME)
      assert.equal("y=2", env.QUERY_STRING)
      assert.equal("GET", env.REQUEST_METHOD)
      assert.equal("200", env.REDIRECT_STATUS)
      assert.equal("/app/start?x=1", env.REDIRECT_REQUEST_URI)
      assert.is_nil(env.REDIRECT_URL)
      assert.is_nil(env.PATH_INFO)
    end)

    it("the first SCGI request carries no REDIRECT_* variables", function()
      get "/app/start?x=first"
      local rec = assert(last_record(A, "/app/start?x=first"))
      assert.equal("x=first", rec.env.QUERY_STRING)
      assert.is_nil(rec.env.REDIRECT_STATUS)
      assert.is_nil(rec.env.REDIRECT_REQUEST_URI)
      assert.is_nil(rec.env.REDIRECT_URL)
    end)

    it("a Location without Status (a CGI local redirect, status 200) is followed", function()
      local res = get "/app/nostatus"
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      assert.equal("from=nostatus", env_of(res).QUERY_STRING)
    end)

    it("a redirect may go back to the same backend", function()
      local res = get "/app/to-same"
      assert.equal("A", res.headers["x-backend"])
      local env = env_of(res)
      assert.equal("/app/final-same", env.REQUEST_URI)
      assert.equal("/app/to-same", env.REDIRECT_REQUEST_URI)
    end)

    it("reaches a route on another backend behind a balancer", function()
      local res = get "/app/pool"
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      local env = env_of(res)
      assert.equal("/pool/member?z=1", env.REQUEST_URI)
      assert.equal("z=1", env.QUERY_STRING)
      assert.equal("/app/pool", env.REDIRECT_REQUEST_URI)
    end)

    it("a percent-encoded target: raw REQUEST_URI and QUERY_STRING, decoded SCRIPT_NAME", function()
      local res = get "/app/encoded"
      local env = env_of(res)
      assert.equal("B", res.headers["x-backend"])
      assert.equal("/b/a%20b/c%2Bd?q=%41&r", env.REQUEST_URI)
      assert.equal("/b/a b/c+d", env.SCRIPT_NAME)
      assert.equal("q=%41&r", env.QUERY_STRING)
    end)

    it("a non-200 status with a local Location passes through untouched (302, 201)", function()
      local res = get "/app/302"
      assert.equal(302, res.status)
      assert.equal("/b/target", res.headers.location)
      assert.equal("A", res.headers["x-backend"])
      assert.equal(FIRST_BODY, res.body)
      res = get "/app/201"
      assert.equal(201, res.status)
      assert.equal("/b/target", res.headers.location)
      assert.equal(FIRST_BODY, res.body)
    end)

    it("an absolute Location on a 200 passes through untouched", function()
      local res = get "/app/absolute"
      assert.equal(200, res.status)
      assert.equal("http://example.com/b/target", res.headers.location)
      assert.equal("A", res.headers["x-backend"])
      assert.equal(FIRST_BODY, res.body)
    end)

    it("internal_redirect = false: Location: /path passes through with the first body", function()
      local n0 = B:count()
      local res = get "/off/start"
      assert.equal(200, res.status)
      assert.equal("/b/target", res.headers.location)
      assert.equal("A", res.headers["x-backend"])
      assert.equal(FIRST_BODY, res.body)
      assert.equal(n0, B:count())
    end)

    it("a target no route matches → 404 from the gateway", function()
      local res = get "/app/nowhere"
      assert.equal(404, res.status)
      assert.is_nil(res.headers["x-backend"])
      assert.is_nil(res.body:find(FIRST_BODY, 1, true))
    end)

    it("keeps every Set-Cookie of the first response on the final one", function()
      local res = get "/app/cookies"
      assert.equal(200, res.status)
      assert.equal("final", res.body)
      local cookies = res.headers["set-cookie"]
      if type(cookies) ~= "table" then cookies = { cookies } end
      table.sort(cookies)
      assert.same({ "s=1; Path=/", "t=2", "u=3" }, cookies)
    end)

    it("discards the first body: stops reading it and closes that backend connection", function()
      local n0 = #records(A, "/app/endless")
      local t0 = helpers.now()
      local res = get { path = "/app/endless", timeout = 5 }
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      assert.equal("/b/after-endless", env_of(res).REQUEST_URI)
      assert.is_true(helpers.now() - t0 < helpers.slack(3), "the redirect waited for the first body")
      local rec = helpers.poll(function()
        local r = records(A, "/app/endless")[n0 + 1]
        if r and r.send_error then return r end
      end, 5)
      assert.truthy(rec, "the first backend could still write after 5 s: connection not closed")
      assert.is_not.equal("timeout", rec.send_error,
                          "the first backend's writes stalled (not read, not closed)")
    end)

    it("the target route's X-Sendfile applies to the redirected request", function()
      local res = get "/app/sendfile"
      assert.equal(200, res.status)
      assert.equal("served by sendfile after a redirect", res.body)
      assert.is_nil(res.headers["x-sendfile"])
    end)
  end)

  describe("with a custom header", function()
    it("X-Location: /path redirects, and the header is removed", function()
      local res = get "/custom/x"
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      assert.is_nil(res.headers["x-location"])
      assert.is_nil(res.headers["x-first"])
      local env = env_of(res)
      assert.equal("/b/target?c=1", env.REQUEST_URI)
      assert.equal("/custom/x", env.REDIRECT_REQUEST_URI)
      assert.equal("200", env.REDIRECT_STATUS)
    end)

    it("matches the header name case-insensitively", function()
      local res = get "/custom/lower"
      assert.equal("B", res.headers["x-backend"])
      assert.is_nil(res.headers["x-location"])
      assert.equal("c=2", env_of(res).QUERY_STRING)
    end)

    it("Location: /path then passes through untouched", function()
      local res = get "/custom/loc"
      assert.equal(200, res.status)
      assert.equal("A", res.headers["x-backend"])
      assert.equal("/b/target", res.headers.location)
      assert.equal(FIRST_BODY, res.body)
    end)

    it("a value not starting with / passes through untouched", function()
      local res = get "/custom/abs"
      assert.equal(200, res.status)
      assert.equal("A", res.headers["x-backend"])
      assert.equal("http://example.com/x", res.headers["x-location"])
      assert.equal(FIRST_BODY, res.body)
    end)

    it("only the configured header acts when both are present", function()
      local res = get "/custom/both"
      assert.equal("B", res.headers["x-backend"])
      assert.equal("/b/this", env_of(res).REQUEST_URI)
    end)
  end)

  describe("method, body and connection", function()
    it("a POST is redirected as a GET with CONTENT_LENGTH=0 and no body", function()
      local res = get { method = "POST", path = "/app/post", body = "a=1&b=2",
                        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      local first = assert(last_record(A, "/app/post"))
      assert.equal("POST", first.env.REQUEST_METHOD)
      assert.equal("a=1&b=2", first.body)
      local env = env_of(res)
      assert.equal("GET", env.REQUEST_METHOD)
      assert.equal("0", env.CONTENT_LENGTH)
      assert.equal("", env.BODY)
      local second = assert(last_record(B, "/b/after-post?from=post"))
      assert.equal("GET", second.env.REQUEST_METHOD)
      assert.equal("0", second.env.CONTENT_LENGTH)
      assert.equal("", second.body)
      assert.equal("/app/post", second.env.REDIRECT_REQUEST_URI)
    end)

    it("HEAD stays HEAD and gets no body", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = get { method = "HEAD", path = "/app/start?h=1", conn = c }
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      assert.equal("", res.body)
      local rec = assert(last_record(B, "/b/target?y=2"))
      assert.equal("HEAD", rec.env.REQUEST_METHOD)
      assert.equal("/app/start?h=1", rec.env.REDIRECT_REQUEST_URI)
      -- the connection is in sync
      res = get { path = "/b/plain", conn = c }
      assert.equal("/b/plain", env_of(res).REQUEST_URI)
    end)

    it("keep-alive continues after redirects (GET, POST, HEAD, plain, on one connection)", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local res = get { path = "/app/start?ka=1", conn = c }
      assert.equal("/b/target?y=2", env_of(res).REQUEST_URI)
      res = get { path = "/b/plain?ka=2", conn = c }
      assert.equal("/b/plain?ka=2", env_of(res).REQUEST_URI)
      res = get { method = "POST", path = "/app/post", body = helpers.blob(256 * 1024, 7), conn = c }
      assert.equal("GET", env_of(res).REQUEST_METHOD)
      assert.equal(256 * 1024, #assert(last_record(A, "/app/post")).body)
      res = get { method = "HEAD", path = "/app/chain1", conn = c }
      assert.equal(200, res.status)
      assert.equal("", res.body)
      res = get { path = "/app/plain?ka=5", conn = c }
      assert.equal("A", res.headers["x-backend"])
      assert.equal("/app/plain?ka=5", env_of(res).REQUEST_URI)
      assert.is_false(c:closed(0.2))
    end)
  end)

  describe("chains and limits", function()
    it("follows a chain of 3 redirects across two backends", function()
      local res = get "/app/chain1?k=v"
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
      local env = env_of(res)
      assert.equal("/b/chain4?last=1", env.REQUEST_URI)
      assert.equal("/app/chain1?k=v", env.REDIRECT_REQUEST_URI)
      assert.equal("200", env.REDIRECT_STATUS)
      assert.is_nil(env.REDIRECT_URL)
      -- every hop reached the right backend and saw the original request-target
      for _, hop in ipairs { { B, "/b/chain2" }, { A, "/app/chain3" }, { B, "/b/chain4?last=1" } } do
        local rec = assert(last_record(hop[1], hop[2]), "hop " .. hop[2] .. " never arrived")
        assert.equal("GET", rec.env.REQUEST_METHOD)
        assert.equal("200", rec.env.REDIRECT_STATUS)
        assert.equal("/app/chain1?k=v", rec.env.REDIRECT_REQUEST_URI)
        assert.is_nil(rec.env.REDIRECT_URL)
      end
    end)

    it("follows exactly 10 chained redirects", function()
      local res = get "/app/count?n=10&t=ten"
      assert.equal(200, res.status, res.body)
      assert.equal("n=0&t=ten", env_of(res).QUERY_STRING)
      assert.equal("/app/count?n=10&t=ten", env_of(res).REDIRECT_REQUEST_URI)
    end)

    it("an 11th redirect → 500 and a log line about redirects", function()
      local mark = gw:log_mark()
      local res = get "/app/count?n=11&t=eleven"
      assert.equal(500, res.status)
      assert.is_nil(res.headers["x-backend"])
      assert.is_nil(last_record(A, "/app/count?n=0&t=eleven"), "the 11th redirect was followed")
      assert.truthy(log_line(mark, "redirect"), "no log line about redirects in:\n" .. gw:log():sub(mark + 1))
    end)

    it("a redirect loop → 500 after 11 backend requests, logged; the gateway keeps serving", function()
      local mark = gw:log_mark()
      local n0 = #records(A, "/app/loop")
      local res = get "/app/loop"
      assert.equal(500, res.status)
      assert.equal(11, #records(A, "/app/loop") - n0)
      assert.truthy(log_line(mark, "redirect"), "no log line about redirects in:\n" .. gw:log():sub(mark + 1))
      res = get "/app/start?after=loop"
      assert.equal(200, res.status)
      assert.equal("B", res.headers["x-backend"])
    end)
  end)

  describe("a Django-style mount (X-Location, proxy-scgi-pathinfo)", function()
    it("the app's own absolute redirect passes through as 302", function()
      local res = get "/django/login"
      assert.equal(302, res.status)
      assert.equal("http://testserver/django/accounts/profile/", res.headers.location)
      assert.equal(FIRST_BODY, res.body)
    end)

    it("an absolute Location without Status is a 302 passed through", function()
      local res = get "/django/nostatus"
      assert.equal(302, res.status)
      assert.equal("http://testserver/django/x/", res.headers.location)
    end)

    it("a 200 with Location: /path passes through (only X-Location acts on this route)", function()
      local res = get "/django/rel"
      assert.equal(200, res.status)
      assert.equal("/django/elsewhere/", res.headers.location)
      assert.equal(FIRST_BODY, res.body)
    end)

    it("X-Location redirects with SCRIPT_NAME and PATH_INFO split for the new path", function()
      local res = get "/django/download?id=7"
      assert.equal(200, res.status)
      assert.is_nil(res.headers["x-location"])
      local first = assert(last_record(B, "/django/download?id=7"))
      assert.equal("/django", first.env.SCRIPT_NAME)
      assert.equal("/download", first.env.PATH_INFO)
      local env = env_of(res)
      assert.equal("/django/media/report.pdf?v=3", env.REQUEST_URI)
      assert.equal("/django", env.SCRIPT_NAME)
      assert.equal("/media/report.pdf", env.PATH_INFO)
      assert.equal("v=3", env.QUERY_STRING)
      assert.equal("200", env.REDIRECT_STATUS)
      assert.equal("/django/download?id=7", env.REDIRECT_REQUEST_URI)
      assert.is_nil(env.REDIRECT_URL)
    end)

    it("a redirect from another route into the mount gets the mount's SCRIPT_NAME/PATH_INFO", function()
      local res = get "/app/to-django"
      assert.equal("B", res.headers["x-backend"])
      local env = env_of(res)
      assert.equal("/django", env.SCRIPT_NAME)
      assert.equal("/media/x.css", env.PATH_INFO)
      assert.equal("v=1", env.QUERY_STRING)
      assert.equal("1", env["proxy-scgi-pathinfo"])
      assert.equal("/app/to-django", env.REDIRECT_REQUEST_URI)
    end)
  end)
end)
