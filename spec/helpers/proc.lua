-- Process, time and file utilities for the black-box specs: spawn a child with fork/exec and
-- redirected output, wait for it with a deadline, signal it, poll for a condition.
-- Everything here is bounded: no function waits longer than the deadline it is given.
-- Not a general library: it serves spec/helpers only.

local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local signal = require "posix.signal"
local fcntl = require "posix.fcntl"
local ptime = require "posix.time"
local stdlib = require "posix.stdlib"
local stat = require "posix.sys.stat"
local dirent = require "posix.dirent"

local _M = {}

--- Monotonic time in seconds (float).
function _M.now()
  local t = ptime.clock_gettime(ptime.CLOCK_MONOTONIC)
  return t.tv_sec + t.tv_nsec / 1e9
end

--- Sleep `s` seconds (float). Only for pacing inside poll loops, never to wait for an event.
function _M.sleep(s)
  if s <= 0 then return end
  local sec = math.floor(s)
  ptime.nanosleep { tv_sec = sec, tv_nsec = math.floor((s - sec) * 1e9) }
end

--- Call `fn` until it returns a truthy value or `timeout` seconds pass.
-- Returns the truthy value, or nil, "timeout" (plus the last extra value `fn` returned).
function _M.poll(fn, timeout, interval)
  local deadline = _M.now() + (timeout or 10)
  interval = interval or 0.02
  local last
  while true do
    local v, extra = fn()
    if v then return v, extra end
    last = extra
    if _M.now() >= deadline then return nil, "timeout", last end
    _M.sleep(interval)
  end
end

function _M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read "*a"
  f:close()
  return s
end

function _M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  assert(f:close())
end

--- Write `data` to `path` atomically (temp file then rename).
function _M.write_file_atomic(path, data)
  local tmp = path .. ".tmp." .. unistd.getpid()
  _M.write_file(tmp, data)
  assert(os.rename(tmp, path))
end

function _M.mkdtemp(tag)
  return assert(stdlib.mkdtemp("/tmp/scgi-lua-spec-" .. (tag or "x") .. "-XXXXXX"))
end

function _M.exists(path)
  return stat.stat(path) ~= nil
end

