-- Black-box test helpers: start the built ./scgi-lua and fake SCGI backends as separate
-- processes on ephemeral ports, talk HTTP to the gateway, inspect what the backend received.
-- Readiness is polled with deadlines (no blind sleeps); every process started here is killed at
-- the end of the spec file that started it, and a gateway's log is printed when a test failed
-- while it ran. See spec/integration/helpers_spec.lua for usage.

local stat = require "posix.sys.stat"
local proc = require "spec.helpers.proc"
local http = require "spec.helpers.http_client"
local scgi = require "spec.helpers.scgi"
local serialize = require "spec.helpers.serialize"
local data = require "spec.helpers.data"
local ports = require "spec.helpers.ports"

local helpers = {}

helpers.root = proc.repo_root()
helpers.bin = os.getenv "SCGI_LUA_BIN" or (helpers.root .. "/scgi-lua")
helpers.luajit = os.getenv "SCGI_LUA_SPEC_LUAJIT" or "luajit"
helpers.now = proc.now
helpers.poll = proc.poll
helpers.chunked = http.chunked
helpers.build_request = http.build_request
helpers.scgi = scgi
helpers.blob = data.blob
helpers.proc = proc
helpers.failures = 0

-- A sanitized build (make SANITIZE=1) runs several times slower and keeps freed memory in a
-- quarantine: specs scale the upper bounds of their time checks with helpers.slack() and
-- skip RSS checks. SCGI_LUA_TIME_SCALE overrides the factor (e.g. on a slow CI machine).
helpers.sanitized = (proc.read_file(helpers.bin) or ""):find("__asan_init", 1, true) ~= nil
helpers.time_scale = tonumber(os.getenv "SCGI_LUA_TIME_SCALE" or "") or (helpers.sanitized and 3 or 1)

--- `seconds` as an upper bound or a deadline: scaled by helpers.time_scale. Only for "took
-- at most" checks and waits; a lower bound (a timeout fired too early) is never scaled.
function helpers.slack(seconds)
  return seconds * helpers.time_scale
end

---------------------------------------------------------------------------------------------
-- Process registry: everything started in a spec file dies at the end of that file.

local live = {}

local function register(obj) live[obj] = true end
local function unregister(obj) live[obj] = nil end

function helpers.cleanup()
  for obj in pairs(live) do pcall(obj.stop, obj) end
end

do
  local ok, busted = pcall(require, "busted")
  if ok and type(busted) == "table" and busted.subscribe then
    busted.subscribe({ "test", "end" }, function(_, _, status)
      if status == "failure" or status == "error" then helpers.failures = helpers.failures + 1 end
      return nil, true
    end)
    busted.subscribe({ "failure" }, function()
      helpers.failures = helpers.failures + 1
      return nil, true
    end)
    busted.subscribe({ "error" }, function()
      helpers.failures = helpers.failures + 1
      return nil, true
    end)
    busted.subscribe({ "file", "end" }, function()
      helpers.cleanup()
      return nil, true
    end)
    busted.subscribe({ "exit" }, function()
      helpers.cleanup()
      return nil, true
    end)
  end
end

---------------------------------------------------------------------------------------------

--- A TCP port for a gateway or server this spec starts: claimed for this process until it
-- exits (no other spec process, backend or outgoing connection can take it meanwhile), and
-- free when handed out. The one way specs get a port; see spec/helpers/ports.lua for why
-- "bind port 0, read, close" is not enough. `host`: check that it is free on that address.
function helpers.free_port(host)
  return ports.take(host)
end

--- Can we connect to addr ({host, port} or {unix})? Closes the probe at once.
function helpers.can_connect(addr)
  local c = http.connect(addr, { timeout = 0.5 })
  if c then c:close() return true end
  return false
end

---------------------------------------------------------------------------------------------
-- Fake SCGI backend

local Backend = {}
Backend.__index = Backend

