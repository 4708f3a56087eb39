-- scgi-lua(8) "Routes" and "Lua hooks" (the req object seen by hooks): first match wins, prefix
-- paths, match patterns and functions, path + match, the trailing-slash 301, dot-segment
-- normalisation.

local helpers = require "spec.helpers"

describe("routing #integration", function()
  local gw
  local b = {}

  lazy_setup(function()
    for _, name in ipairs { "one", "two", "three", "four", "tenant", "both", "code", "scgibin",
                            "fields", "last" } do
      b[name] = helpers.scgi_backend { handler = string.format([[
        function(req, sock)
          req:read_body()
          local body = %q .. "\n" .. env_lines(req)
          send_all(sock, "Status: 200 OK\r\nX-Backend: " .. %q .. "\r\nContent-Length: " ..
                   #body .. "\r\n\r\n" .. body)
        end ]], name, name) }
    end
    gw = helpers.start_gateway(string.format([[
      return {
        access_log = false,
        routes = {
          { match = function(req) return req.headers["x-tenant"] == "b" end, pass = %q },
          { path = "/a/", pass = %q },
          { path = "/a/b/", pass = %q },
          { path = "/b/", pass = %q },
          { match = "^/pat/%%d+$", pass = %q },
          { path = "/both/", match = "%%.json$", pass = %q },
          { path = "/code/", pass = %q },
          { path = "/scgi-bin/", pass = %q },
          { path = "/fields/", pass = %q, env = {
              REQ_METHOD = function(req) return req.method end,
              REQ_URI = function(req) return req.uri end,
              REQ_PATH = function(req) return req.path end,
              REQ_QUERY = function(req) return req.query end,
              REQ_HOST = function(req) return req.host end,
              REQ_REMOTE_ADDR = function(req) return req.remote_addr end,
              REQ_REMOTE_PORT = function(req) return tostring(req.remote_port) end,
              REQ_TENANT = function(req) return req.headers["x-tenant"] end,
              REQ_MULTI = function(req) return req.headers["x-multi"] end,
              REQ_UPPER = function(req) return req.headers["X-Tenant"] or "absent" end,
            } },
          { path = "/last/", pass = %q },
          { path = "/lazy/", pass = %q,
            access = function(req) req.tag = "from access" end,
            env = {
              -- a req kept past its request: fields it never read are nil, nothing dangles
              REQ_KEPT = function(req)
                local p = kept
                kept = req
                if not p then return "first" end
                return string.format("%%s|%%s|%%s|%%s", tostring(p.method), tostring(p.path),
                                     tostring(p.host), tostring(p.remote_port))
              end,
              REQ_TAG = function(req) return req.tag end,
              REQ_UNKNOWN = function(req)
                return tostring(req.nosuch) .. "|" .. tostring(req[1]) .. "|" .. type(req)
              end,
              REQ_TWICE = function(req) return tostring(req.headers == req.headers) end,
            } },
        },
      }]], b.tenant.url, b.one.url, b.two.url, b.three.url, b.four.url, b.both.url, b.code.url,
         b.scgibin.url, b.fields.url, b.last.url, b.fields.url))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    for _, x in pairs(b) do x:stop() end
  end)

  local function which(t)
    if type(t) == "string" then t = { path = t } end
    local res = assert(gw:request(t))
    return res.headers["x-backend"] or res.status, res
  end

  it("routes by path prefix", function()
    assert.equal("one", which "/a/x")
    assert.equal("three", which "/b/")
    assert.equal("three", which "/b/deep/er?q=1")
    assert.equal("last", which "/last/x")
  end)

  it("the first matching route wins", function()
    assert.equal("one", which "/a/b/c")
  end)

  it("a path is a prefix of whole requests paths only as written", function()
    assert.equal(404, which "/bx")
    assert.equal(404, which "/")
  end)

  it("matches a Lua pattern against req.path", function()
    assert.equal("four", which "/pat/123")
    assert.equal(404, which "/pat/abc")
    assert.equal("four", which "/pat/42?x=y")
  end)

  it("matches with a function", function()
    assert.equal("tenant", which { path = "/a/x", headers = { ["X-Tenant"] = "b" } })
    assert.equal("one", which { path = "/a/x", headers = { ["X-Tenant"] = "c" } })
    assert.equal("tenant", which { path = "/nowhere", headers = { ["X-Tenant"] = "b" } })
  end)

  it("requires both path and match when a route has both", function()
    assert.equal("both", which "/both/data.json")
    assert.equal(404, which "/both/data.html")
    assert.equal(404, which "/other/data.json")
  end)

  it("redirects /code to /code/ with 301, keeping the query", function()
    local res = assert(gw:request { path = "/code?x=1&y=2" })
    assert.equal(301, res.status)
    assert.matches("/code/%?x=1&y=2$", res.headers.location)
    res = assert(gw:request { path = "/code" })
    assert.equal(301, res.status)
    assert.matches("/code/$", res.headers.location)
    assert.equal("code", which "/code/")
  end)

  it("normalises dot segments before routing", function()
    local who, res = which "/a/../scgi-bin/x"
    assert.equal("scgibin", who)
    local env = helpers.parse_env_lines(res.body:match "^[^\n]*\n(.*)$")
    assert.equal("/scgi-bin/x", env.SCRIPT_NAME)
    assert.equal("/a/../scgi-bin/x", env.REQUEST_URI)
    assert.equal("scgibin", which "/scgi-bin/./y")
    assert.equal("scgibin", which "/x/y/../../scgi-bin/z")
  end)

  it("routes on the decoded path", function()
    assert.equal("scgibin", which "/%73cgi-bin/x")
    assert.equal("scgibin", which "/a/%2e%2e/scgi-bin/x")
  end)

  it("never routes above the root", function()
    local who = which "/../../a/x"
    assert.truthy(who == "one" or who == 400, "got " .. tostring(who))
  end)

  it("gives hooks the req fields", function()
    local c = assert(gw:connect())
    finally(function() c:close() end)
    local _, lport = c:local_address()
    local res = assert(c:request { method = "POST", path = "/fields/a%20b/c?q=%20x&r", body = "z",
                                   host = "example.org",
                                   headers = { { "X-Tenant", "acme" }, { "X-Multi", "1" },
                                               { "X-Multi", "2" } } })
    assert.equal("fields", res.headers["x-backend"])
    local env = helpers.parse_env_lines(res.body:match "^[^\n]*\n(.*)$")
    assert.equal("POST", env.REQ_METHOD)
    assert.equal("/fields/a%20b/c?q=%20x&r", env.REQ_URI)
    assert.equal("/fields/a b/c", env.REQ_PATH)
    assert.equal("q=%20x&r", env.REQ_QUERY)
    assert.equal("example.org", env.REQ_HOST)
    assert.equal("127.0.0.1", env.REQ_REMOTE_ADDR)
    assert.equal(tostring(lport), env.REQ_REMOTE_PORT)
    assert.equal("acme", env.REQ_TENANT)
    assert.equal("1, 2", env.REQ_MULTI)
    assert.equal("absent", env.REQ_UPPER)
  end)

  it("gives hooks an empty query when there is none", function()
    local res = assert(gw:request { path = "/fields/x" })
    local env = helpers.parse_env_lines(res.body:match "^[^\n]*\n(.*)$")
    assert.equal("", env.REQ_QUERY)
    assert.equal("GET", env.REQ_METHOD)
  end)

  it("req is one table per request, shared by its hooks, and inert once the request ends", function()
    local res = assert(gw:request { path = "/lazy/1" })
    local env = helpers.parse_env_lines(res.body:match "^[^\n]*\n(.*)$")
    assert.equal("first", env.REQ_KEPT)
    assert.equal("from access", env.REQ_TAG)
    assert.equal("nil|nil|table", env.REQ_UNKNOWN)
    assert.equal("true", env.REQ_TWICE)
    res = assert(gw:request { path = "/lazy/2" })
    env = helpers.parse_env_lines(res.body:match "^[^\n]*\n(.*)$")
    assert.equal("nil|nil|nil|nil", env.REQ_KEPT)
    assert.truthy(gw:alive())
  end)
end)