--- Names in a directory (without . and ..), sorted.
function _M.list_dir(dir)
  local ok, names = pcall(dirent.dir, dir)
  if not ok or not names then return {} end
  local out = {}
  for _, n in ipairs(names) do
    if n ~= "." and n ~= ".." then out[#out + 1] = n end
  end
  table.sort(out)
  return out
end

--- Remove a directory tree (only used on our own temp dirs).
function _M.rm_rf(path)
  if not path or not path:match "^/tmp/scgi%-lua%-spec%-" then return end
  local st = stat.lstat(path)
  if not st then return end
  if stat.S_ISDIR(st.st_mode) ~= 0 then
    for _, n in ipairs(_M.list_dir(path)) do _M.rm_rf(path .. "/" .. n) end
    unistd.rmdir(path)
  else
    os.remove(path)
  end
end

--- Open descriptors of process `pid`: a map fd number -> what it points to (readlink of
-- /proc/<pid>/fd/<n>: a path, "socket:[ino]", "pipe:[ino]", "anon_inode:[eventpoll]"...).
-- A descriptor closed while the directory is read is left out.
local readlink -- luaposix 33's readlink fails on /proc links (they report a size of 64)
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    pcall(ffi.cdef, "long readlink(const char *path, char *buf, size_t size);")
    local buf = ffi.new("char[4096]")
    readlink = function(path)
      local n = tonumber(ffi.C.readlink(path, buf, 4096))
      if n < 0 then return nil end
      return ffi.string(buf, n)
    end
  else
    readlink = function(path) return (unistd.readlink(path)) end
  end
end

function _M.fd_targets(pid)
  local out = {}
  for _, n in ipairs(_M.list_dir("/proc/" .. pid .. "/fd")) do
    local target = readlink("/proc/" .. pid .. "/fd/" .. n)
    if target then out[tonumber(n)] = target end
  end
  return out
end

--- The pipes process `pid` has open: a set of pipe inode numbers (both ends of one pipe
-- share an inode, so one pipe counts once).
function _M.pipes(pid)
  local out = {}
  for _, t in pairs(_M.fd_targets(pid)) do
    local ino = t:match "^pipe:%[(%d+)%]$"
    if ino then out[ino] = true end
  end
  return out
end

--- Absolute path of the repository root (two levels above this file).
function _M.repo_root()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match "^(.*)/spec/helpers/[^/]+$" or "."
  if dir:sub(1, 1) ~= "/" then
    local cwd = unistd.getcwd()
    dir = (dir == ".") and cwd or (cwd .. "/" .. dir:gsub("^%./", ""))
  end
  return dir
end

--- Fork and exec `argv` (list; argv[1] is looked up in PATH).
-- opts.output: file path receiving stdout and stderr (appended); opts.cwd; opts.setpgid (own
-- process group, so the whole tree can be killed); opts.sigpipe_default.
-- Returns pid.
function _M.spawn(argv, opts)
  opts = opts or {}
  io.stdout:flush()
  io.stderr:flush()
  local pid, err = unistd.fork()
  assert(pid, err)
  if pid == 0 then
    -- child: set up fds, then exec; never return into the test runner
    pcall(function()
      if opts.setpgid then unistd.setpid("p", 0, 0) end
      if opts.sigpipe_default then signal.signal(signal.SIGPIPE, signal.SIG_DFL) end
      local devnull = fcntl.open("/dev/null", fcntl.O_RDONLY)
      if devnull then unistd.dup2(devnull, 0) end
      if opts.output then
        local fd = fcntl.open(opts.output, fcntl.O_WRONLY + fcntl.O_CREAT + fcntl.O_APPEND, 420)
        if fd then
          unistd.dup2(fd, 1)
          unistd.dup2(fd, 2)
        end
      end
      if opts.cwd then unistd.chdir(opts.cwd) end
      local args = {}
      for i = 2, #argv do args[i - 1] = argv[i] end
      args[0] = argv[1]
      unistd.execp(argv[1], args)
      unistd.write(2, "exec failed: " .. tostring(argv[1]) .. "\n")
    end)
    unistd._exit(127)
  end
  return pid
end

--- Non-blocking reap. Returns nil while running, else how ("exited"/"killed"), code.
function _M.try_wait(pid)
  local p, how, code = wait.wait(pid, wait.WNOHANG)
  if p == nil then return "gone", -1 end -- ECHILD: already reaped elsewhere
  if p == 0 or how == "running" or how == "stopped" then return nil end
  return how, code
end

--- Wait up to `timeout` seconds. Returns how, code; or nil, "timeout".
function _M.wait(pid, timeout)
  local res, code = _M.poll(function()
    local how, c = _M.try_wait(pid)
    if how then return how, c end
  end, timeout or 10, 0.01)
  if not res then return nil, "timeout" end
  return res, code
end

function _M.signum(name)
  if type(name) == "number" then return name end
  name = name:upper()
  if not name:match "^SIG" then name = "SIG" .. name end
  local n = signal[name]
  assert(n, "unknown signal " .. name)
  return n
end

function _M.kill(pid, sig)
  return signal.kill(pid, _M.signum(sig or "TERM"))
end

--- Kill a whole process group (pid of its leader).
function _M.killpg(pgid, sig)
  return signal.killpg(pgid, _M.signum(sig or "TERM"))
end

--- Run argv to completion (deadline `timeout`, default 10 s; killed after that).
-- Returns exit code (or nil, "timeout"), combined stdout+stderr.
function _M.run(argv, opts)
  opts = opts or {}
  local dir = _M.mkdtemp "run"
  local out = dir .. "/output"
  _M.write_file(out, "")
  local pid = _M.spawn(argv, { output = out, cwd = opts.cwd, setpgid = true, sigpipe_default = true })
  local how, code = _M.wait(pid, opts.timeout or 10)
  if not how then
    _M.killpg(pid, "KILL")
    _M.wait(pid, 5)
  end
  local text = _M.read_file(out) or ""
  _M.rm_rf(dir)
  if not how then return nil, text, "timeout" end
  if how == "killed" then return 128 + code, text, how end
  return code, text, how
end

return _M
