-- Shared by the reload and workers specs: a fake backend handler that answers its own name
-- (after sleeping `sleep=S` seconds when the query asks for it), the gateway config those
-- specs rewrite, and the rewrite itself.

local proc = require "spec.helpers.proc"

local M = {}

--- Handler source for helpers.scgi_backend { handler = ... }: the body is `name`.
function M.named_app(name)
  return string.format([[
function(req, sock)
  local q = req.env.QUERY_STRING or ""
  local s = tonumber(q:match "sleep=([%%d.]+)")
  if s then sleep(s) end
  send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
end]], #name, name)
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

return M
