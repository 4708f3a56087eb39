-- Fake SCGI backend, run as its own process: `luajit spec/helpers/scgi_backend.lua CONFIG`.
-- CONFIG is a Lua file returning { host, port, unix, record_dir, ready_file, reply, handler,
-- io_timeout }. It listens (TCP port 0 = any free port, or a unix socket), writes the actual
-- port to ready_file, then forks one child per connection. Each child decodes the netstring,
-- records the request in record_dir (one serialised Lua file per request, numbered in accept
-- order) and answers: `reply` verbatim, or the `handler` function source, or by default the
-- variables as NAME=VALUE lines. It is started and stopped by spec/helpers (whole process
-- group); it never exits by itself.

local here = arg[0]:match "^(.*)/[^/]+$" or "."
package.path = here .. "/?.lua;" .. package.path

local socket = require "socket"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local signal = require "posix.signal"
local proc = require "proc"
local scgi = require "scgi"
local serialize = require "serialize"
local data = require "data"

local cfg = assert(serialize.load_file(assert(arg[1], "usage: scgi_backend.lua CONFIG")))

local function log(...)
  io.stderr:write(string.format("[backend %d] ", unistd.getpid()), string.format(...), "\n")
  io.stderr:flush()
end

---------------------------------------------------------------------------------------------
-- Globals for handler source code (the handler runs in this process's global environment).

function sleep(s) proc.sleep(s) end

--- The default answer body: one NAME=VALUE line per variable, in received order.
function env_lines(req)
  local out = {}
  for _, n in ipairs(req.names) do out[#out + 1] = n .. "=" .. req.env[n] .. "\n" end
  return table.concat(out)
end

--- Send all of `bytes`; returns true or nil, err (never raises: a broken gateway is a test).
function send_all(sock, bytes)
  local i = 1
  while i <= #bytes do
    local last, err, partial = sock:send(bytes, i)
    if last then return true end
    if err ~= "timeout" then return nil, err end
    i = partial + 1
  end
  return true
end

_G.scgi = scgi
_G.socket = socket
_G.proc = proc
_G.blob = data.blob

---------------------------------------------------------------------------------------------

local function record_path(seq)
  return string.format("%s/%06d.req", cfg.record_dir, seq)
end

-- The body goes to NNNNNN.body (raw), the rest to NNNNNN.req (serialised Lua, written last
-- and atomically: its presence means the record is consistent).
local function save(rec)
  local copy = {}
  for k, v in pairs(rec) do
    if type(v) ~= "function" and k ~= "body" then copy[k] = v end
  end
  if rec.body then
    proc.write_file_atomic(string.format("%s/%06d.body", cfg.record_dir, rec.seq), rec.body)
    copy.has_body = true
  end
  proc.write_file_atomic(record_path(rec.seq), serialize.chunk(copy))
end

-- Read the netstring head. Returns raw_head (possibly partial), payload or nil, err.
local function read_head(c)
  local buf = ""
  while true do
    local ch, err = c:receive(1)
    if not ch then return buf, nil, (buf == "" and "empty" or "closed before ':' (" .. err .. ")") end
    buf = buf .. ch
    if ch == ":" then break end
    if not ch:match "%d" or #buf > 11 then return buf, nil, "bad netstring length prefix" end
  end
  local len = tonumber(buf:sub(1, -2))
  if not len then return buf, nil, "bad netstring length prefix" end
  local rest, err, partial = c:receive(len + 1)
  if not rest then return buf .. (partial or ""), nil, "closed inside netstring (" .. err .. ")" end
  buf = buf .. rest
  local st, payload = scgi.parse_head(buf)
  if st ~= "done" then return buf, nil, payload or "incomplete netstring" end
  return buf, payload
end

local function handle(c, seq)
  c:settimeout(cfg.io_timeout or 10)
  local peer_ip, peer_port
  if c.getpeername then peer_ip, peer_port = c:getpeername() end
  local rec = { seq = seq, pid = unistd.getpid(), t_accept = proc.now(), peer = peer_ip,
                peer_port = tonumber(peer_port) }
  local raw, payload, err = read_head(c)
  if err == "empty" then return end -- a readiness probe or a connection closed unused
  rec.raw_header = raw
  if not payload then
    rec.error = err
    log("request %d: %s", seq, err)
    save(rec)
    return
  end
  local names, env = scgi.decode_pairs(payload)
  if not names then
    rec.error = env
    rec.names, rec.env = {}, {}
    save(rec)
    return
  end
  rec.names, rec.env = names, env
  rec.body_read = false

  function rec.read_body(self, n)
    n = n or tonumber(self.env.CONTENT_LENGTH) or 0
    local got, rerr, partial = "", nil, nil
    if n > 0 then got, rerr, partial = c:receive(n) end
    self.body = got or partial or ""
    self.body_read = true
    self.body_complete = got ~= nil
    self.body_error = rerr
    save(self)
    return self.body
  end

  function rec.save(self) save(self) end

  if cfg.handler then
    save(rec) -- visible to the test even if the handler never returns
    local chunk, lerr = loadstring("return " .. cfg.handler, "=handler")
    if not chunk then chunk, lerr = loadstring(cfg.handler, "=handler") end
    if not chunk then
      log("handler does not compile: %s", lerr)
      rec.error = "handler: " .. lerr
      save(rec)
      return
    end
    local ok, fn = pcall(chunk)
    if ok and type(fn) ~= "function" then ok, fn = false, "handler source is not a function" end
    if ok then ok, fn = pcall(fn, rec, c) end
    if not ok then
      log("handler error: %s", tostring(fn))
      rec.handler_error = tostring(fn)
      save(rec)
    end
  else
    rec:read_body()
    local reply = cfg.reply
    if not reply then
      reply = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" .. env_lines(rec)
    end
    local ok, serr = send_all(c, reply)
    if not ok then log("request %d: send failed: %s", seq, tostring(serr)) end
  end
end

---------------------------------------------------------------------------------------------

local server
if cfg.unix then
  local unix = require "socket.unix"
  server = assert((unix.stream or unix)())
  os.remove(cfg.unix)
  assert(server:bind(cfg.unix))
  assert(server:listen(128))
else
  server = assert(socket.bind(cfg.host or "127.0.0.1", cfg.port or 0, 128))
end
local _, port = server:getsockname()
proc.write_file_atomic(cfg.ready_file, serialize.chunk { port = tonumber(port), pid = unistd.getpid() })
log("listening on %s", cfg.unix or ((cfg.host or "127.0.0.1") .. ":" .. tostring(port)))

-- SIGTERM: kill and reap the per-connection children, then exit (no zombies left behind).
local stopping = false
signal.signal(signal.SIGTERM, function() stopping = true end)
local children = {}

server:settimeout(0.2)
local seq = 0
while not stopping do
  local c = server:accept()
  if c and not stopping then
    seq = seq + 1
    io.stderr:flush()
    local pid = unistd.fork()
    if pid == 0 then
      signal.signal(signal.SIGTERM, signal.SIG_DFL)
      server:close()
      local ok, err = pcall(handle, c, seq)
      if not ok then log("request %d: %s", seq, tostring(err)) end
      c:close()
      io.stderr:flush()
      unistd._exit(0)
    elseif pid then
      children[pid] = true
      c:close()
    else
      log("fork failed")
      c:close()
    end
  elseif c then
    c:close()
  end
  repeat
    local p = wait.wait(-1, wait.WNOHANG)
    if p and p ~= 0 then children[p] = nil end
  until not p or p == 0
end
for pid in pairs(children) do signal.kill(pid, signal.SIGKILL) end
for pid in pairs(children) do wait.wait(pid) end
if cfg.unix then os.remove(cfg.unix) end
os.exit(0)
