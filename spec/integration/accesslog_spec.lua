-- README "Observing it" (access log) and scgi-lua(8) SIGNALS (SIGUSR1): Combined Log Format plus
-- the request time and the backend, to a file or nowhere (access_log = false); SIGUSR1 reopens the
-- file under its name after logrotate renamed it; a Lua log_format(req, res) replaces the line, and
-- one that fails falls back to the default line with an error in the error log.

local helpers = require "spec.helpers"
local proc = helpers.proc

-- host ident user [time] "request" status bytes "referer" "user-agent" seconds backend
local CLF = '^(%S+) (%S+) (%S+) %[(%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d [+-]%d%d%d%d)%] '
            .. '"([^"]*)" (%d%d%d) (%d+) "([^"]*)" "([^"]*)" (%d+%.%d+) (%S+)$'

local function parse_line(line)
  local host, ident, user, time, request, status, bytes, referer, ua, secs, backend =
    line:match(CLF)
  if not host then return nil end
  return { host = host, ident = ident, user = user, time = time, request = request,
           status = tonumber(status), bytes = tonumber(bytes), referer = referer, ua = ua,
           seconds = tonumber(secs), backend = backend }
end

local function lines_of(path)
  local out = {}
  for line in (proc.read_file(path) or ""):gmatch "([^\n]*)\n" do out[#out + 1] = line end
  return out
end

-- Poll `path` until a line containing `needle` (plain) appears; returns that line.
local function wait_line(path, needle, timeout)
  return helpers.poll(function()
    for _, l in ipairs(lines_of(path)) do
      if l:find(needle, 1, true) then return l end
    end
  end, timeout or 5)
end

describe("access log #integration #accesslog", function()
  local backend, slow

  lazy_setup(function()
    backend = helpers.scgi_backend()
    slow = helpers.scgi_backend { handler = [[
      function(req, sock)
        req:read_body()
        sleep(0.3)
        send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nslow")
      end ]] }
  end)

  lazy_teardown(function()
    backend:stop()
    slow:stop()
  end)

  describe("to a file", function()
    local gw, log_path

    lazy_setup(function()
      gw = helpers.start_gateway(string.format([[
        return {
          access_log = "{DIR}/access.log",
          routes = {
            { path = "/app/", pass = %q },
            { path = "/slow/", pass = %q },
          },
        }]], backend.url, slow.url))
      log_path = gw.dir .. "/access.log"
    end)

    lazy_teardown(function() gw:stop() end)

    it("gets one Combined Log Format line per request, with request time and backend", function()
      local res = assert(gw:request { path = "/app/clf?x=1",
                                      headers = { Referer = "http://example.test/from",
                                                  ["User-Agent"] = "spec-agent/1.0" } })
      assert.equal(200, res.status)
      local line = wait_line(log_path, "/app/clf?x=1")
      assert.truthy(line, "no access log line:\n" .. (proc.read_file(log_path) or "(no file)"))
      local f = parse_line(line)
      assert.truthy(f, "not Combined Log Format + time + backend: " .. line)
      assert.equal("127.0.0.1", f.host)
      assert.equal("-", f.ident)
      assert.equal("-", f.user)
      assert.equal("GET /app/clf?x=1 HTTP/1.1", f.request)
      assert.equal(200, f.status)
      assert.equal(#res.body, f.bytes)
      assert.equal("http://example.test/from", f.referer)
      assert.equal("spec-agent/1.0", f.ua)
      assert.is_true(f.seconds >= 0 and f.seconds < helpers.slack(5), line)
      assert.equal(backend.url, f.backend)
      -- the time is the local time of the request, within a minute
      local day, mon, year = f.time:match "^(%d%d)/(%a%a%a)/(%d%d%d%d):"
      assert.equal(os.date("%d/%b/%Y"), day .. "/" .. mon .. "/" .. year)
    end)

    it("measures the request time and shows - for a request no backend served", function()
      assert.equal(200, assert(gw:request { path = "/slow/t" }).status)
      local f = parse_line(assert(wait_line(log_path, "/slow/t")))
      assert.truthy(f)
      assert.is_true(f.seconds >= 0.25 and f.seconds < helpers.slack(5), "request time " .. f.seconds)
      assert.equal(slow.url, f.backend)

      assert.equal(404, assert(gw:request { path = "/no-such-route" }).status)
      f = parse_line(assert(wait_line(log_path, "/no-such-route")))
      assert.truthy(f)
      assert.equal(404, f.status)
      assert.equal("-", f.backend)
      assert.equal("-", f.referer)
    end)

    it("logs HEAD and POST with their methods and HTTP/1.0 with its version", function()
      assert(gw:request { method = "HEAD", path = "/app/head" })
      assert(gw:request { method = "POST", path = "/app/post", body = "abc" })
      assert(gw:request { path = "/app/ten", version = "1.0" })
      assert.equal("HEAD /app/head HTTP/1.1", parse_line(assert(wait_line(log_path, "/app/head"))).request)
      assert.equal("POST /app/post HTTP/1.1", parse_line(assert(wait_line(log_path, "/app/post"))).request)
      assert.equal("GET /app/ten HTTP/1.0", parse_line(assert(wait_line(log_path, "/app/ten"))).request)
      -- the access lines stay out of the error log
      assert.not_matches("/app/head", gw:log())
    end)

    it("SIGUSR1 after a rename sends new lines to a new file at the original path", function()
      assert.equal(200, assert(gw:request { path = "/app/before-rotate" }).status)
      assert.truthy(wait_line(log_path, "/app/before-rotate"))
      local rotated = log_path .. ".1"
      assert(os.rename(log_path, rotated))
      -- until the signal, the gateway keeps writing to the renamed file
      assert.equal(200, assert(gw:request { path = "/app/after-rename" }).status)
      assert.truthy(wait_line(rotated, "/app/after-rename"), "line not in the renamed file")
      assert.is_false(proc.exists(log_path))

      local mark = gw:log_mark()
      assert(gw:signal "USR1")
      assert.truthy(helpers.poll(function() return proc.exists(log_path) end, 5),
                    "no new file at " .. log_path .. " after SIGUSR1")
      assert.truthy(gw:wait_log("reopen", 5, { from = mark }), "no log line about the reopen")
      assert.equal(200, assert(gw:request { path = "/app/after-reopen" }).status)
      local line = wait_line(log_path, "/app/after-reopen")
      assert.truthy(line, "line not in the new file:\n" .. (proc.read_file(log_path) or ""))
      assert.truthy(parse_line(line), line)
      assert.is_nil(wait_line(rotated, "/app/after-reopen", 0.2), "line also in the old file")
      assert.is_nil(wait_line(log_path, "/app/before-rotate", 0), "old lines in the new file")
      assert.is_true(gw:alive())
    end)
  end)

  describe("access_log = false", function()
    it("writes no access log line anywhere", function()
      local gw = helpers.start_gateway(string.format([[
        return {
          access_log = false,
          routes = { { path = "/app/", pass = %q } },
        }]], backend.url))
      finally(function() gw:stop() end)
      for i = 1, 3 do
        assert.equal(200, assert(gw:request { path = "/app/quiet" .. i }).status)
      end
      assert.equal(404, assert(gw:request { path = "/nothing-here" }).status)
      -- the 404 gives an error log line; wait for it so the access line would be there too
      gw:wait_log("nothing%-here", 2)
      local log = gw:log()
      assert.not_matches("/app/quiet", log)
      for line in log:gmatch "[^\n]+" do
        assert.is_nil(parse_line(line), "an access log line: " .. line)
      end
      -- and no file appeared next to the config
      for _, name in ipairs(proc.list_dir(gw.dir)) do
        assert.truthy(name == "gateway.lua" or name == "gateway.log", "unexpected file " .. name)
      end
    end)

    it("the default (no access_log key) logs to stderr", function()
      local gw = helpers.start_gateway(string.format([[
        return { routes = { { path = "/app/", pass = %q } } }]], backend.url))
      finally(function() gw:stop() end)
      assert.equal(200, assert(gw:request { path = "/app/to-stderr" }).status)
      local log = gw:wait_log("/app/to-stderr", 5, true)
      assert.truthy(log, "no access line on stderr:\n" .. gw:log())
      local line = log:match "[^\n]*/app/to%-stderr[^\n]*"
      assert.truthy(parse_line(line), line)
    end)
  end)

  describe("log_format", function()
    local gw, log_path

    lazy_setup(function()
      gw = helpers.start_gateway(string.format([[
        return {
          access_log = "{DIR}/access.log",
          log_format = function(req, res)
            if req.path:find("boom", 1, true) then error("formatter exploded") end
            if req.path:find("table", 1, true) then return { "not a string" } end
            if req.path:find("fields", 1, true) then
              return string.format("fields %%s|%%s|%%s|%%s|%%d|%%s|%%s|%%s|%%s", req.method, req.uri,
                req.query, req.remote_addr, res.bytes, tostring(res.backend),
                type(res.duration), res.time_local, tostring(req.headers["x-tag"]))
            end
            return req.method .. " " .. req.path .. " " .. res.status
          end,
          routes = { { path = "/app/", pass = %q } },
        }]], backend.url))
      log_path = gw.dir .. "/access.log"
    end)

    lazy_teardown(function() gw:stop() end)

    it("writes the line the function returns", function()
      assert.equal(200, assert(gw:request { path = "/app/custom?q=1" }).status)
      assert.equal(404, assert(gw:request { path = "/unrouted" }).status)
      assert.truthy(wait_line(log_path, "/unrouted"))
      local lines = lines_of(log_path)
      local found = {}
      for _, l in ipairs(lines) do found[l] = true end
      assert.truthy(found["GET /app/custom 200"], "lines:\n" .. table.concat(lines, "\n"))
      assert.truthy(found["GET /unrouted 404"], "lines:\n" .. table.concat(lines, "\n"))
      for _, l in ipairs(lines) do
        assert.is_nil(parse_line(l), "a default line although log_format is set: " .. l)
      end
    end)

    it("gets req and res fields (method, uri, query, bytes, backend, duration, time)", function()
      local res = assert(gw:request { method = "POST", path = "/app/fields?a=b", body = "xyz",
                                      headers = { ["X-Tag"] = "t1" } })
      assert.equal(200, res.status)
      local line = assert(wait_line(log_path, "fields "))
      assert.equal(string.format("fields POST|/app/fields?a=b|a=b|127.0.0.1|%d|%s|number|", #res.body,
                                 backend.url),
                   line:match "^(fields [^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|)")
      assert.matches("|%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d [+-]%d%d%d%d|t1$", line)
    end)

    it("falls back to the default line and logs an error when it raises", function()
      local mark = gw:log_mark()
      assert.equal(200, assert(gw:request { path = "/app/boom" }).status)
      local line = wait_line(log_path, "/app/boom")
      assert.truthy(line, "no line for the request")
      local f = parse_line(line)
      assert.truthy(f, "not the default format: " .. line)
      assert.equal("GET /app/boom HTTP/1.1", f.request)
      assert.equal(200, f.status)
      local log = gw:wait_log("formatter exploded", 5, { from = mark, plain = true })
      assert.truthy(log, "no error logged:\n" .. gw:log())
      assert.matches("error", log)
      -- the gateway goes on, with the function
      assert.equal(200, assert(gw:request { path = "/app/next" }).status)
      assert.truthy(wait_line(log_path, "GET /app/next 200"))
    end)

    it("falls back to the default line when it returns something other than a string", function()
      local mark = gw:log_mark()
      assert.equal(200, assert(gw:request { path = "/app/table" }).status)
      local line = wait_line(log_path, "/app/table")
      assert.truthy(line)
      assert.truthy(parse_line(line), "not the default format: " .. line)
      assert.truthy(gw:wait_log("log_format", 5, { from = mark, plain = true }), "no error logged")
    end)
  end)
end)
