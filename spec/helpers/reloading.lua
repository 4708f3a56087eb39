-- Shared by the reload and workers specs: a fake backend handler that answers its own name
-- (after sleeping `sleep=S` seconds when the query asks for it), the gateway config those
-- specs rewrite, the rewrite itself, and the process tree of a master (through /proc).

local proc = require "spec.helpers.proc"

local M = {}

--- Handler source for helpers.scgi_backend { handler = ... }: the body is `name`, followed by
-- N bytes of "x" when the query says `big=N` (a body that large goes through a splice pipe).
function M.named_app(name)
  return string.format([[
function(req, sock)
  local q = req.env.QUERY_STRING or ""
  local s = tonumber(q:match "sleep=([%%d.]+)")
  if s then sleep(s) end
  local body = %q .. ("x"):rep(tonumber(q:match "big=(%%d+)") or 0)
  send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body ..
                 "\r\n\r\n" .. body)
end]], name)
end

--- Config source. o: listen (string or list), pass, workers (number or "auto"; left out when
-- nil), timeouts (source), extra (more table fields, source), routes (source of the routes
-- list, replaces the one route to `pass`), comment.
function M.config(o)
  local listen = type(o.listen) == "table" and o.listen or { o.listen }
  local ls = {}
  for i, l in ipairs(listen) do ls[i] = string.format("%q", l) end
  local workers = ""
  if o.workers ~= nil then
    workers = "workers = " .. (type(o.workers) == "string" and string.format("%q", o.workers)
                               or tostring(o.workers)) .. ","
  end
  return string.format([[
-- %s
return {
  listen = { %s },
  %s
  access_log = false,
  log_level = "info",
  timeouts = %s,
  %s
  routes = %s,
}
]], o.comment or "scgi-lua spec", table.concat(ls, ", "), workers,
    o.timeouts or "{ shutdown = 10, keepalive = 30 }", o.extra or "",
    o.routes or string.format("{ { path = \"/\", pass = %q } }", o.pass))
end

--- Rewrites the gateway's config file: "plain" (truncate and write in place) or "atomic"
-- (a temp file in the same directory renamed over it, the default).
function M.rewrite(gw, src, mode)
  if mode == "plain" then
    proc.write_file(gw.config_path, src)
  else
    local tmp = gw.config_path .. ".new"
    proc.write_file(tmp, src)
    assert(os.rename(tmp, gw.config_path))
  end
end

-- state, ppid of a process (nil if gone)
local function stat_of(pid)
  local s = proc.read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local state, ppid = s:match "^.*%) (%S) (%d+)"
  return state, tonumber(ppid)
end

--- Is `pid` running (not gone, not a zombie)?
function M.running(pid)
  local state = stat_of(pid)
  return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Live (not zombie) children of `pid`, sorted.
function M.children(pid)
  local out = {}
  for _, name in ipairs(proc.list_dir "/proc") do
    if name:match "^%d+$" then
      local state, ppid = stat_of(name)
      if ppid == pid and state ~= "Z" and state ~= "X" then out[#out + 1] = tonumber(name) end
    end
  end
  table.sort(out)
  return out
end

--- Waits until `pid` has exactly `n` live children (and, with `not_in`, none of those pids).
-- Returns the children, or nil and the last list seen.
function M.wait_children(pid, n, timeout, not_in)
  local last
  local ok = proc.poll(function()
    last = M.children(pid)
    if #last ~= n then return false end
    for _, p in ipairs(last) do
      for _, q in ipairs(not_in or {}) do if p == q then return false end end
    end
    return true
  end, timeout or 5, 0.05)
  return ok and last, last
end

return M
