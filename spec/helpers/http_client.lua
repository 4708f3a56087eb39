-- A small, strict-enough HTTP/1.x client for black-box specs: raw connections over TCP (IPv4/IPv6)
-- or unix sockets, request building, and an incremental response parser (Content-Length,
-- chunked, close-delimited, HEAD, 1xx). Every wait is bounded by a deadline; nothing blocks
-- longer than the connection's timeout. Not a general HTTP client: no TLS, no redirects.

local socket = require "socket"

local _M = {}

local DEFAULT_TIMEOUT = 10
local MAX_HEAD = 1024 * 1024

local ptime = require "posix.time"

-- Monotonic seconds: the same clock as helpers.now(), so deadlines can be shared.
local function now()
  local t = ptime.clock_gettime(ptime.CLOCK_MONOTONIC)
  return t.tv_sec + t.tv_nsec / 1e9
end
_M.now = now

---------------------------------------------------------------------------------------------
-- Request building

--- Encode `body` with chunked transfer coding, `size` bytes per chunk (default 4096).
function _M.chunked(body, size, trailer)
  size = size or 4096
  local out = {}
  for i = 1, #body, size do
    local piece = body:sub(i, i + size - 1)
    out[#out + 1] = string.format("%x\r\n", #piece) .. piece .. "\r\n"
  end
  out[#out + 1] = "0\r\n" .. (trailer or "") .. "\r\n"
  return table.concat(out)
end

-- Normalise t.headers (map name -> value|list, or list of "Name: value" / {name, value})
-- into a list of { name, value }.
local function header_list(h)
  local list = {}
  if not h then return list end
  if h[1] ~= nil then
    for _, e in ipairs(h) do
      if type(e) == "string" then
        local n, v = e:match "^([^:]*):%s?(.*)$"
        list[#list + 1] = { n or e, v or "" }
      else
        list[#list + 1] = { e[1], e[2] }
      end
    end
  else
    local names = {}
    for n in pairs(h) do names[#names + 1] = n end
    table.sort(names)
    for _, n in ipairs(names) do
      local v = h[n]
      if type(v) == "table" then
        for _, x in ipairs(v) do list[#list + 1] = { n, tostring(x) } end
      elseif v ~= false then
        list[#list + 1] = { n, tostring(v) }
      end
    end
  end
  return list
end

--- Build the bytes of one request. t: method, path (request-target), version ("1.1"),
-- headers, body, chunked (encode body as chunked), host (default `default_host`; false = none).
function _M.build_request(t, default_host)
  if t.raw then return t.raw end
  local method = t.method or (t.body and "POST" or "GET")
  local version = t.version or "1.1"
  local list = header_list(t.headers)
  local has = {}
  for _, kv in ipairs(list) do has[kv[1]:lower()] = true end
  local lines = { string.format("%s %s HTTP/%s", method, t.path or "/", version) }
  if not has.host and t.host ~= false and (t.host or default_host) then
    lines[#lines + 1] = "Host: " .. (t.host or default_host)
  end
  for _, kv in ipairs(list) do lines[#lines + 1] = kv[1] .. ": " .. kv[2] end
  local body = t.body or ""
  if t.chunked then
    if not has["transfer-encoding"] then lines[#lines + 1] = "Transfer-Encoding: chunked" end
    body = _M.chunked(body, t.chunk_size)
  elseif t.body and not has["content-length"] and not has["transfer-encoding"] then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

---------------------------------------------------------------------------------------------
-- Incremental response parser. State machine over conn.buf; body pieces go to a table so
-- large bodies are not re-copied on every read.

local function new_state(head_only)
  return { stage = "head", head_only = head_only, pieces = {}, raw = {} }
end

local function parse_head(st, text)
  local lines = {}
  for line in (text:gsub("\r\n", "\n")):gmatch "([^\n]*)\n" do lines[#lines + 1] = line end
  local version, status, reason = lines[1]:match "^HTTP/(%d%.%d) (%d%d%d)%s?(.*)$"
  if not version then return nil, "bad status line: " .. string.format("%q", lines[1]) end
  local res = { version = version, status = tonumber(status), reason = reason, headers = {},
                header_list = {} }
  for i = 2, #lines do
    local line = lines[i]
    if line ~= "" then
      local n, v = line:match "^([^:%s]+):[ \t]*(.-)[ \t]*$"
      if not n then return nil, "bad header line: " .. string.format("%q", line) end
      res.header_list[#res.header_list + 1] = { n, v }
      local k = n:lower()
      local old = res.headers[k]
      if old == nil then
        res.headers[k] = v
      elseif type(old) == "table" then
        old[#old + 1] = v
      else
        res.headers[k] = { old, v }
      end
    end
  end
  st.res = res
  local h = res.headers
  local te = type(h["transfer-encoding"]) == "table" and table.concat(h["transfer-encoding"], ",")
             or h["transfer-encoding"]
  if st.head_only or (res.status >= 100 and res.status < 200) or res.status == 204
     or res.status == 304 then
    st.stage = "done"
  elseif te and te:lower():find "chunked" then
    st.stage = "chunk_size"
    res.chunked = true
  elseif h["content-length"] then
    local cl = h["content-length"]
    if type(cl) == "table" then return nil, "repeated Content-Length in response" end
    st.remaining = tonumber(cl)
    if not st.remaining then return nil, "bad Content-Length in response: " .. cl end
    st.stage = st.remaining > 0 and "body_cl" or "done"
  else
    st.stage = "body_close"
    res.close_delimited = true
  end
  return true
end

-- Advance the parser with conn.buf. Returns "done", "more", or nil, err.
local function step(conn, st)
  while true do
    local buf = conn.buf
    if st.stage == "done" then
      local res = st.res
      res.body = table.concat(st.pieces)
      res.raw = table.concat(st.raw)
      return "done"
    elseif st.stage == "head" then
      local s, e = buf:find("\r?\n\r?\n")
      if not s then
        if #buf > MAX_HEAD then return nil, "response head too large" end
        if conn.eof then
          return nil, (buf == "" and "closed" or "connection closed inside response head: "
            .. string.format("%q", buf:sub(1, 200)))
        end
        return "more"
      end
      local head = buf:sub(1, e)
      conn.buf = buf:sub(e + 1)
      st.raw[#st.raw + 1] = head
      local ok, err = parse_head(st, head)
      if not ok then return nil, err end
    elseif st.stage == "body_cl" then
      if buf == "" then
        if conn.eof then return nil, "connection closed with " .. st.remaining .. " body bytes missing" end
        return "more"
      end
      local take = buf:sub(1, st.remaining)
      conn.buf = buf:sub(#take + 1)
      st.pieces[#st.pieces + 1] = take
      st.raw[#st.raw + 1] = take
      st.remaining = st.remaining - #take
      if st.remaining == 0 then st.stage = "done" end
    elseif st.stage == "body_close" then
      if buf ~= "" then
        st.pieces[#st.pieces + 1] = buf
        st.raw[#st.raw + 1] = buf
        conn.buf = ""
      end
      if conn.eof then st.stage = "done" else return "more" end
    elseif st.stage == "chunk_size" then
      local s, e, hex = buf:find "^(%x+)[^\r\n]*\r\n"
      if not s then
        if #buf > 1024 or (#buf > 0 and not buf:find "^%x") then
          return nil, "bad chunk size line: " .. string.format("%q", buf:sub(1, 60))
        end
        if conn.eof then return nil, "connection closed inside chunked body" end
        return "more"
      end
      st.raw[#st.raw + 1] = buf:sub(1, e)
      conn.buf = buf:sub(e + 1)
      st.remaining = tonumber(hex, 16)
      st.stage = st.remaining == 0 and "trailer" or "chunk_data"
      st.res.chunks = (st.res.chunks or 0) + 1
    elseif st.stage == "chunk_data" then
      if buf == "" then
        if conn.eof then return nil, "connection closed inside chunk data" end
        return "more"
      end
      local take = buf:sub(1, st.remaining)
      conn.buf = buf:sub(#take + 1)
      st.pieces[#st.pieces + 1] = take
      st.raw[#st.raw + 1] = take
      st.remaining = st.remaining - #take
      if st.remaining == 0 then st.stage = "chunk_crlf" end
    elseif st.stage == "chunk_crlf" then
      if #buf < 2 then
        if conn.eof then return nil, "connection closed after chunk data" end
        return "more"
      end
      if buf:sub(1, 2) ~= "\r\n" then return nil, "chunk data not followed by CRLF" end
      st.raw[#st.raw + 1] = "\r\n"
      conn.buf = buf:sub(3)
      st.stage = "chunk_size"
    elseif st.stage == "trailer" then
      local s, e = buf:find "\r\n"
      if not s then
        if conn.eof then return nil, "connection closed inside trailer" end
        return "more"
      end
      local line = buf:sub(1, s - 1)
      st.raw[#st.raw + 1] = buf:sub(1, e)
      conn.buf = buf:sub(e + 1)
      if line == "" then
        st.stage = "done"
      else
        st.res.trailers = st.res.trailers or {}
        local n, v = line:match "^([^:]+):%s*(.-)%s*$"
        if n then st.res.trailers[n:lower()] = v end
      end
    else
      error("bad parser stage " .. tostring(st.stage))
    end
  end
end

---------------------------------------------------------------------------------------------
-- Connections

local Conn = {}
Conn.__index = Conn

--- Connect. addr: { host = "127.0.0.1" | "::1", port = N } or { unix = "/path" }.
-- Returns a connection object, or nil, err.
function _M.connect(addr, opts)
  opts = opts or {}
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  local sock
  if addr.unix then
    local unix = require "socket.unix"
    sock = (unix.stream or unix)()
    sock:settimeout(timeout)
    local ok, cerr = sock:connect(addr.unix)
    if not ok then sock:close() return nil, cerr end
  else
    local host = addr.host or "127.0.0.1"
    sock = host:find ":" and socket.tcp6() or socket.tcp()
    sock:settimeout(timeout)
    local ok, cerr = sock:connect(host, addr.port)
    if not ok then sock:close() return nil, cerr end
    sock:setoption("tcp-nodelay", true)
  end
  return setmetatable({ sock = sock, buf = "", eof = false, timeout = timeout }, Conn)
end

function Conn:settimeout(t) self.timeout = t end

--- The client side address of the connection: ip, port (nil for unix sockets).
function Conn:local_address()
  if not self.sock.getsockname then return nil end
  local ip, port = self.sock:getsockname()
  return ip, tonumber(port)
end

--- Send a request built from `t` (see build_request) and read its response (1xx skipped).
function Conn:request(t, default_host)
  local head = t.head
  if head == nil then head = (t.method == "HEAD") end
  local data = _M.build_request(t, default_host or self.default_host or "localhost")
  return self:exchange(data, { head = head, timeout = t.timeout })
end

--- Send all bytes (bounded by the timeout). Returns true, or nil, err, bytes_sent.
function Conn:send(data)
  local deadline = now() + self.timeout
  local i = 1
  while i <= #data do
    local left = deadline - now()
    if left <= 0 then return nil, "timeout", i - 1 end
    self.sock:settimeout(left)
    local last, err, partial = self.sock:send(data, i)
    if last then return true end
    if err ~= "timeout" then return nil, err, partial end
    i = partial + 1
  end
  return true
end

--- Read whatever is available into self.buf, waiting until `deadline` (monotonic, as
-- helpers.now()). Returns true (got bytes or EOF seen), or nil, "timeout".
function Conn:fill(deadline)
  if self.eof then return true end
  local left = deadline - now()
  if left <= 0 then return nil, "timeout" end
  local r = socket.select({ self.sock }, nil, left)
  if not r[self.sock] then return nil, "timeout" end
  self.sock:settimeout(0)
  local data, err, partial = self.sock:receive(65536)
  data = data or partial
  if data and data ~= "" then self.buf = self.buf .. data end
  if err and err ~= "timeout" then
    self.eof = true
    self.eof_reason = err
  end
  return true
end

--- Read one response. opts: head (true for a HEAD request: no body), timeout.
-- 1xx responses are returned like any other (no body). Returns res, or nil, err.
-- res: { version, status, reason, headers (lower-case; repeated → list), header_list, body,
--        raw, chunked, close_delimited, trailers }
function Conn:read_response(opts)
  opts = opts or {}
  local deadline = now() + (opts.timeout or self.timeout)
  local st = new_state(opts.head)
  while true do
    local r, err = step(self, st)
    if r == "done" then return st.res end
    if not r then return nil, err end
    local ok, ferr = self:fill(deadline)
    if not ok then return nil, ferr .. " waiting for response (stage " .. st.stage .. ")" end
  end
end

--- Send `data` while reading; return the first final response (1xx collected in res.interim),
-- without waiting for the send to finish: the server may answer early and stop reading.
-- Returns res, info ({ sent = n, send_error = e }), or nil, err, info.
function Conn:exchange(data, opts)
  opts = opts or {}
  local deadline = now() + (opts.timeout or self.timeout)
  local st = new_state(opts.head)
  local interim = {}
  local i, send_err = 1, nil
  local info = {}
  while true do
    local r, err = step(self, st)
    info.sent, info.send_error = i - 1, send_err
    if r == "done" then
      local res = st.res
      if res.status >= 100 and res.status < 200 and res.status ~= 101 then
        interim[#interim + 1] = res
        st = new_state(opts.head)
      else
        res.interim = interim
        return res, info
      end
    elseif not r then
      return nil, err, info
    else
      local left = deadline - now()
      if left <= 0 then return nil, "timeout waiting for response (stage " .. st.stage .. ")", info end
      local want_write = i <= #data and not send_err
      local rr, ww = socket.select({ self.sock }, want_write and { self.sock } or nil, left)
      if rr[self.sock] then self:fill(deadline) end
      if want_write and ww[self.sock] then
        self.sock:settimeout(0)
        local j = math.min(#data, i + 65535)
        local last, serr, partial = self.sock:send(data, i, j)
        if last then
          i = last + 1
        else
          i = (partial or (i - 1)) + 1
          if serr ~= "timeout" then send_err = serr end
        end
      end
    end
  end
end

--- Read until the server closes or `timeout` passes. Returns all buffered bytes and whether
-- the connection was closed.
function Conn:read_all(timeout)
  local deadline = now() + (timeout or self.timeout)
  while not self.eof do
    if not self:fill(deadline) then break end
  end
  local data = self.buf
  self.buf = ""
  return data, self.eof
end

--- True if the server closes the connection within `timeout` seconds (bytes that arrive
-- meanwhile are kept in the buffer), false otherwise.
function Conn:closed(timeout)
  local deadline = now() + (timeout or self.timeout)
  while not self.eof do
    if not self:fill(deadline) then return false end
  end
  return true
end

function Conn:close()
  if self.sock then self.sock:close() end
  self.sock = nil
end

return _M
