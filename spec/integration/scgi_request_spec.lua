-- scgi-lua(8) THE SCGI REQUEST: the SCGI request the gateway sends — netstring framing, variable
-- order, the always-sent CGI variables, HTTP_* mapping, dropped headers, route env,
-- SCRIPT_NAME/PATH_INFO.

local helpers = require "spec.helpers"
local scgi = helpers.scgi

describe("the SCGI request #integration", function()
  local backend, gw

  lazy_setup(function()
    backend = helpers.scgi_backend()
    local b = backend.url
    local b_app = b:gsub("/$", "") .. "/app/"
    gw = helpers.start_gateway(string.format([[
      return {
        access_log = false,
        log_level = "debug",
        routes = {
          { path = "/scgi-bin/", pass = %q, env = { ["proxy-scgi-pathinfo"] = "1" } },
          { path = "/mounted/", pass = %q, env = { ["proxy-scgi-pathinfo"] = "yes" } },
          { path = "/noauth/", pass = %q, pass_auth = false },
          { path = "/env/", pass = %q,
            env = {
              SCRIPT_NAME = "/code",
              CONTENT_LENGTH = "999",
              SCGI = "2",
              MY_VAR = "static value",
              NUMBER = 42,
              SERVER_SOFTWARE = false,
              HTTP_X_FIXED = "from route",
              TENANT = function(req) return req.headers["x-tenant"] end,
              GONE = function(req) return nil end,
              GONE_TOO = function(req) return false end,
              HTTP_COOKIE = function(req)
                if req.headers["x-no-cookie"] then return nil end
                return req.headers.cookie
              end,
            } },
          { path = "/", pass = %q },
        },
      }]], b, b_app, b, b, b))
  end)

  lazy_teardown(function()
    gw:stop()
    backend:stop()
  end)

  -- Send one request; return the backend's record of it.
  local function forward(t)
    local n0 = backend:count()
    local res = assert(gw:request(t))
    assert.equal(200, res.status, res.body)
    assert.equal(n0 + 1, backend:count())
    return backend:last_request(), res
  end

  describe("framing", function()
    it("is a valid netstring with CONTENT_LENGTH first and SCGI=1 second", function()
      local rec = forward { method = "POST", path = "/form?a=1", body = "x=1",
                            headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }
      assert.is_nil(rec.error)
      local st, payload, raw, rest = scgi.parse_head(rec.raw_header)
      assert.equal("done", st)
      assert.equal(rec.raw_header, raw)
      assert.equal("", rest)
      assert.equal(#payload, tonumber(rec.raw_header:match "^(%d+):"))
      assert.same({ "CONTENT_LENGTH", "SCGI" }, { rec.names[1], rec.names[2] })
      assert.equal("3", rec.env.CONTENT_LENGTH)
      assert.equal("1", rec.env.SCGI)
      assert.equal("x=1", rec.body)
    end)

    it("sends no variable name twice", function()
      local rec = forward { path = "/dup?x", headers = { { "X-A", "1" }, { "x-a", "2" },
                                                        { "Cookie", "a=1" }, { "Cookie", "b=2" } } }
      local seen = {}
      for _, n in ipairs(rec.names) do
        assert.is_nil(seen[n], "duplicate variable " .. n)
        seen[n] = true
      end
    end)

    it("sends CONTENT_LENGTH 0 for a request without a body", function()
      local rec = forward { path = "/nobody" }
      assert.equal("0", rec.env.CONTENT_LENGTH)
      assert.equal("", rec.body)
    end)
  end)

  describe("always-sent variables", function()
    it("have the exact values of the request", function()
      local c = assert(gw:connect())
      finally(function() c:close() end)
      local lip, lport = c:local_address()
      local res = assert(c:request { path = "/scgi-bin2/foo%20bar/baz?x=1&y=%41",
                                     host = "example.com:8080" })
      assert.equal(200, res.status)
      local env = backend:last_request().env
      assert.equal("GET", env.REQUEST_METHOD)
      assert.equal("/scgi-bin2/foo%20bar/baz?x=1&y=%41", env.REQUEST_URI)
      assert.equal("x=1&y=%41", env.QUERY_STRING)
      assert.equal("/scgi-bin2/foo bar/baz", env.SCRIPT_NAME)
      assert.is_nil(env.PATH_INFO)
      assert.equal("HTTP/1.1", env.SERVER_PROTOCOL)
      assert.equal("example.com", env.SERVER_NAME)
      assert.equal(tostring(gw.port), env.SERVER_PORT)
      assert.equal("127.0.0.1", env.SERVER_ADDR)
      assert.matches("^scgi%-lua/", env.SERVER_SOFTWARE)
      assert.equal(lip, env.REMOTE_ADDR)
      assert.equal(tostring(lport), env.REMOTE_PORT)
      assert.equal("http", env.REQUEST_SCHEME)
      assert.equal("CGI/1.1", env.GATEWAY_INTERFACE)
      assert.equal("example.com:8080", env.HTTP_HOST)
      assert.is_nil(env.CONTENT_TYPE)
    end)

    it("send QUERY_STRING as an empty string when there is no query", function()
      local env = forward({ path = "/plain" }).env
      assert.equal("", env.QUERY_STRING)
      assert.equal("/plain", env.REQUEST_URI)
    end)

    it("keep an empty query after '?' raw", function()
      local env = forward({ path = "/plain?" }).env
      assert.equal("", env.QUERY_STRING)
      assert.equal("/plain?", env.REQUEST_URI)
    end)

    it("use the listen address as SERVER_NAME without a Host header", function()
      local env = forward({ path = "/old", version = "1.0", host = false }).env
      assert.equal("HTTP/1.0", env.SERVER_PROTOCOL)
      assert.equal("127.0.0.1", env.SERVER_NAME)
      assert.is_nil(env.HTTP_HOST)
    end)

    it("strip the port from an IPv6 literal Host", function()
      local env = forward({ path = "/v6host", host = "[::1]:8080" }).env
      assert.truthy(env.SERVER_NAME == "[::1]" or env.SERVER_NAME == "::1", env.SERVER_NAME)
    end)

    it("include CONTENT_TYPE when the request has one", function()
      local env = forward({ method = "POST", path = "/ct", body = "{}",
                            headers = { ["Content-Type"] = "application/json; charset=utf-8" } }).env
      assert.equal("application/json; charset=utf-8", env.CONTENT_TYPE)
      assert.equal("2", env.CONTENT_LENGTH)
      assert.equal("POST", env.REQUEST_METHOD)
    end)

    it("pass other methods through", function()
      assert.equal("DELETE", forward({ method = "DELETE", path = "/x" }).env.REQUEST_METHOD)
      assert.equal("OPTIONS", forward({ method = "OPTIONS", path = "/x" }).env.REQUEST_METHOD)
    end)
  end)

  describe("HTTP_* variables", function()
    it("are upper-cased with - mapped to _", function()
      local env = forward({ path = "/h", headers = { { "X-Custom-Header", "v1" },
                                                     { "x-lower-case", "v2" },
                                                     { "Accept", "text/html" } } }).env
      assert.equal("v1", env.HTTP_X_CUSTOM_HEADER)
      assert.equal("v2", env.HTTP_X_LOWER_CASE)
      assert.equal("text/html", env.HTTP_ACCEPT)
    end)

    it("join repeated headers with ', ' and Cookie with '; '", function()
      local env = forward({ path = "/h", headers = { { "X-Multi", "a" }, { "X-Other", "o" },
                                                     { "x-multi", "b" }, { "Cookie", "a=1" },
                                                     { "Cookie", "b=2" } } }).env
      assert.equal("a, b", env.HTTP_X_MULTI)
      assert.equal("o", env.HTTP_X_OTHER)
      assert.equal("a=1; b=2", env.HTTP_COOKIE)
    end)

    it("drop names with characters outside [A-Za-z0-9-] (no underscore smuggling)", function()
      local env = forward({ path = "/h", headers = { { "X_Forwarded_For", "evil" },
                                                     { "X-Forwarded-For", "good" },
                                                     { "X.Dot", "dot" } } }).env
      assert.equal("good", env.HTTP_X_FORWARDED_FOR)
      for name in pairs(env) do
        assert.is_nil(name:find "DOT", "unexpected " .. name)
      end
    end)

    it("drop Proxy (httpoxy)", function()
      local env = forward({ path = "/h", headers = { Proxy = "http://evil:8080/" } }).env
      assert.is_nil(env.HTTP_PROXY)
    end)

    it("never carry Content-Length or Content-Type", function()
      local env = forward({ method = "POST", path = "/h", body = "abc",
                            headers = { ["Content-Type"] = "text/plain" } }).env
      assert.is_nil(env.HTTP_CONTENT_LENGTH)
      assert.is_nil(env.HTTP_CONTENT_TYPE)
      assert.equal("text/plain", env.CONTENT_TYPE)
    end)

    it("drop hop-by-hop headers", function()
      local env = forward({ path = "/h", headers = { { "Connection", "keep-alive" },
                                                     { "Keep-Alive", "timeout=5" },
                                                     { "TE", "trailers" },
                                                     { "Upgrade", "foo/1" },
                                                     { "Proxy-Connection", "keep-alive" } } }).env
      assert.is_nil(env.HTTP_CONNECTION)
      assert.is_nil(env.HTTP_KEEP_ALIVE)
      assert.is_nil(env.HTTP_TE)
      assert.is_nil(env.HTTP_UPGRADE)
      assert.is_nil(env.HTTP_PROXY_CONNECTION)
    end)

    it("drop Transfer-Encoding of a chunked request", function()
      local env = forward({ method = "POST", path = "/h", body = "chunky", chunked = true }).env
      assert.is_nil(env.HTTP_TRANSFER_ENCODING)
      assert.equal("6", env.CONTENT_LENGTH)
    end)

    it("pass Authorization by default", function()
      local env = forward({ path = "/h", headers = { Authorization = "Basic dXNlcjpwdw==" } }).env
      assert.equal("Basic dXNlcjpwdw==", env.HTTP_AUTHORIZATION)
    end)

    it("hide Authorization on a route with pass_auth = false", function()
      local env = forward({ path = "/noauth/x", headers = { Authorization = "Basic dXNlcjpwdw==",
                                                             ["X-Kept"] = "1" } }).env
      assert.is_nil(env.HTTP_AUTHORIZATION)
      assert.equal("1", env.HTTP_X_KEPT)
    end)
  end)

  describe("route env", function()
    it("adds static variables (numbers as strings)", function()
      local env = forward({ path = "/env/x" }).env
      assert.equal("static value", env.MY_VAR)
      assert.equal("42", env.NUMBER)
    end)

    it("replaces computed variables (SCRIPT_NAME = \"/code\")", function()
      local rec = forward { path = "/env/x", headers = { ["X-Fixed"] = "from client" } }
      assert.equal("/code", rec.env.SCRIPT_NAME)
      assert.equal("from route", rec.env.HTTP_X_FIXED)
      local count = 0
      for _, n in ipairs(rec.names) do
        if n == "SCRIPT_NAME" or n == "HTTP_X_FIXED" then count = count + 1 end
      end
      assert.equal(2, count)
    end)

    it("cannot replace CONTENT_LENGTH or SCGI", function()
      local rec = forward { method = "POST", path = "/env/x", body = "hello" }
      assert.equal("5", rec.env.CONTENT_LENGTH)
      assert.equal("1", rec.env.SCGI)
      assert.same({ "CONTENT_LENGTH", "SCGI" }, { rec.names[1], rec.names[2] })
      assert.equal("hello", rec.body)
    end)

    it("removes a variable whose value is false", function()
      local env = forward({ path = "/env/x" }).env
      assert.is_nil(env.SERVER_SOFTWARE)
    end)

    it("calls functions per request; nil or false means not sent", function()
      local env = forward({ path = "/env/x", headers = { ["X-Tenant"] = "acme" } }).env
      assert.equal("acme", env.TENANT)
      assert.is_nil(env.GONE)
      assert.is_nil(env.GONE_TOO)
      env = forward({ path = "/env/y" }).env
      assert.is_nil(env.TENANT)
    end)

    it("a function can remove a computed variable (HTTP_COOKIE)", function()
      local env = forward({ path = "/env/x", headers = { Cookie = "big=1" } }).env
      assert.equal("big=1", env.HTTP_COOKIE)
      env = forward({ path = "/env/x", headers = { Cookie = "big=1", ["X-No-Cookie"] = "1" } }).env
      assert.is_nil(env.HTTP_COOKIE)
    end)
  end)

  describe("SCRIPT_NAME and PATH_INFO", function()
    it("default: SCRIPT_NAME is the decoded path and there is no PATH_INFO", function()
      local env = forward({ path = "/other/foo/bar?x=1" }).env
      assert.equal("/other/foo/bar", env.SCRIPT_NAME)
      assert.is_nil(env.PATH_INFO)
    end)

    it("proxy-scgi-pathinfo splits as in the man page's example", function()
      local env = forward({ path = "/scgi-bin/foo/bar?x=1" }).env
      assert.equal("/scgi-bin", env.SCRIPT_NAME)
      assert.equal("/foo/bar", env.PATH_INFO)
      assert.equal("/scgi-bin/foo/bar?x=1", env.REQUEST_URI)
      assert.equal("x=1", env.QUERY_STRING)
      assert.equal("1", env["proxy-scgi-pathinfo"])
    end)

    it("proxy-scgi-pathinfo decodes PATH_INFO", function()
      local env = forward({ path = "/scgi-bin/a%20b/c%2Bd?q=%20" }).env
      assert.equal("/scgi-bin", env.SCRIPT_NAME)
      assert.equal("/a b/c+d", env.PATH_INFO)
      assert.equal("/scgi-bin/a%20b/c%2Bd?q=%20", env.REQUEST_URI)
      assert.equal("q=%20", env.QUERY_STRING)
    end)

    it("proxy-scgi-pathinfo for exactly the route path gives PATH_INFO /", function()
      local env = forward({ path = "/scgi-bin/" }).env
      assert.equal("/scgi-bin", env.SCRIPT_NAME)
      assert.equal("/", env.PATH_INFO)
    end)

    it("prefixes PATH_INFO with the path of the pass URL", function()
      local env = forward({ path = "/mounted/x/y" }).env
      assert.equal("/mounted", env.SCRIPT_NAME)
      assert.equal("/app/x/y", env.PATH_INFO)
      assert.equal("yes", env["proxy-scgi-pathinfo"])
    end)

    it("the default SCRIPT_NAME is decoded too", function()
      local env = forward({ path = "/other/a%20b" }).env
      assert.equal("/other/a b", env.SCRIPT_NAME)
      assert.equal("/other/a%20b", env.REQUEST_URI)
    end)
  end)
end)
