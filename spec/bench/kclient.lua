-- Sends N keep-alive GETs one after the other on one connection and reads each response
-- (Content-Length or chunked). A fixed request count for instruction counting (wrk runs for
-- a time, not a count).   usage: luajit kclient.lua PORT N [PATH]
local socket = require "socket"
local port, n, path = tonumber(arg[1]), tonumber(arg[2]), arg[3] or "/hello"
local c = assert(socket.connect("127.0.0.1", port))
c:setoption("tcp-nodelay", true)
local req = "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
for _ = 1, n do
  assert(c:send(req))
  local status = assert(c:receive "*l")
  assert(status:match "^HTTP/1%.1 200", status)
  local len, chunked
  while true do
    local l = assert(c:receive "*l")
    if l == "" then break end
    local k, v = l:match "^([^:]+):%s*(.*)$"
    k = k and k:lower()
    if k == "content-length" then len = tonumber(v) end
    if k == "transfer-encoding" and v:lower() == "chunked" then chunked = true end
  end
  if chunked then
    repeat
      local size = tonumber(assert(c:receive "*l"), 16)
      if size > 0 then assert(c:receive(size)) end
      assert(c:receive "*l")
    until size == 0
  elseif len then
    assert(c:receive(len))
  end
end
c:close()
