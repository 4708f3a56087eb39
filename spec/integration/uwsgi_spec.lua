-- Interoperability with a real third-party SCGI server: Debian's uwsgi with the python3 plugin
-- running spec/fixtures/wsgi_app.py, which answers with the CGI variables it saw as JSON.
-- Pending when uwsgi (or its python3 plugin) is not installed.

local helpers = require "spec.helpers"

local function find_uwsgi()
  local code = helpers.proc.run({ "sh", "-c", "command -v uwsgi" }, { timeout = 5 })
  if code ~= 0 then return nil, "uwsgi is not installed" end
  local ok = helpers.proc.exists "/usr/lib/uwsgi/plugins/python3_plugin.so"
  if not ok then return nil, "uwsgi-plugin-python3 is not installed" end
  return true
end

-- Pull the string fields out of the app's flat JSON object (enough for our own fixture).
local function json_fields(text)
  local t = {}
  for k, v in text:gmatch '"([%w_]+)":%s*"(.-[^\\]?)"' do
    t[k] = v:gsub('\\"', '"'):gsub("\\\\", "\\")
  end
  return t
end

describe("uwsgi as the SCGI backend #integration #uwsgi", function()
  local have, why = find_uwsgi()
  local uwsgi, gw, port

  lazy_setup(function()
    if not have then return end
    port = helpers.free_port()
    uwsgi = helpers.start_process({
      "uwsgi", "--plugins", "python3",
      "--scgi-socket", "127.0.0.1:" .. port,
      "--wsgi-file", helpers.root .. "/spec/fixtures/wsgi_app.py",
      "--master", "--processes", "1", "--die-on-term", "--disable-logging",
    }, { ready = { host = "127.0.0.1", port = port } })
    local url = "scgi://127.0.0.1:" .. port .. "/"
    gw = helpers.start_gateway {
      access_log = false,
      routes = {
        { path = "/scgi-bin/", pass = url, env = { ["proxy-scgi-pathinfo"] = "1" } },
        { path = "/", pass = url },
      },
    }
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if uwsgi then uwsgi:stop() end
  end)

  local function call(t)
    local res = assert(gw:request(t))
    assert.equal(200, res.status, res.body)
    assert.matches("^application/json", res.headers["content-type"])
    return json_fields(res.body), res
  end

  it("sees SCRIPT_NAME = the decoded path and no PATH_INFO by default", function()
    if not have then pending(why) return end
    local app = call { path = "/plain/foo%20bar?x=1&y=2" }
    assert.equal("/plain/foo bar", app.SCRIPT_NAME)
    assert.equal("x=1&y=2", app.QUERY_STRING)
    assert.equal("/plain/foo%20bar?x=1&y=2", app.REQUEST_URI)
    assert.equal("GET", app.REQUEST_METHOD)
    assert.equal("HTTP/1.1", app.SERVER_PROTOCOL)
    assert.truthy(app.PATH_INFO == nil or app.PATH_INFO == "", app.PATH_INFO)
  end)

  it("sees the split SCRIPT_NAME / PATH_INFO with proxy-scgi-pathinfo", function()
    if not have then pending(why) return end
    local app = call { path = "/scgi-bin/foo/bar?x=1" }
    assert.equal("/scgi-bin", app.SCRIPT_NAME)
    assert.equal("/foo/bar", app.PATH_INFO)
    assert.equal("x=1", app.QUERY_STRING)
    assert.equal("/scgi-bin/foo/bar?x=1", app.REQUEST_URI)
  end)

  it("gets a decoded PATH_INFO", function()
    if not have then pending(why) return end
    local app = call { path = "/scgi-bin/a%20b/c" }
    assert.equal("/scgi-bin", app.SCRIPT_NAME)
    assert.equal("/a b/c", app.PATH_INFO)
    assert.equal("", app.QUERY_STRING)
  end)

  it("reads a Content-Length body and a chunked body", function()
    if not have then pending(why) return end
    local app = call { method = "POST", path = "/scgi-bin/form", body = "a=1&b=2",
                       headers = { ["Content-Type"] = "application/x-www-form-urlencoded",
                                   ["X-Test"] = "yes" } }
    assert.equal("a=1&b=2", app.body)
    assert.equal("7", app.CONTENT_LENGTH)
    assert.equal("application/x-www-form-urlencoded", app.CONTENT_TYPE)
    assert.equal("yes", app.HTTP_X_TEST)
    app = call { method = "POST", path = "/scgi-bin/chunked", body = ("c"):rep(5000), chunked = true,
                 chunk_size = 1000 }
    assert.equal(("c"):rep(5000), app.body)
    assert.equal("5000", app.CONTENT_LENGTH)
  end)

  it("relays uwsgi's Content-Length response on a keep-alive connection", function()
    if not have then pending(why) return end
    local c = assert(gw:connect())
    finally(function() c:close() end)
    for i = 1, 3 do
      local res = assert(c:request { path = "/scgi-bin/ka" .. i })
      assert.equal(200, res.status)
      assert.truthy(res.headers["content-length"])
      assert.equal("/ka" .. i, json_fields(res.body).PATH_INFO)
    end
  end)
end)
