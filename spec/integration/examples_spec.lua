-- The shipped examples work as their comments say: every examples/*.lua configuration passes
-- `scgi-lua -t`, and examples/gateway.lua, with its ports moved to free ones, serves the demo
-- application end to end: a plain route, the balancer with the PATH_INFO split, the X-Location
-- internal redirect and the X-Send-Static download (README "A five-minute walkthrough", scgi-lua(8)
-- THE SCGI REQUEST, "Balancers", README "X-Sendfile and internal redirects").

local helpers = require "spec.helpers"
local proc = helpers.proc

local EXAMPLES = helpers.root .. "/examples"
local DEMO_APP = EXAMPLES .. "/demo_app.lua"

-- Example configurations: every examples/*.lua except programs (a "#!" first line, such as
-- demo_app.lua).
local function example_configs()
  local out = {}
  for _, name in ipairs(proc.list_dir(EXAMPLES)) do
    if name:match "%.lua$" then
      local src = assert(proc.read_file(EXAMPLES .. "/" .. name))
      if not src:match "^#!" then out[#out + 1] = name end
    end
  end
  return out
end

-- Replace every "127.0.0.1:<from>" address (not a longer port such as 40001) in `src`;
-- returns the new source and the number of replacements.
local function move_port(src, from, to)
  return src:gsub("127%.0%.0%.1:" .. from .. "%f[%D]", "127.0.0.1:" .. to)
end

describe("examples #integration #examples", function()
  describe("every example configuration passes -t", function()
    local configs = example_configs()

    it("the examples directory has the documented configurations", function()
      for _, want in ipairs { "gateway.lua", "routing.lua", "balancer.lua" } do
        local found = false
        for _, name in ipairs(configs) do found = found or name == want end
        assert.is_true(found, "examples/" .. want .. " is missing")
      end
    end)

    for _, name in ipairs(configs) do
      it("examples/" .. name, function()
        local code, out = helpers.run_gateway { "-t", EXAMPLES .. "/" .. name }
        assert.equal(0, code, out)
        assert.matches("configuration OK", out)
        assert.matches("route 1: ", out)
      end)
    end
  end)

  describe("examples/gateway.lua with two demo apps", function()
    local app1, app2, gw
    local port1, port2

    local function start_app(port)
      return helpers.start_process({ helpers.luajit, DEMO_APP, "--port", tostring(port) },
                                   { ready = { host = "127.0.0.1", port = port } })
    end

    lazy_setup(function()
      port1, port2 = helpers.free_port(), helpers.free_port()
      while port2 == port1 do port2 = helpers.free_port() end
      app1, app2 = start_app(port1), start_app(port2)

      local src = assert(proc.read_file(EXAMPLES .. "/gateway.lua"))
      local n_listen, n1, n2
      src, n_listen = src:gsub('listen = "127%.0%.0%.1:8080"', 'listen = "127.0.0.1:{PORT}"', 1)
      src, n1 = move_port(src, 4000, port1)
      src, n2 = move_port(src, 4001, port2)
      assert(n_listen == 1, "examples/gateway.lua no longer listens on 127.0.0.1:8080")
      assert(n1 >= 2 and n2 >= 1, "examples/gateway.lua no longer uses ports 4000 and 4001")
      -- the copy is written to the gateway's own temp directory by start_gateway
      gw = helpers.start_gateway(src)
    end)

    lazy_teardown(function()
      if gw then gw:stop() end
      if app1 then app1:stop() end
      if app2 then app2:stop() end
    end)

    local function get(path, opts)
      local t = { path = path, timeout = 10 }
      for k, v in pairs(opts or {}) do t[k] = v end
      return assert(gw:request(t))
    end

    local function greeting_pid(res)
      return tonumber(res.body:match "^Hello from the scgi%-lua demo app %(pid (%d+)%)!\n$")
    end

    it("GET /scgi-bin/hello is answered by the demo app on the first port", function()
      local res = get "/scgi-bin/hello"
      assert.equal(200, res.status, res.body)
      assert.matches("^text/plain", res.headers["content-type"])
      assert.equal(app1.pid, greeting_pid(res), res.body)
    end)

    it("/cluster/ alternates between the two apps, with SCRIPT_NAME/PATH_INFO split", function()
      local pids = {}
      for i = 1, 4 do
        local res = get "/cluster/hello"
        assert.equal(200, res.status, res.body)
        pids[i] = greeting_pid(res)
        assert.truthy(pids[i], res.body)
      end
      assert.is_true((pids[1] == app1.pid and pids[2] == app2.pid)
                     or (pids[1] == app2.pid and pids[2] == app1.pid),
                     "not one request each: " .. table.concat(pids, " "))
      assert.equal(pids[1], pids[3])
      assert.equal(pids[2], pids[4])

      -- /cluster/env: each app gets one of two requests; both see the split
      local function served(app)
        local _, n = app.log():gsub('"GET /cluster/env%?x=1" 200', "")
        return n
      end
      local before1, before2 = served(app1), served(app2)
      for _ = 1, 2 do
        local res = get "/cluster/env?x=1"
        assert.equal(200, res.status, res.body)
        local env = helpers.parse_env_lines(res.body)
        assert.equal("/cluster", env.SCRIPT_NAME)
        assert.equal("/env", env.PATH_INFO)
        assert.equal("/cluster/env?x=1", env.REQUEST_URI)
        assert.equal("x=1", env.QUERY_STRING)
        assert.equal("1", env["proxy-scgi-pathinfo"])
      end
      -- the app logs after it answered: poll for both lines
      assert.truthy(helpers.poll(function()
        return served(app1) == before1 + 1 and served(app2) == before2 + 1
      end, 5), "each app should have served one /cluster/env:\n" .. app1.log() .. app2.log())
    end)

    it("/scgi-bin/env keeps the whole path in SCRIPT_NAME (no pathinfo on that route)", function()
      local env = helpers.parse_env_lines(get("/scgi-bin/env").body)
      assert.equal("/scgi-bin/env", env.SCRIPT_NAME)
      assert.is_nil(env.PATH_INFO)
    end)

    it("/django-app/ follows the X-Location internal redirect", function()
      local res = get "/django-app/redirect?to=/scgi-bin/env"
      assert.equal(200, res.status, res.body)
      assert.not_matches("did not redirect", res.body)
      assert.is_nil(res.headers["x-location"])
      local env = helpers.parse_env_lines(res.body)
      assert.equal("/scgi-bin/env", env.REQUEST_URI)
      assert.equal("/scgi-bin/env", env.SCRIPT_NAME)
      assert.equal("200", env.REDIRECT_STATUS)
      assert.equal("/django-app/redirect?to=/scgi-bin/env", env.REDIRECT_REQUEST_URI)

      -- to a greeting on the balancer
      res = get "/django-app/redirect?to=/cluster/hello"
      assert.equal(200, res.status, res.body)
      assert.truthy(greeting_pid(res), res.body)
    end)

    it("/scgi-bin/redirect (default internal_redirect = Location) ends at the hello page", function()
      local res = get "/scgi-bin/redirect"
      assert.equal(200, res.status, res.body)
      assert.equal(app1.pid, greeting_pid(res), res.body)
    end)

    it("/files/download serves the demo app's source via X-Send-Static", function()
      local source = assert(proc.read_file(DEMO_APP))
      local res = get "/files/download"
      assert.equal(200, res.status, res.body:sub(1, 200))
      assert.is_nil(res.headers["x-send-static"])
      assert.equal(tostring(#source), res.headers["content-length"])
      assert.truthy(res.headers["etag"], "no ETag")
      assert.truthy(res.headers["last-modified"], "no Last-Modified")
      assert.is_true(res.body == source, "the body is not examples/demo_app.lua")

      -- a range of it
      res = get("/files/download", { headers = { Range = "bytes=0-19" } })
      assert.equal(206, res.status)
      assert.equal(source:sub(1, 20), res.body)
    end)

    it("/scgi-bin/download (sendfile off) passes the header and the placeholder body", function()
      local res = get "/scgi-bin/download"
      assert.equal(200, res.status)
      assert.matches("demo_app%.lua$", res.headers["x-send-static"])
      assert.matches("sendfile is off", res.body)
    end)

    it("serves its status endpoint with both balancer members", function()
      local res = get "/.well-known/scgi-lua/status"
      assert.equal(200, res.status, res.body)
      assert.matches("^application/json", res.headers["content-type"])
      assert.truthy(res.body:find('"scgi://127.0.0.1:' .. port1 .. '"', 1, true), res.body)
      assert.truthy(res.body:find('"scgi://127.0.0.1:' .. port2 .. '"', 1, true), res.body)
    end)
  end)
end)
