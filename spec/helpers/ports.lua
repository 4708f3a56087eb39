-- TCP ports for the black-box specs that no other process can take between the moment a
-- spec picks one and the moment the gateway (or a third-party server) binds it.
-- Why not "bind port 0, read it, close": the kernel hands that same port to the next bind(0)
-- or outgoing connect() of any process (another busted run, a fake backend, a client socket).
-- Instead ports come from a range BELOW the kernel's ephemeral range (ip_local_port_range),
-- which bind(0) and connect() never use, and each one is claimed with a byte-range lock
-- (fcntl F_SETLK, byte = port) on one shared lock file: a claim lasts as long as the process
-- that made it, dies with it (no stale claims to clean up), and two processes using this
-- module never hold the same port. A port something else already listens on is skipped.
-- Within one process a port is handed out once (no reuse while TIME_WAIT or a slow child may
-- still hold it) until the range is used up. Not a general library: it serves spec/helpers.

local fcntl = require "posix.fcntl"
local unistd = require "posix.unistd"
local socket = require "socket"

local _M = {}

_M.lock_path = os.getenv "SCGI_LUA_SPEC_PORT_LOCK" or "/tmp/scgi-lua-spec-ports.lock"

-- [lo, hi]: the 8192 ports right below the ephemeral range (default 24576..32767).
local function port_range()
  local f = io.open "/proc/sys/net/ipv4/ip_local_port_range"
  local eph = f and tonumber((f:read "*a"):match "^%s*(%d+)") or 32768
  if f then f:close() end
  local hi = eph - 1
  local lo = math.max(1025, hi - 8191)
  return lo, hi
end

local lo, hi = port_range()
_M.lo, _M.hi = lo, hi

local lock_fd -- kept open for the life of the process: closing it would drop every claim
local handed = {} -- port -> true: given out by this process
local nhanded = 0
local cursor

local function open_lock()
  if lock_fd then return lock_fd end
  local fd, err = fcntl.open(_M.lock_path, fcntl.O_RDWR + fcntl.O_CREAT + fcntl.O_CLOEXEC, 438)
  if not fd then error("cannot open the port lock file " .. _M.lock_path .. ": " .. tostring(err), 3) end
  lock_fd = fd
  -- start somewhere different in each process: fewer collisions to step over
  cursor = lo + (unistd.getpid() * 7919 + math.floor(os.time())) % (hi - lo + 1)
  return fd
end

local function claim(port)
  local ok = fcntl.fcntl(lock_fd, fcntl.F_SETLK, { l_type = fcntl.F_WRLCK, l_whence = unistd.SEEK_SET,
                                                   l_start = port, l_len = 1 })
  return ok ~= nil
end

local function release(port)
  fcntl.fcntl(lock_fd, fcntl.F_SETLK, { l_type = fcntl.F_UNLCK, l_whence = unistd.SEEK_SET,
                                        l_start = port, l_len = 1 })
end

-- Can `host` bind `port` right now? (luasocket sets SO_REUSEADDR, as the gateway does, so a
-- port with connections in TIME_WAIT counts as free, and a listening one does not.)
local function bindable(host, port)
  local s = socket.bind(host, port)
  if not s then return false end
  s:close()
  return true
end

local function free_on(port, host)
  if host then return bindable(host, port) end
  if not bindable("127.0.0.1", port) then return false end
  -- a listener on [::1] or [::] would catch the specs that listen on both families
  local s6 = socket.tcp6 and socket.tcp6()
  if s6 then
    s6:setoption("reuseaddr", true)
    local ok = s6:bind("::1", port)
    s6:close()
    if not ok then return false end
  end
  return true
end

--- A port claimed for this process: no process using this module gets it while this one
-- lives, and nothing bound it when it was checked. `host`: check that address only.
function _M.take(host)
  open_lock()
  local size = hi - lo + 1
  for _ = 1, 2 * size do
    local port = cursor
    cursor = cursor + 1
    if cursor > hi then cursor = lo end
    if not handed[port] or nhanded >= size then
      if handed[port] or claim(port) then
        if free_on(port, host) then
          if not handed[port] then nhanded = nhanded + 1 end
          handed[port] = true
          return port
        end
        if not handed[port] then release(port) end
      end
    end
  end
  error(string.format("no free TCP port in %d..%d (all claimed or in use)", lo, hi), 2)
end

--- Does another process hold the claim on `port`? (For the helpers' own self-test.)
function _M.claimed_elsewhere(port)
  local fd = assert(fcntl.open(_M.lock_path, fcntl.O_RDWR + fcntl.O_CLOEXEC))
  local l = { l_type = fcntl.F_WRLCK, l_whence = unistd.SEEK_SET, l_start = port, l_len = 1 }
  local ok = fcntl.fcntl(fd, fcntl.F_GETLK, l)
  unistd.close(fd)
  if ok == nil or l.l_type == fcntl.F_UNLCK then return false end
  return true, l.l_pid
end

return _M