--- Start a fake SCGI backend process. opts:
--   reply   = raw bytes written verbatim after the body was read, then close
--   handler = Lua source of `function(req, sock) ... end`, run in the backend process per
--             request, before the body is read (call req:read_body() to read it). Globals
--             there: sleep(s), send_all(sock, data), env_lines(req), blob(n, seed), scgi,
--             socket, proc. req: names, env, raw_header, read_body([n]), save().
--   unix    = socket path to listen on instead of TCP
--   host, port = TCP address (default 127.0.0.1, any free port)
--   io_timeout = socket timeout in the backend (default 10)
-- Default answer: "Status: 200 OK", Content-Type text/plain, then NAME=VALUE lines.
function helpers.scgi_backend(opts)
  opts = opts or {}
  local dir = proc.mkdtemp "backend"
  local records = dir .. "/records"
  assert(stat.mkdir(records, 448))
  local cfg = {
    record_dir = records, ready_file = dir .. "/ready", reply = opts.reply,
    handler = opts.handler, unix = opts.unix, host = opts.host, port = opts.port,
    io_timeout = opts.io_timeout,
  }
  local cfg_path = dir .. "/backend.conf.lua"
  proc.write_file(cfg_path, serialize.chunk(cfg))
  local log_path = dir .. "/backend.log"
  proc.write_file(log_path, "")
  local pid = proc.spawn({ helpers.luajit, helpers.root .. "/spec/helpers/scgi_backend.lua", cfg_path },
                         { output = log_path, setpgid = true, cwd = helpers.root })
  local self = setmetatable({ pid = pid, dir = dir, records = records, log_path = log_path,
                              unix = opts.unix, cache = {} }, Backend)
  register(self)
  local ready, err = proc.poll(function()
    local info = proc.exists(cfg.ready_file) and serialize.load_file(cfg.ready_file)
    if info then return info end
    if proc.try_wait(pid) then self.reaped = true return "dead" end
  end, 10)
  if ready == "dead" then ready, err = nil, "backend process died" end
  if not ready then
    local log = self:log()
    self:stop()
    error("fake SCGI backend did not start (" .. tostring(err) .. "):\n" .. log, 2)
  end
  if opts.unix then
    self.url = "scgi+unix:" .. opts.unix
  else
    self.port = ready.port
    self.host = opts.host or "127.0.0.1"
    local h = self.host:find ":" and ("[" .. self.host .. "]") or self.host
    self.url = "scgi://" .. h .. ":" .. self.port .. "/"
  end
  return self
end

function Backend:log()
  return proc.read_file(self.log_path) or ""
end

