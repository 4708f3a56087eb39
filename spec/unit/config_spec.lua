-- Unit tests for scgilua.config: defaults, normalisation of every listen/pass form, each error
-- message kind, load_file and summary. Pure Lua, no gateway process.

local config = require "scgilua.config"

local PASS_WHAT = "an scgi://host:port/, scgi+unix:/path, unix:/path|scgi://host/ or "
  .. "balancer://name/ URL"
local MEMBER_WHAT = "an scgi://host:port/, scgi+unix:/path or unix:/path|scgi://host/ URL"

-- A minimal valid config with `extra` merged in at the top level.
local function conf(extra)
  local t = { routes = { { path = "/", pass = "scgi://127.0.0.1:4000/" } } }
  for k, v in pairs(extra or {}) do
    t[k] = v
  end
  return t
end

-- A config whose only route has `fields` added.
local function route(fields, extra)
  local r = { path = "/", pass = "scgi://127.0.0.1:4000/" }
  for k, v in pairs(fields) do
    r[k] = v
  end
  extra = extra or {}
  extra.routes = { r }
  return conf(extra)
end

local function ok(t)
  local cfg, errs = config.validate(t)
  assert(cfg, errs and table.concat(errs, "\n"))
  return cfg
end

-- Asserts that `t` is rejected with exactly the listed errors, in order.
local function fails(t, ...)
  local cfg, errs = config.validate(t)
  assert.is_nil(cfg)
  assert.same({ ... }, errs)
end

local function write_file(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

describe("scgilua.config", function()
  it("has a version", function()
    assert.equal("0.1.0", config._VERSION)
  end)

  describe("defaults", function()
    local cfg = ok(conf())

    it("listens on 127.0.0.1:8080", function()
      assert.same({ { kind = "tcp", host = "127.0.0.1", port = 8080, text = "127.0.0.1:8080" } },
        cfg.listen)
    end)

    it("fills the top-level scalars", function()
      assert.equal(1, cfg.workers)
      assert.equal("stderr", cfg.access_log)
      assert.equal("info", cfg.log_level)
      assert.is_nil(cfg.status)
      assert.same({}, cfg.balancers)
    end)

    it("fills every timeout", function()
      assert.same({ client_header = 10, client_body = 60, keepalive = 75, connect = 5,
                    backend = 60, send = 60, shutdown = 30, tls_handshake = 10 }, cfg.timeouts)
    end)

    it("fills every limit", function()
      assert.same({ header_bytes = 16384, headers = 100, body_bytes = 1073741824,
                    connections = 10000, hook_time = 1, lua_memory = 67108864,
                    match_path_bytes = 2048 }, cfg.limits)
    end)

    it("fills a route", function()
      assert.same({
        index = 1, path = "/",
        pass = { kind = "tcp", host = "127.0.0.1", port = 4000, url_path = "/",
                 text = "scgi://127.0.0.1:4000/" },
        internal_redirect = "Location", sendfile = false, env = {}, pathinfo = false,
        pass_auth = true, allow_encoded_slashes = false, https_only = false, timeout = 60,
      }, cfg.routes[1])
    end)

    it("keeps given timeouts and fills the others", function()
      local c = ok(conf { timeouts = { backend = 0.5 } })
      assert.equal(0.5, c.timeouts.backend)
      assert.equal(5, c.timeouts.connect)
    end)

    it("keeps given limits and fills the others", function()
      local c = ok(conf { limits = { body_bytes = 0, headers = 1 } })
      assert.same({ header_bytes = 16384, headers = 1, body_bytes = 0, connections = 10000,
                    hook_time = 1, lua_memory = 67108864, match_path_bytes = 2048 }, c.limits)
    end)

    it("fills the status endpoint", function()
      local c = ok(conf { status = {} })
      assert.same({ path = "/.well-known/scgi-lua/status", allow = { "127.0.0.1", "::1" } },
        c.status)
    end)

    it("treats status = false as no status endpoint", function()
      assert.is_nil(ok(conf { status = false }).status)
    end)

    it("does not modify the input table", function()
      local t = route { env = { B = 1, A = "x" } }
      ok(t)
      assert.same({ B = 1, A = "x" }, t.routes[1].env)
      assert.is_nil(t.listen)
      assert.is_nil(t.routes[1].index)
    end)
  end)

  -- The C decoder (core/config_decode.c) has no defaults of its own: it requires every key
  -- below and fails the load naming the one that is missing. The schema fills each of them,
  -- with the value the decoder assumed before it stopped assuming.
  describe("the table the C decoder reads", function()
    local cfg = ok {
      listen = { "127.0.0.1:0", "unix:/tmp/gw.sock" },
      status = {},
      balancers = { web = { members = { "scgi://127.0.0.1:4001/",
                                        { url = "scgi://127.0.0.1:4002/", check = {} } } } },
      routes = { { path = "/a/", pass = "balancer://web/" },
                 { path = "/", pass = "scgi+unix:/tmp/b.sock", env = { X = "1" } } },
    }

    -- cfg at a dotted path like "balancers.web.members[2].check.path"
    local function at(t, path)
      for key in path:gmatch("[^.%[%]]+") do
        if type(t) ~= "table" then
          return nil
        end
        t = t[tonumber(key) or key]
      end
      return t
    end

    local filled = {
      { "timeouts.client_header", 10 }, { "timeouts.client_body", 60 },
      { "timeouts.keepalive", 75 }, { "timeouts.connect", 5 }, { "timeouts.backend", 60 },
      { "timeouts.send", 60 }, { "timeouts.shutdown", 30 },
      { "limits.header_bytes", 16384 }, { "limits.headers", 100 },
      { "limits.body_bytes", 1073741824 }, { "limits.connections", 10000 },
      { "limits.hook_time", 1 }, { "limits.lua_memory", 67108864 },
      { "limits.match_path_bytes", 2048 },
      { "workers", 1 }, { "access_log", "stderr" }, { "log_level", "info" },
      { "listen[1].kind", "tcp" }, { "listen[1].host", "127.0.0.1" }, { "listen[1].port", 0 },
      { "listen[2].kind", "unix" }, { "listen[2].path", "/tmp/gw.sock" },
      { "status.path", "/.well-known/scgi-lua/status" }, { "status.allow", { "127.0.0.1", "::1" } },
      { "balancers.web.method", "byrequests" }, { "balancers.web.maxattempts", 1 },
      { "balancers.web.members[1].url", "scgi://127.0.0.1:4001/" },
      { "balancers.web.members[1].loadfactor", 1 }, { "balancers.web.members[1].lbset", 0 },
      { "balancers.web.members[1].retry", 10 },
      { "balancers.web.members[1].hot_standby", false },
      { "balancers.web.members[1].disabled", false },
      { "balancers.web.members[1].drain", false },
      { "balancers.web.members[1].ignore_errors", false },
      { "balancers.web.members[1].pass.kind", "tcp" },
      { "balancers.web.members[1].pass.host", "127.0.0.1" },
      { "balancers.web.members[1].pass.port", 4001 },
      { "balancers.web.members[1].pass.url_path", "/" },
      { "balancers.web.members[2].check.interval", 5 },
      { "balancers.web.members[2].check.timeout", 2 },
      { "balancers.web.members[2].check.path", "/" },
      { "routes[1].pass.kind", "balancer" }, { "routes[1].pass.name", "web" },
      { "routes[1].pass.url_path", "/" },
      { "routes[1].internal_redirect", "Location" }, { "routes[1].sendfile", false },
      { "routes[1].env", {} }, { "routes[1].pathinfo", false }, { "routes[1].pass_auth", true },
      { "routes[1].allow_encoded_slashes", false }, { "routes[1].timeout", 60 },
      { "routes[2].pass.kind", "unix" }, { "routes[2].pass.path", "/tmp/b.sock" },
      { "routes[2].pass.url_path", "/" }, { "routes[2].env[1].name", "X" },
      { "routes[2].env[1].value", "1" }, { "routes[2].timeout", 60 },
    }
    for _, f in ipairs(filled) do
      it("fills " .. f[1], function()
        assert.same(f[2], at(cfg, f[1]))
      end)
    end

    it("gives a route without a timeout the value of timeouts.backend", function()
      local c = ok(route({}, { timeouts = { backend = 7 } }))
      assert.equal(7, c.routes[1].timeout)
      assert.equal(120, ok(route({ timeout = 120 }, { timeouts = { backend = 7 } })).routes[1].timeout)
    end)
  end)

  describe("top-level scalars", function()
    it("accepts workers = n and workers = 'auto' (0)", function()
      assert.equal(4, ok(conf { workers = 4 }).workers)
      assert.equal(0, ok(conf { workers = "auto" }).workers)
    end)

    it("rejects bad workers", function()
      fails(conf { workers = 0 }, 'workers: expected an integer >= 1 or "auto", got 0 (number)')
      fails(conf { workers = 1.5 },
        'workers: expected an integer >= 1 or "auto", got 1.5 (number)')
      fails(conf { workers = "many" },
        'workers: expected an integer >= 1 or "auto", got "many" (string)')
    end)

    it("accepts access_log paths and false", function()
      assert.equal("/var/log/gw.log", ok(conf { access_log = "/var/log/gw.log" }).access_log)
      assert.equal(false, ok(conf { access_log = false }).access_log)
    end)

    it("rejects a bad access_log", function()
      fails(conf { access_log = true },
        'access_log: expected "stderr", a file path or false, got true (boolean)')
      fails(conf { access_log = "" },
        'access_log: expected "stderr", a file path or false, got "" (string)')
    end)

    it("accepts each log level", function()
      for _, l in ipairs { "debug", "info", "warn", "error" } do
        assert.equal(l, ok(conf { log_level = l }).log_level)
      end
    end)

    it("rejects an unknown log level, with a suggestion", function()
      fails(conf { log_level = "eror" }, 'log_level: expected one of "debug", "info", '
        .. '"warn", "error", got "eror" (string) (did you mean "error"?)')
      fails(conf { log_level = "warning" }, 'log_level: expected one of "debug", "info", '
        .. '"warn", "error", got "warning" (string)')
      fails(conf { log_level = 3 },
        'log_level: expected one of "debug", "info", "warn", "error", got 3 (number)')
    end)
  end)

  describe("listen", function()
    local function listen(v)
      return ok(conf { listen = v }).listen
    end

    it("normalises HOST:PORT", function()
      assert.same({ { kind = "tcp", host = "10.1.2.3", port = 80, text = "10.1.2.3:80" } },
        listen "10.1.2.3:80")
    end)

    it("normalises [IPv6]:PORT", function()
      assert.same({ { kind = "tcp", host = "::1", port = 8080, text = "[::1]:8080" } },
        listen "[::1]:8080")
      assert.same({ { kind = "tcp", host = "fe80::1:2", port = 1, text = "[fe80::1:2]:1" } },
        listen "[fe80::1:2]:1")
    end)

    it("normalises *:PORT, :PORT and PORT to 0.0.0.0", function()
      for _, v in ipairs { "*:80", ":80", "80" } do
        assert.same({ { kind = "tcp", host = "0.0.0.0", port = 80, text = "0.0.0.0:80" } },
          listen(v))
      end
    end)

    it("accepts a host name", function()
      assert.same({ { kind = "tcp", host = "localhost", port = 8080, text = "localhost:8080" } },
        listen "localhost:8080")
    end)

    it("accepts port 0 (ephemeral)", function()
      assert.equal(0, listen("127.0.0.1:0")[1].port)
    end)

    it("normalises unix:/path", function()
      assert.same({ { kind = "unix", path = "/run/gw.sock", text = "unix:/run/gw.sock" } },
        listen "unix:/run/gw.sock")
    end)

    it("accepts a list", function()
      local l = listen { "127.0.0.1:8080", "unix:/run/gw.sock", "[::]:8080" }
      assert.equal(3, #l)
      assert.equal("unix", l[2].kind)
      assert.equal("::", l[3].host)
    end)

    it("rejects a port out of range", function()
      fails(conf { listen = "127.0.0.1:65536" },
        'listen: expected a port between 0 and 65535, got "127.0.0.1:65536" (string)')
    end)

    it("rejects a missing port", function()
      fails(conf { listen = "localhost" }, 'listen: expected an address like "127.0.0.1:8080", '
        .. '"[::1]:8080", "*:8080", "8080" or "unix:/path", got "localhost" (string)')
    end)

    it("rejects a bad host", function()
      local msg = "expected a host name, an IPv4 address or an [IPv6] address, got "
      fails(conf { listen = "300.1.1.1:80" }, "listen: " .. msg .. '"300.1.1.1:80" (string)')
      fails(conf { listen = "[::g]:80" }, "listen: " .. msg .. '"[::g]:80" (string)')
      fails(conf { listen = "a b:80" }, "listen: " .. msg .. '"a b:80" (string)')
    end)

    it("asks for brackets around an IPv6 address", function()
      fails(conf { listen = "::1:8080" },
        'listen: IPv6 addresses need brackets, as in "[::1]:8080", got "::1:8080" (string)')
    end)

    it("rejects a relative or too long unix path", function()
      fails(conf { listen = "unix:run/gw.sock" },
        'listen: expected an absolute socket path, got "unix:run/gw.sock" (string)')
      local long = "unix:/" .. ("x"):rep(107)
      local _, errs = config.validate(conf { listen = long })
      assert.equal(1, #errs)
      assert.matches("^listen: socket path too long %(107 bytes at most%), got ", errs[1])
    end)

    it("reports list elements by index", function()
      fails(conf { listen = { "127.0.0.1:80", 80 } }, 'listen[2]: expected an address like '
        .. '"127.0.0.1:8080", "[::1]:8080", "*:8080", "8080" or "unix:/path" or '
        .. '{ addr = , tls = }, got 80 (number)')
    end)

    it("rejects an empty list, a non-list and a duplicate address", function()
      local what = 'an address like "127.0.0.1:8080", "[::1]:8080", "*:8080", "8080" or '
        .. '"unix:/path", or a list of them'
      fails(conf { listen = {} }, "listen: expected " .. what .. ", got an empty table")
      fails(conf { listen = 8080 }, "listen: expected " .. what .. ", got 8080 (number)")
      fails(conf { listen = { "*:80", "0.0.0.0:80" } },
        'listen[2]: duplicate address "0.0.0.0:80" (same as listen[1])')
    end)

    it("reports stray keys and holes in a list", function()
      fails(conf { listen = { "127.0.0.1:80", port = 80 } },
        "listen.port: unexpected key in a list")
      fails(conf { listen = { "127.0.0.1:80", nil, "127.0.0.1:81" } },
        "listen[2]: missing list element (a list cannot have holes)")
    end)
  end)

  describe("timeouts and limits", function()
    it("accept fractional timeouts", function()
      assert.equal(0.25, ok(conf { timeouts = { connect = 0.25 } }).timeouts.connect)
    end)

    it("reject non-positive, non-finite and non-number timeouts", function()
      fails(conf { timeouts = { connect = 0 } },
        "timeouts.connect: expected a positive number, got 0 (number)")
      fails(conf { timeouts = { backend = -1 } },
        "timeouts.backend: expected a positive number, got -1 (number)")
      fails(conf { timeouts = { send = math.huge } },
        "timeouts.send: expected a positive number, got inf (number)")
      fails(conf { timeouts = { shutdown = "30" } },
        'timeouts.shutdown: expected a positive number, got "30" (string)')
    end)

    it("reject unknown timeouts with a suggestion", function()
      fails(conf { timeouts = { conect = 1 } },
        'timeouts.conect: unknown field (did you mean "connect"?)')
      fails(conf { timeouts = { idle = 1 } }, "timeouts.idle: unknown field")
    end)

    it("reject a timeouts value that is not a table", function()
      fails(conf { timeouts = 10 }, "timeouts: expected a table, got 10 (number)")
    end)

    it("check limit ranges", function()
      fails(conf { limits = { hook_time = 0 } },
        "limits.hook_time: expected a positive number, got 0 (number)")
      fails(conf { limits = { lua_memory = 1000 } },
        "limits.lua_memory: expected an integer >= 1048576, got 1000 (number)")
      fails(conf { limits = { header_bytes = 512 } },
        "limits.header_bytes: expected an integer between 1024 and 1048576, got 512 (number)")
      fails(conf { limits = { headers = 10001 } },
        "limits.headers: expected an integer between 1 and 10000, got 10001 (number)")
      fails(conf { limits = { body_bytes = -1 } },
        "limits.body_bytes: expected an integer >= 0, got -1 (number)")
      fails(conf { limits = { connections = 0.5 } },
        "limits.connections: expected an integer >= 1, got 0.5 (number)")
      fails(conf { limits = { header_bytes = "2x" } },
        'limits.header_bytes: expected an integer between 1024 and 1048576, got "2x" (string)')
    end)

    it("reject unknown limits", function()
      fails(conf { limits = { header = 1 } },
        'limits.header: unknown field (did you mean "headers"?)')
    end)
  end)

  describe("status", function()
    it("keeps path and allow (IPs and CIDR ranges)", function()
      local allow = { "10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8", "::ffff:1.2.3.4" }
      local c = ok(conf { status = { path = "/status", allow = allow } })
      assert.same({ path = "/status", allow = allow }, c.status)
    end)

    it("rejects a relative path", function()
      fails(conf { status = { path = "status" } },
        'status.path: expected a path starting with "/", got "status" (string)')
    end)

    it("rejects bad allow entries", function()
      local what = 'expected an IP address or CIDR range like "10.0.0.0/8", got '
      fails(conf { status = { allow = { "10.0.0.0/33", "localhost", "::1/129", 7 } } },
        "status.allow[1]: " .. what .. '"10.0.0.0/33" (string)',
        "status.allow[2]: " .. what .. '"localhost" (string)',
        "status.allow[3]: " .. what .. '"::1/129" (string)',
        "status.allow[4]: " .. what .. "7 (number)")
      fails(conf { status = { allow = "127.0.0.1" } },
        'status.allow: expected a list, got "127.0.0.1" (string)')
    end)

    it("rejects unknown fields and wrong types", function()
      fails(conf { status = { alow = {} } }, 'status.alow: unknown field (did you mean "allow"?)')
      fails(conf { status = true }, "status: expected a table or false, got true (boolean)")
    end)
  end)

  describe("pass URLs", function()
    local function pass(url, extra)
      return ok(route({ pass = url }, extra)).routes[1].pass
    end

    it("normalises scgi://HOST:PORT/PATH", function()
      assert.same({ kind = "tcp", host = "127.0.0.1", port = 4000, url_path = "/",
                    text = "scgi://127.0.0.1:4000/" }, pass "scgi://127.0.0.1:4000/")
      assert.same({ kind = "tcp", host = "app.local", port = 9000, url_path = "/app/x",
                    text = "scgi://app.local:9000/app/x" }, pass "scgi://app.local:9000/app/x")
    end)

    it("defaults the path to /", function()
      assert.same({ kind = "tcp", host = "localhost", port = 4000, url_path = "/",
                    text = "scgi://localhost:4000/" }, pass "scgi://localhost:4000")
    end)

    it("strips IPv6 brackets", function()
      assert.same({ kind = "tcp", host = "::1", port = 4000, url_path = "/",
                    text = "scgi://[::1]:4000/" }, pass "scgi://[::1]:4000/")
    end)

    it("normalises scgi+unix:/path", function()
      assert.same({ kind = "unix", path = "/run/a.sock", url_path = "/",
                    text = "scgi+unix:/run/a.sock" }, pass "scgi+unix:/run/a.sock")
    end)

    it("normalises Apache's unix:/path|scgi://host/PATH", function()
      assert.same({ kind = "unix", path = "/run/a.sock", url_path = "/",
                    text = "scgi+unix:/run/a.sock" }, pass "unix:/run/a.sock|scgi://localhost/")
      assert.same({ kind = "unix", path = "/run/a.sock", url_path = "/app",
                    text = "unix:/run/a.sock|scgi://localhost/app" },
        pass "unix:/run/a.sock|scgi://whatever/app")
    end)

    it("normalises balancer://NAME/ and keeps its path", function()
      local b = { web = { members = { "scgi://127.0.0.1:4000" } } }
      assert.same({ kind = "balancer", name = "web", url_path = "/",
                    text = "balancer://web/" }, pass("balancer://web/", { balancers = b }))
      assert.same({ kind = "balancer", name = "web", url_path = "/x",
                    text = "balancer://web/x" }, pass("balancer://web/x", { balancers = b }))
      assert.equal("/", pass("balancer://web", { balancers = b }).url_path)
    end)

    it("rejects other schemes", function()
      fails(route { pass = "http://x" },
        "routes[1].pass: expected " .. PASS_WHAT .. ', got "http://x" (string)')
      fails(route { pass = 4000 },
        "routes[1].pass: expected " .. PASS_WHAT .. ", got 4000 (number)")
    end)

    it("requires a port between 1 and 65535", function()
      fails(route { pass = "scgi://127.0.0.1/" },
        'routes[1].pass: expected scgi://HOST:PORT/ with a port, got "scgi://127.0.0.1/" (string)')
      fails(route { pass = "scgi://127.0.0.1:0/" },
        'routes[1].pass: expected a port between 1 and 65535, got "scgi://127.0.0.1:0/" (string)')
      fails(route { pass = "scgi://h:99999/" },
        'routes[1].pass: expected a port between 1 and 65535, got "scgi://h:99999/" (string)')
    end)

    it("rejects bad hosts and paths", function()
      fails(route { pass = "scgi://[::1:4000/" }, "routes[1].pass: expected a host name, an IPv4 "
        .. 'address or an [IPv6] address, got "scgi://[::1:4000/" (string)')
      fails(route { pass = "scgi://h:1/a b" },
        "routes[1].pass: expected " .. PASS_WHAT .. ', got "scgi://h:1/a b" (string)')
      fails(route { pass = "unix:/a.sock|http://localhost/" }, "routes[1].pass: expected "
        .. PASS_WHAT .. ', got "unix:/a.sock|http://localhost/" (string)')
    end)

    it("rejects relative socket paths", function()
      fails(route { pass = "scgi+unix:a.sock" },
        'routes[1].pass: expected an absolute socket path, got "scgi+unix:a.sock" (string)')
    end)

    it("reports an unknown balancer with the known names", function()
      fails(route({ pass = "balancer://web/" },
        { balancers = { b = { members = { "scgi://h:1" } }, a = { members = { "scgi://h:2" } } } }),
        'routes[1].pass: unknown balancer "web" (known: a, b)')
      fails(route { pass = "balancer://web/" },
        'routes[1].pass: unknown balancer "web" (known: none)')
    end)
  end)

  describe("routes", function()
    it("requires routes", function()
      fails({}, "routes: required field missing")
      fails({ routes = {} }, "routes: expected a non-empty list of routes, got an empty table")
      fails({ routes = "/" }, 'routes: expected a non-empty list of routes, got "/" (string)')
    end)

    it("requires a table per route", function()
      fails({ routes = { "/" } }, 'routes[1]: expected a table, got "/" (string)')
    end)

    it("requires path or match", function()
      fails({ routes = { { pass = "scgi://h:1/" } } },
        'routes[1]: needs a "path" or a "match" field (or both)')
    end)

    it("requires pass", function()
      fails({ routes = { { path = "/" } } }, "routes[1].pass: required field missing")
    end)

    it("numbers routes", function()
      local c = ok { routes = { { path = "/a/", pass = "scgi://h:1/" },
                                { path = "/b/", pass = "scgi://h:2/" } } }
      assert.equal(1, c.routes[1].index)
      assert.equal(2, c.routes[2].index)
    end)

    it("checks path", function()
      fails(route { path = "x/" },
        'routes[1].path: expected a path starting with "/", got "x/" (string)')
      fails(route { path = "/a\0" },
        'routes[1].path: expected a path starting with "/", got "/a\\0" (string)')
    end)

    it("accepts match as a pattern or a function, alone or with path", function()
      local f = function() return true end
      local c = ok { routes = { { match = "^/api/%d+$", pass = "scgi://h:1/" },
                                { match = f, pass = "scgi://h:1/" },
                                { path = "/x/", match = "%.php$", pass = "scgi://h:1/" } } }
      assert.equal("^/api/%d+$", c.routes[1].match)
      assert.is_nil(c.routes[1].path)
      assert.equal(f, c.routes[2].match)
      assert.equal("/x/", c.routes[3].path)
      assert.equal("%.php$", c.routes[3].match)
    end)

    it("rejects invalid Lua patterns", function()
      fails(route { match = "[a" },
        "routes[1].match: invalid Lua pattern \"[a\": malformed pattern (missing ']')")
      fails(route { match = "a%" },
        "routes[1].match: invalid Lua pattern \"a%\": malformed pattern (ends with '%')")
      fails(route { match = "a(" }, 'routes[1].match: invalid Lua pattern "a(": unfinished capture')
      fails(route { match = "a)" },
        'routes[1].match: invalid Lua pattern "a)": invalid pattern capture')
      fails(route { match = "a%1" },
        'routes[1].match: invalid Lua pattern "a%1": invalid capture index')
      fails(route { match = "a%b" },
        'routes[1].match: invalid Lua pattern "a%b": unbalanced pattern')
      fails(route { match = "a%fx" },
        "routes[1].match: invalid Lua pattern \"a%fx\": missing '[' after '%f' in pattern")
      fails(route { match = "/(.+)/(.+)%.jpg$" },
        "routes[1].match: invalid Lua pattern \"/(.+)/(.+)%.jpg$\": matching costs n^3 steps for a " ..
        "path of n bytes (each repeated item that can match '/', such as .* .+ .- %S+ [^x]*, and " ..
        "a missing '^' anchor multiply by n); anchor it with '^' or use [^/]+ for a segment")
      local cost = require("scgilua.config").pattern_cost_error
      -- classes that cross segments count like "." does; ones that cannot are free
      assert.truthy(cost "/([%w/]+)/([%w/]+)%.jpg$")
      assert.truthy(cost "/(%S+)/(%S+)%.jpg$")
      assert.truthy(cost "^/([^x]*)/([^y]*)/(.*)$")
      assert.is_nil(cost "^/api/(%w+)/(%w+)/(%d+)$")
      assert.is_nil(cost "/([^/]+)/([^/]+)/([^/]+)$")
      assert.is_nil(cost "^/a%f[%w]b(.*)$")
      assert.is_nil(require("scgilua.config").pattern_cost_error "^/(.+)/(.+)%.jpg$")
      assert.is_nil(require("scgilua.config").pattern_cost_error "/([^/]+)/(.+)%.jpg$")
      assert.is_nil(require("scgilua.config").pattern_cost_error "%.(.*)$")
      fails(route { match = true },
        "routes[1].match: expected a Lua pattern or a function, got true (boolean)")
    end)

    it("accepts tricky but valid patterns", function()
      for _, p in ipairs { "[]]", "[^]]", "[%]]", "%b()", "%f[%w]x", "(a)%1", "()", "^/$" } do
        assert.equal(p, ok(route { match = p }).routes[1].match)
      end
    end)

    it("normalises internal_redirect", function()
      assert.equal("Location", ok(route { internal_redirect = true }).routes[1].internal_redirect)
      assert.equal(false, ok(route { internal_redirect = false }).routes[1].internal_redirect)
      assert.equal("X-Location",
        ok(route { internal_redirect = "X-Location" }).routes[1].internal_redirect)
      fails(route { internal_redirect = "X Location" }, "routes[1].internal_redirect: expected "
        .. 'true, false or a header name, got "X Location" (string)')
      fails(route { internal_redirect = 1 },
        "routes[1].internal_redirect: expected true, false or a header name, got 1 (number)")
    end)

    it("normalises sendfile and sendfile_root", function()
      assert.equal("X-Sendfile", ok(route { sendfile = true }).routes[1].sendfile)
      assert.equal("X-Send-Static", ok(route { sendfile = "X-Send-Static" }).routes[1].sendfile)
      assert.same({ "/srv/files" },
        ok(route { sendfile_root = "/srv/files" }).routes[1].sendfile_root)
      assert.same({ "/a", "/b" },
        ok(route { sendfile_root = { "/a", "/b" } }).routes[1].sendfile_root)
      fails(route { sendfile = "" },
        'routes[1].sendfile: expected true, false or a header name, got "" (string)')
      fails(route { sendfile_root = "srv" },
        'routes[1].sendfile_root: expected an absolute path, got "srv" (string)')
      fails(route { sendfile_root = { "/a", "b" } },
        'routes[1].sendfile_root[2]: expected an absolute path, got "b" (string)')
      fails(route { sendfile_root = {} }, "routes[1].sendfile_root: expected an absolute path "
        .. "or a non-empty list of them, got an empty table")
    end)

    it("turns env into a list sorted by name, numbers into strings", function()
      local f = function() end
      local r = ok(route { env = { TENANT = f, B = 2, A = "x", C = false, D = 1.5 } }).routes[1]
      assert.same({ { name = "A", value = "x" }, { name = "B", value = "2" },
                    { name = "C", value = false }, { name = "D", value = "1.5" },
                    { name = "TENANT", value = f } }, r.env)
      assert.is_false(r.pathinfo)
    end)

    it("writes large integers without an exponent", function()
      assert.equal("1000000000000000", ok(route { env = { N = 1e15 } }).routes[1].env[1].value)
    end)

    it("sets pathinfo from proxy-scgi-pathinfo", function()
      assert.is_true(ok(route { env = { ["proxy-scgi-pathinfo"] = "1" } }).routes[1].pathinfo)
      assert.is_true(ok(route { env = { ["proxy-scgi-pathinfo"] = 0 } }).routes[1].pathinfo)
      assert.is_false(ok(route { env = { ["proxy-scgi-pathinfo"] = false } }).routes[1].pathinfo)
    end)

    it("rejects bad env names and values", function()
      fails(route { env = { [""] = "x", ["A=B"] = "x", ["A\0"] = "x", [1] = "x" } },
        'routes[1].env[1]: expected a variable name without "=" or NUL as key, got 1 (number)',
        'routes[1].env[""]: expected a variable name without "=" or NUL as key, got "" (string)',
        'routes[1].env["A\\0"]: '
          .. 'expected a variable name without "=" or NUL as key, got "A\\0" (string)',
        'routes[1].env["A=B"]: '
          .. 'expected a variable name without "=" or NUL as key, got "A=B" (string)')
      fails(route { env = { A = true, B = {}, C = "a\0b", D = 0 / 0 } },
        "routes[1].env.A: expected a string, a number, false or a function, got true (boolean)",
        "routes[1].env.B: expected a string, a number, false or a function, got a table",
        'routes[1].env.C: expected a string without NUL bytes, got "a\\0b" (string)',
        "routes[1].env.D: expected a string, a number, false or a function, got nan (number)")
      fails(route { env = "A=1" },
        'routes[1].env: expected a table of variable names to values, got "A=1" (string)')
    end)

    it("checks timeout, pass_auth and access", function()
      local f = function() end
      local r = ok(route { timeout = 120, pass_auth = false, access = f }).routes[1]
      assert.equal(120, r.timeout)
      assert.is_false(r.pass_auth)
      assert.equal(f, r.access)
      fails(route { timeout = 0 }, "routes[1].timeout: expected a positive number, got 0 (number)")
      fails(route { pass_auth = "no" },
        'routes[1].pass_auth: expected a boolean, got "no" (string)')
      fails(route { access = "deny" }, 'routes[1].access: expected a function, got "deny" (string)')
    end)

    it("checks allow_encoded_slashes", function()
      assert.is_true(ok(route { allow_encoded_slashes = true }).routes[1].allow_encoded_slashes)
      fails(route { allow_encoded_slashes = "On" },
        'routes[1].allow_encoded_slashes: expected a boolean, got "On" (string)')
    end)

    it("rejects unknown route fields with a suggestion", function()
      fails(route { pas_auth = true },
        'routes[1].pas_auth: unknown field (did you mean "pass_auth"?)')
      fails(route { sendfileroot = "/x" },
        'routes[1].sendfileroot: unknown field (did you mean "sendfile_root"?)')
      fails(route { frobnicate = 1 }, "routes[1].frobnicate: unknown field")
    end)
  end)

  describe("balancers", function()
    local function balancer(b, pass)
      return ok { balancers = { web = b },
                  routes = { { path = "/", pass = pass or "balancer://web/" } } }.balancers.web
    end

    local function bfails(b, ...)
      fails({ balancers = { web = b }, routes = { { path = "/", pass = "balancer://web/" } } }, ...)
    end

    it("fills defaults for string members", function()
      assert.same({
        name = "web", method = "byrequests", maxattempts = 1,
        members = {
          { url = "scgi://127.0.0.1:4000",
            pass = { kind = "tcp", host = "127.0.0.1", port = 4000, url_path = "/",
                     text = "scgi://127.0.0.1:4000/" },
            loadfactor = 1, lbset = 0, retry = 10, hot_standby = false, disabled = false,
            drain = false, ignore_errors = false },
          { url = "scgi+unix:/run/b.sock",
            pass = { kind = "unix", path = "/run/b.sock", url_path = "/",
                     text = "scgi+unix:/run/b.sock" },
            loadfactor = 1, lbset = 0, retry = 10, hot_standby = false, disabled = false,
            drain = false, ignore_errors = false },
        },
      }, balancer { members = { "scgi://127.0.0.1:4000", "scgi+unix:/run/b.sock" } })
    end)

    it("keeps member options", function()
      local m = balancer { members = { { url = "unix:/run/a.sock|scgi://localhost/",
        loadfactor = 100, lbset = 99, retry = 0, status = "+H+I", route = "b_1",
        check = { interval = 0.5, path = "/health" } } } }.members[1]
      assert.same({ url = "unix:/run/a.sock|scgi://localhost/",
        pass = { kind = "unix", path = "/run/a.sock", url_path = "/",
                 text = "scgi+unix:/run/a.sock" },
        loadfactor = 100, lbset = 99, retry = 0, route = "b_1",
        hot_standby = true, disabled = false, drain = false, ignore_errors = true,
        check = { interval = 0.5, path = "/health", timeout = 2 } }, m)
    end)

    it("parses status flags", function()
      local function flags(st)
        local m = balancer { members = { { url = "scgi://h:1", status = st } } }.members[1]
        return { m.hot_standby, m.disabled, m.drain, m.ignore_errors }
      end
      assert.same({ true, false, false, false }, flags "+H")
      assert.same({ false, true, false, false }, flags "+D")
      assert.same({ false, false, true, false }, flags "+N")
      assert.same({ false, false, false, true }, flags "+I")
      assert.same({ true, false, false, true }, flags "+H+I")
      assert.same({ true, false, true, true }, flags "+HIN")
      assert.same({ false, false, false, true }, flags "+h+i-H")
    end)

    it("rejects bad status flags", function()
      local what = 'a status like "+H", "+D", "+N", "+I" or a combination like "+H+I"'
      bfails({ members = { { url = "scgi://h:1", status = "H" } } },
        "balancers.web.members[1].status: expected " .. what .. ', got "H" (string)')
      bfails({ members = { { url = "scgi://h:1", status = "+X" } } },
        "balancers.web.members[1].status: expected " .. what .. ', got "+X" (string)')
    end)

    it("accepts each method and a function", function()
      for _, m in ipairs { "byrequests", "bytraffic", "bybusyness" } do
        local b = balancer { method = m, members = { "scgi://h:1" } }
        assert.equal(m, b.method)
        assert.is_nil(b.method_fn)
      end
      local f = function(members) return members[1] end
      local b = balancer { method = f, members = { "scgi://h:1" } }
      assert.equal("lua", b.method)
      assert.equal(f, b.method_fn)
    end)

    it("rejects an unknown method", function()
      bfails({ method = "byrequest", members = { "scgi://h:1" } }, "balancers.web.method: "
        .. 'expected one of "byrequests", "bytraffic", "bybusyness" or a function, '
        .. 'got "byrequest" (string) (did you mean "byrequests"?)')
      bfails({ method = "lua", members = { "scgi://h:1" } }, "balancers.web.method: expected "
        .. 'one of "byrequests", "bytraffic", "bybusyness" or a function, got "lua" (string)')
    end)

    it("defaults maxattempts to members - 1 and keeps sticky", function()
      local b = balancer { sticky = "ROUTEID",
        members = { "scgi://h:1", "scgi://h:2", "scgi://h:3" } }
      assert.equal(2, b.maxattempts)
      assert.equal("ROUTEID", b.sticky)
      assert.equal(0, balancer { members = { "scgi://h:1" } }.maxattempts)
      assert.equal(5, balancer { maxattempts = 5, members = { "scgi://h:1" } }.maxattempts)
    end)

    it("requires members", function()
      bfails({}, "balancers.web.members: required field missing")
      bfails({ members = {} },
        "balancers.web.members: expected a non-empty list of members, got an empty table")
    end)

    it("checks member numbers", function()
      bfails({ members = { "scgi://h:1", { url = "scgi://h:2", loadfactor = "2x" } } },
        'balancers.web.members[2].loadfactor: '
          .. 'expected an integer between 1 and 100, got "2x" (string)')
      bfails({ members = { { url = "scgi://h:2", loadfactor = 0, lbset = 100, retry = -1 } } },
        "balancers.web.members[1].loadfactor: "
          .. "expected an integer between 1 and 100, got 0 (number)",
        "balancers.web.members[1].lbset: expected an integer between 0 and 99, got 100 (number)",
        "balancers.web.members[1].retry: expected a number >= 0, got -1 (number)")
      bfails({ maxattempts = -1, members = { "scgi://h:1" } },
        "balancers.web.maxattempts: expected an integer >= 0, got -1 (number)")
    end)

    it("checks member urls (no balancer members)", function()
      bfails({ members = { "balancer://web/" } },
        "balancers.web.members[1]: expected " .. MEMBER_WHAT .. ', got "balancer://web/" (string)')
      bfails({ members = { { url = "http://h:1" } } },
        "balancers.web.members[1].url: expected " .. MEMBER_WHAT .. ', got "http://h:1" (string)')
      bfails({ members = { { loadfactor = 2 } } },
        "balancers.web.members[1].url: required field missing")
      bfails({ members = { true } },
        "balancers.web.members[1]: expected " .. MEMBER_WHAT .. " or a table, got true (boolean)")
    end)

    it("rejects duplicate member urls and routes", function()
      bfails({ members = { "scgi://h:1/", "scgi://h:1" } },
        'balancers.web.members[2].url: duplicate member "scgi://h:1" (same as members[1])')
      bfails({ members = { { url = "scgi://h:1", route = "a" },
                           { url = "scgi://h:2", route = "a" } } },
        'balancers.web.members[2].route: duplicate route "a" (same as members[1])')
    end)

    it("checks route, sticky and check", function()
      bfails({ members = { { url = "scgi://h:1", route = "a.b" } } },
        "balancers.web.members[1].route: "
        .. 'expected a route name (letters, digits, "_", "-"), got "a.b" (string)')
      bfails({ sticky = "a b", members = { "scgi://h:1" } },
        'balancers.web.sticky: expected a cookie or parameter name, got "a b" (string)')
      bfails({ members = { { url = "scgi://h:1", check = { interval = 0, path = "health",
                                                            timout = 1 } } } },
        "balancers.web.members[1].check.interval: expected a positive number, got 0 (number)",
        'balancers.web.members[1].check.path: '
          .. 'expected a path starting with "/", got "health" (string)',
        'balancers.web.members[1].check.timout: unknown field (did you mean "timeout"?)')
      assert.same({ interval = 5, path = "/", timeout = 2 },
        balancer { members = { { url = "scgi://h:1", check = {} } } }.members[1].check)
    end)

    it("rejects unknown balancer and member fields", function()
      bfails({ members = { "scgi://h:1" }, stickysession = "x" },
        "balancers.web.stickysession: unknown field")
      bfails({ members = { { url = "scgi://h:1", loadfacter = 2 } } },
        'balancers.web.members[1].loadfacter: unknown field (did you mean "loadfactor"?)')
    end)

    it("checks balancer names", function()
      fails(conf { balancers = { ["a b"] = { members = { "scgi://h:1" } } } },
        'balancers["a b"]: '
          .. 'expected a balancer name (letters, digits, "_", ".", "-"), got "a b" (string)')
      fails(conf { balancers = { { members = { "scgi://h:1" } } } },
        'balancers[1]: expected a balancer name (letters, digits, "_", ".", "-"), got 1 (number)')
      fails(conf { balancers = "web" }, 'balancers: expected a table, got "web" (string)')
      local c = ok { balancers = { ["my-app.v2"] = { members = { "scgi://h:1" } } },
                     routes = { { path = "/", pass = "balancer://my-app.v2/" } } }
      assert.equal("my-app.v2", c.balancers["my-app.v2"].name)
    end)
  end)

  describe("unknown keys", function()
    it("suggest the closest top-level field", function()
      fails(conf { lisen = "127.0.0.1:80" }, 'lisen: unknown field (did you mean "listen"?)')
      fails(conf { Workers = 2 }, 'Workers: unknown field (did you mean "workers"?)')
      fails(conf { route = {} }, 'route: unknown field (did you mean "routes"?)')
      fails(conf { timeout = {} }, 'timeout: unknown field (did you mean "timeouts"?)')
    end)

    it("do not suggest unrelated fields", function()
      fails(conf { zz = 1 }, "zz: unknown field")
      fails(conf { foobar = 1 }, "foobar: unknown field")
    end)

    it("are reported sorted, numbers first", function()
      fails(conf { [1] = true, b = 1, a = 1, ["x-y"] = 1 },
        "[1]: unknown field", "a: unknown field", "b: unknown field", '["x-y"]: unknown field')
    end)
  end)

  it("reports all errors together, in a fixed order", function()
    local t = {
      lisen = "127.0.0.1:8080",
      balancers = { web = { members = { "scgi://127.0.0.1:4000",
                                        { url = "scgi://h:1", loadfactor = "2x" } } } },
      routes = { { path = "/", pass = "scgi://127.0.0.1:4000/" },
                 { path = "/x/", pass = "balancer://wbe/" } },
    }
    fails(t,
      'balancers.web.members[2].loadfactor: '
        .. 'expected an integer between 1 and 100, got "2x" (string)',
      'routes[2].pass: unknown balancer "wbe" (known: web)',
      'lisen: unknown field (did you mean "listen"?)')
    local _, again = config.validate(t)
    local _, third = config.validate(t)
    assert.same(again, third)
  end)

  it("raises on misuse", function()
    assert.has_error(function() config.validate(nil) end,
      "bad argument #1 to 'validate' (table expected, got nil)")
    assert.has_error(function() config.validate({}, 1) end,
      "bad argument #2 to 'validate' (string expected, got number)")
    assert.has_error(function() config.load_file(nil) end,
      "bad argument #1 to 'load_file' (string expected, got nil)")
    assert.has_error(function() config.summary(nil) end,
      "bad argument #1 to 'summary' (validated config expected)")
  end)

  describe("load_file", function()
    local files = {}
    local function file(text)
      local name = write_file(text)
      files[#files + 1] = name
      return name
    end

    teardown(function()
      for _, f in ipairs(files) do
        os.remove(f)
      end
    end)

    it("loads and validates a file", function()
      local name = file [[
        local port = 4000
        return { listen = "127.0.0.1:0",
                 routes = { { path = "/app/", pass = "scgi://127.0.0.1:" .. port .. "/" } } }
      ]]
      local cfg, errs = config.load_file(name)
      assert.is_nil(errs)
      assert.equal(0, cfg.listen[1].port)
      assert.equal(4000, cfg.routes[1].pass.port)
    end)

    it("reports a syntax error with file and line", function()
      local name = file "return {\n  listen = \"127.0.0.1:80\"\n  routes = {}\n}\n"
      local cfg, errs = config.load_file(name)
      assert.is_nil(cfg)
      assert.equal(1, #errs)
      assert.equal(name .. ":3:", errs[1]:sub(1, #name + 3))
    end)

    it("reports a runtime error with file and line", function()
      local name = file "local x = nil\nreturn { routes = x.y }\n"
      local cfg, errs = config.load_file(name)
      assert.is_nil(cfg)
      assert.equal(1, #errs)
      assert.matches(name .. ":2: attempt to index", errs[1], 1, true)
    end)

    it("names the file for errors raised without a position", function()
      local name = file 'error("no config today", 0)'
      local _, errs = config.load_file(name)
      assert.same({ name .. ": no config today" }, errs)
      name = file "error({})"
      _, errs = config.load_file(name)
      assert.same({ name .. ": error object is a table" }, errs)
    end)

    it("rejects a file that does not return a table", function()
      local name = file "return 42"
      local _, errs = config.load_file(name)
      assert.same({ name .. ": expected the file to return a table, got 42 (number)" }, errs)
      name = file "local x = 1"
      _, errs = config.load_file(name)
      assert.same({ name .. ": expected the file to return a table, got nil" }, errs)
    end)

    it("reports a missing file", function()
      local cfg, errs = config.load_file("/nonexistent/gateway.lua")
      assert.is_nil(cfg)
      assert.equal(1, #errs)
      assert.matches("/nonexistent/gateway.lua", errs[1], 1, true)
    end)

    it("runs the given source instead of the file, under the file's name", function()
      local name = file "return 42"
      local cfg, errs = config.load_file(name, [[
        return { listen = "127.0.0.1:0", routes = { { path = "/", pass = "scgi://127.0.0.1:4001/" } } }
      ]])
      assert.is_nil(errs)
      assert.equal(4001, cfg.routes[1].pass.port)
      -- errors carry the file name and the line of the source
      cfg, errs = config.load_file(name, "return {\n  listen = = 1 }\n")
      assert.is_nil(cfg)
      assert.equal(name .. ":2:", errs[1]:sub(1, #name + 3))
      cfg, errs = config.load_file(name, "local x\n\nreturn x.y\n")
      assert.is_nil(cfg)
      assert.matches(name .. ":3: attempt to index", errs[1], 1, true)
      assert.has_error(function() config.load_file(name, 1) end,
        "bad argument #2 to 'load_file' (string expected, got number)")
    end)

    it("returns validation errors without the file name", function()
      local name = file "return { lisen = 1, routes = { { path = '/', pass = 'http://x' } } }"
      local _, errs = config.load_file(name)
      assert.same({
        "routes[1].pass: expected " .. PASS_WHAT .. ', got "http://x" (string)',
        'lisen: unknown field (did you mean "listen"?)',
      }, errs)
    end)
  end)

  describe("summary", function()
    it("has one line per route", function()
      local cfg = ok {
        balancers = { somecluster = { members = { "scgi://h:1", "scgi://h:2" } },
                      one = { method = function() end, members = { "scgi://h:3" } } },
        routes = {
          { path = "/scgi-bin/", pass = "scgi://127.0.0.1:4000/" },
          { path = "/django-app/", pass = "balancer://somecluster/" },
          { match = function() end, pass = "scgi+unix:/run/a.sock" },
          { path = "/x/", match = "%.php$", pass = "balancer://one/app" },
        },
      }
      assert.same({
        "route 1: path /scgi-bin/ -> scgi://127.0.0.1:4000/",
        "route 2: path /django-app/ -> balancer://somecluster/ (byrequests, 2 members)",
        "route 3: match <function> -> scgi+unix:/run/a.sock",
        'route 4: path /x/ match "%.php$" -> balancer://one/app (lua, 1 member)',
      }, config.summary(cfg))
    end)
  end)
end)