--- All requests recorded so far, in accept order. Each record: names (ordered list of
-- variable names), env (name → value), raw_header (the netstring bytes), body (nil if the
-- handler never read it), body_complete, error (when the netstring was malformed), seq, pid.
function Backend:requests()
  local out = {}
  for _, name in ipairs(proc.list_dir(self.records)) do
    if name:match "^%d+%.req$" then
      local rec = self.cache[name]
      if not rec then
        rec = serialize.load_file(self.records .. "/" .. name)
        if rec and rec.has_body then
          rec.body = proc.read_file(self.records .. "/" .. name:gsub("%.req$", ".body"))
        end
        -- a handler may still update the record (body read later): cache final ones only
        if rec and (rec.body_read or rec.error) then
          self.cache[name] = rec
        end
      end
      if rec then out[#out + 1] = rec end
    end
  end
  return out
end

function Backend:count()
  return #self:requests()
end

function Backend:last_request()
  local r = self:requests()
  return r[#r]
end

--- Wait until at least `n` requests were recorded (and, with `body`, their body read).
function Backend:wait_requests(n, timeout, body)
  return proc.poll(function()
    local r = self:requests()
    if #r >= n and (not body or r[n].body_read) then return r end
  end, timeout or 10)
end

function Backend:stop()
  unregister(self)
  if self.pid and not self.reaped then
    proc.kill(self.pid, "TERM") -- it kills and reaps its children itself
    if not proc.wait(self.pid, 3) then
      proc.killpg(self.pid, "KILL")
      proc.wait(self.pid, 3)
    end
    pcall(proc.killpg, self.pid, "KILL") -- children of the group still alive
    self.reaped = true
  end
  if self.unix then os.remove(self.unix) end
  proc.rm_rf(self.dir)
end

---------------------------------------------------------------------------------------------
-- Gateway

local Gateway = {}
Gateway.__index = Gateway

-- "127.0.0.1:80" / "[::1]:80" / "unix:/p" → addr table
local function parse_listen(s)
  if s:match "^unix:" then return { unix = s:sub(6) } end
  local h6, p6 = s:match "^%[(.-)%]:(%d+)$"
  if h6 then return { host = h6, port = tonumber(p6) } end
  local h, p = s:match "^(.*):(%d+)$"
  if h then return { host = (h == "" or h == "0.0.0.0") and "127.0.0.1" or h, port = tonumber(p) } end
  if s:match "^%d+$" then return { host = "127.0.0.1", port = tonumber(s) } end
  return nil
end

local function first_listen(listen)
  if type(listen) == "table" then listen = listen[1] end
  return type(listen) == "string" and parse_listen(listen) or nil
end

--- Start ./scgi-lua with a config. `cfg` is a table (serialised to `return {...}`; no
-- functions) or Lua source. In source, {PORT} becomes a free port and {DIR} the gateway's temp
-- directory; a config without `listen` gets "127.0.0.1:<free port>". opts: ready (listen
-- string to poll instead of the config's first one), timeout (readiness deadline, 10 s),
-- args (extra command-line arguments before the config path).
function helpers.start_gateway(cfg, opts)
  opts = opts or {}
  local f = io.open(helpers.bin, "rb")
  if not f then error("gateway binary not built: " .. helpers.bin .. " (run make)", 2) end
  f:close()
  local dir = proc.mkdtemp "gw"
  local port = helpers.free_port()
  local src, listen
  if type(cfg) == "table" then
    local copy = {}
    for k, v in pairs(cfg) do copy[k] = v end
    if copy.listen == nil then copy.listen = "127.0.0.1:" .. port end
    listen = copy.listen
    src = serialize.chunk(copy)
    src = src:gsub("{PORT}", tostring(port)):gsub("{DIR}", dir)
  else
    src = cfg:gsub("{PORT}", tostring(port)):gsub("{DIR}", dir)
    listen = src:match "listen%s*=%s*{?%s*[\"']([^\"']+)[\"']"
    if not listen then
      local n
      src, n = src:gsub("^(%s*return%s*{)", "%1 listen = \"127.0.0.1:" .. port .. "\",", 1)
      assert(n == 1, "config source has no listen and does not start with `return {`")
      listen = "127.0.0.1:" .. port
    end
  end
  if type(listen) == "string" then listen = listen:gsub("{PORT}", tostring(port)):gsub("{DIR}", dir) end
  if type(listen) == "table" then
    local l = {}
    for i, v in ipairs(listen) do l[i] = v:gsub("{PORT}", tostring(port)):gsub("{DIR}", dir) end
    listen = l
  end
  local addr = parse_listen(opts.ready or "") or first_listen(listen)
  assert(addr, "cannot tell where the gateway listens: " .. tostring(listen))

  local config_path = dir .. "/" .. (opts.config_name or "gateway.lua")
  proc.write_file(config_path, src)
  local log_path = dir .. "/gateway.log"
  proc.write_file(log_path, "")
  local argv = { helpers.bin }
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = config_path
  local self = setmetatable({
    dir = dir, config_path = config_path, log_path = log_path, addr = addr,
    port = addr.port, host = addr.host, unix = addr.unix, source = src,
    failures_at_start = helpers.failures,
  }, Gateway)
  self.pid = proc.spawn(argv, { output = log_path, setpgid = true, sigpipe_default = true,
                                cwd = helpers.root })
  register(self)
  local ok, err = proc.poll(function()
    if self:_reap() then return "dead" end
    if helpers.can_connect(addr) then return "ready" end
  end, opts.timeout or 10, 0.02)
  if ok == "dead" then
    ok, err = nil, "gateway exited: " .. self.exit_how .. " " .. tostring(self.exit_code)
  end
  if not ok then
    local log = self:log()
    self:stop()
    error("gateway did not start (" .. tostring(err) .. "); config:\n" .. src .. "\nlog:\n" .. log, 2)
  end
  return self
end

function Gateway:_reap()
  if self.exit_how then return true end
  local how, code = proc.try_wait(self.pid)
  if how then
    self.exit_how, self.exit_code = how, code
    return true
  end
  return false
end

function Gateway:alive()
  return not self:_reap()
end

function Gateway:log()
  return proc.read_file(self.log_path) or ""
end

--- Poll the log until it matches `pattern` (a Lua pattern). opts: plain (plain find), from
-- (only look at log bytes after this offset, see :log_mark()). Returns the (looked-at) log
-- text, or nil, "timeout".
function Gateway:wait_log(pattern, timeout, opts)
  if type(opts) ~= "table" then opts = { plain = opts } end
  return proc.poll(function()
    local l = self:log():sub((opts.from or 0) + 1)
    if l:find(pattern, 1, opts.plain) then return l end
  end, timeout or 5)
end

--- Current size of the log (an offset for :wait_log(..., { from = mark })).
function Gateway:log_mark()
  return #self:log()
end

function Gateway:signal(name)
  return proc.kill(self.pid, name)
end

--- Wait for the gateway to exit. Returns how ("exited"/"killed"), code; or nil, "timeout".
function Gateway:wait(timeout)
  local ok = proc.poll(function() return self:_reap() end, timeout or 10, 0.01)
  if not ok then return nil, "timeout" end
  return self.exit_how, self.exit_code
end

--- SIGTERM, wait (opts.timeout, default 5 s), then SIGKILL. Prints the log when a test failed
-- while this gateway ran. Returns how, code.
function Gateway:stop(timeout)
  unregister(self)
  local died = self:_reap() and (self.exit_how .. " " .. tostring(self.exit_code))
  if not died then
    proc.kill(self.pid, "TERM")
    if not self:wait(timeout or 5) then
      proc.killpg(self.pid, "KILL")
      self:wait(5)
    end
  end
  pcall(proc.killpg, self.pid, "KILL") -- workers left behind
  if helpers.failures > self.failures_at_start and not self.log_printed then
    self.log_printed = true
    io.stderr:write("\n==== gateway log (", self.config_path, "; ",
                    died and ("it had died: " .. died) or
                      ("stopped: " .. tostring(self.exit_how) .. " " .. tostring(self.exit_code)),
                    ") ====\n", self:log(),
                    "==== end of gateway log ====\n")
  end
  if self.unix then os.remove(self.unix) end
  proc.rm_rf(self.dir)
  return self.exit_how, self.exit_code
end

--- A raw client connection (see spec/helpers/http_client.lua). addr overrides the default.
function Gateway:connect(addr, opts)
  local c, err = http.connect(addr or self.addr, opts)
  if c then c.default_host = self:host_header() end
  return c, err
end

--- The Host header value the client sends by default.
function Gateway:host_header()
  if self.unix then return "localhost" end
  local h = self.host:find ":" and ("[" .. self.host .. "]") or self.host
  return h .. ":" .. self.port
end

--- One request on a fresh connection. t: method, path, headers (map or list), body, version,
-- chunked, host, raw (bytes sent verbatim), timeout, head (no body expected; automatic for
-- HEAD). Returns res ({ status, reason, headers, header_list, body, raw, interim, ... }),
-- or nil, err.
function Gateway:request(t)
  t = t or {}
  local c, err = self:connect(t.addr, { timeout = t.timeout })
  if not c then return nil, "connect: " .. tostring(err) end
  local bytes = http.build_request(t, self:host_header())
  local head = t.head
  if head == nil then head = (t.method == "HEAD") end
  local res, rerr = c:exchange(bytes, { head = head, timeout = t.timeout })
  c:close()
  if not res then return nil, rerr end
  return res
end

--- Run ./scgi-lua with arguments (list or space-separated string) to completion (10 s).
-- Returns exit code, combined stdout+stderr.
function helpers.run_gateway(args, opts)
  opts = opts or {}
  if type(args) == "string" then
    local l = {}
    for a in args:gmatch "%S+" do l[#l + 1] = a end
    args = l
  end
  local argv = { helpers.bin }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local code, out = proc.run(argv, { cwd = opts.cwd or helpers.root, timeout = opts.timeout or 10 })
  return code, out
end

--- Start any other server process (e.g. a third-party SCGI server). argv: list; opts: ready =
-- { host, port } or { unix } to poll until it accepts (10 s), cwd. Returns an object with
-- pid, :log(), :stop() (SIGTERM, then SIGKILL to its process group), :alive().
function helpers.start_process(argv, opts)
  opts = opts or {}
  local dir = proc.mkdtemp "proc"
  local log_path = dir .. "/output.log"
  proc.write_file(log_path, "")
  local obj = { dir = dir, log_path = log_path }
  function obj.log() return proc.read_file(log_path) or "" end
  function obj.alive()
    if not obj.reaped and proc.try_wait(obj.pid) then obj.reaped = true end
    return not obj.reaped
  end
  function obj.stop(o)
    unregister(o)
    if not o.reaped then
      proc.kill(o.pid, "TERM")
      if not proc.wait(o.pid, 5) then
        proc.killpg(o.pid, "KILL")
        proc.wait(o.pid, 3)
      end
      pcall(proc.killpg, o.pid, "KILL")
      o.reaped = true
    end
    proc.rm_rf(dir)
  end
  obj.pid = proc.spawn(argv, { output = log_path, setpgid = true, cwd = opts.cwd or helpers.root })
  register(obj)
  if opts.ready then
    local ok, err = proc.poll(function()
      if proc.try_wait(obj.pid) then obj.reaped = true return "dead" end
      return helpers.can_connect(opts.ready)
    end, opts.timeout or 10, 0.05)
    if ok == "dead" then ok, err = nil, "process exited" end
    if not ok then
      local log = obj.log()
      obj:stop()
      error(table.concat(argv, " ") .. " did not start (" .. tostring(err) .. "):\n" .. log, 2)
    end
  end
  return obj
end

--- Write `src` to a temp file; returns its path (removed at the end of the spec file).
function helpers.temp_file(src, name)
  local dir = proc.mkdtemp "file"
  local path = dir .. "/" .. (name or "gateway.lua")
  proc.write_file(path, src)
  register({ stop = function(o) unregister(o) proc.rm_rf(dir) end })
  return path, dir
end

--- A fresh temp directory (removed at the end of the spec file).
function helpers.temp_dir(tag)
  local dir = proc.mkdtemp(tag or "dir")
  local obj = { stop = function(o) unregister(o) proc.rm_rf(dir) end }
  register(obj)
  return dir
end

--- Parse the default backend answer (NAME=VALUE lines) into names (ordered) and a map.
function helpers.parse_env_lines(body)
  local names, env = {}, {}
  for line in body:gmatch "([^\n]*)\n" do
    local n, v = line:match "^([^=]+)=(.*)$"
    if n then names[#names + 1] = n env[n] = v end
  end
  return env, names
end

return helpers
