#!/usr/bin/env luajit
-- A tiny SCGI application server to put behind scgi-lua while you try the examples.
-- One connection at a time, blocking, luasocket only: it exists to show what the gateway sends
-- and to make timeouts, balancing and redirects visible, not to be fast or concurrent.
-- It parses the SCGI request strictly, so a gateway that frames a request wrongly gets a 400
-- saying why. It is not a framework: there is no keep-alive, no concurrency, no templating.
--
--   luajit examples/demo_app.lua [--host 127.0.0.1] [--port 4000] [--unix /path/to/sock]
--
-- Endpoints (matched on the last segment of the request path, so the app works under any mount
-- point: /scgi-bin/hello, /cluster/hello and /hello all reach "hello"):
--   hello            plain-text greeting with this process's pid (tells balancer members apart)
--   env              every SCGI variable received, as NAME=VALUE lines, in received order
--   echo             the request body back, with the request's Content-Type
--   slow?s=N         sleep N seconds (0-300, fractions allowed), then answer
--   redirect?to=/P   200 + Location and X-Location: /P (an internal redirect for the gateway)
--   download         X-Sendfile and X-Send-Static naming this script (a sendfile for the gateway)
--   anything else    an HTML index linking the above

local socket = require "socket"

local assert, error, ipairs, pcall, tonumber, tostring =
  assert, error, ipairs, pcall, tonumber, tostring
local byte, char, concat, find, format, gsub, sub =
  string.byte, string.char, table.concat, string.find, string.format, string.gsub, string.sub
local io_stderr, io_stdout, os_date, os_exit, os_remove =
  io.stderr, io.stdout, os.date, os.exit, os.remove
local gettime, sleep = socket.gettime, socket.sleep

local MAX_HEADER_BYTES = 1024 * 1024        -- netstring payload cap, as a sanity limit
local MAX_BODY_BYTES = 64 * 1024 * 1024     -- echo keeps the body in memory
local IO_TIMEOUT = 30                       -- seconds per read/write; a stuck peer can't wedge us
local MAX_SLEEP = 300

local function usage(msg)
  local out = msg and io_stderr or io_stdout
  if msg then
    out:write("demo_app: ", msg, "\n")
  end
  out:write("usage: luajit examples/demo_app.lua [--host HOST] [--port PORT] [--unix PATH]\n",
            "  defaults: --host 127.0.0.1 --port 4000; --port 0 picks a free port\n")
  os_exit(msg and 2 or 0)
end

local function parse_args(argv)
  local opts = { host = "127.0.0.1", port = 4000 }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if name == "help" or a == "-h" then
      usage()
    elseif name == "host" or name == "port" or name == "unix" then
      local v = inline
      if not v then
        i = i + 1
        v = argv[i]
      end
      if not v or v == "" then
        usage("--" .. name .. " needs a value")
      end
      opts[name] = v
    else
      usage("unknown argument " .. a)
    end
    i = i + 1
  end
  if not opts.unix then
    local port = tonumber(opts.port)
    if not port or port % 1 ~= 0 or port < 0 or port > 65535 then
      usage("--port must be an integer between 0 and 65535")
    end
    opts.port = port
  end
  return opts
end

-- pid and realpath through the FFI: luasocket has neither, and the demo should need nothing else.
local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok then
  ffi_ok = pcall(ffi.cdef, [[
    int getpid(void);
    char *realpath(const char *path, char *resolved);
    void free(void *ptr);
  ]])
end

local pid = "?"
if ffi_ok then
  local ok, n = pcall(function() return ffi.C.getpid() end)
  if ok then
    pid = tostring(n)
  end
end

-- Absolute path of this script, named by the "download" endpoint; sendfile wants an absolute
-- path, and a resolved one passes a sendfile_root check that follows symlinks.
local self_path = debug.getinfo(1, "S").source:gsub("^@", "")
do
  local resolved
  if ffi_ok then
    local p = ffi.C.realpath(self_path, nil)
    if p ~= nil then
      resolved = ffi.string(p)
      ffi.C.free(p)
    end
  end
  if resolved then
    self_path = resolved
  elseif sub(self_path, 1, 1) ~= "/" and os.getenv("PWD") then
    self_path = os.getenv("PWD"):gsub("/$", "") .. "/" .. self_path:gsub("^%./", "")
  end
end

local function log(fmt, ...)
  io_stderr:write(os_date("!%Y-%m-%dT%H:%M:%SZ "), format(fmt, ...), "\n")
  io_stderr:flush()
end

------------------------------------------------------------------------------------------------
-- Reading the request. Each reader returns a value, or nil, err, kind where kind is "bad"
-- (malformed: answer 400), "big" (answer 413), "io" (peer gone or too slow: just close) or
-- "empty" (closed without a byte, as a TCP health probe does: close quietly).

local function bad(msg) return nil, msg, "bad" end

local function read_netstring_length(c)
  local digits = {}
  while true do
    local ch, err = c:receive(1)
    if not ch then
      if err == "closed" and #digits == 0 then
        return nil, "closed before sending anything", "empty"
      end
      return nil, "reading netstring length: " .. err, "io"
    end
    if ch == ":" then
      break
    end
    if not find(ch, "^%d$") then
      return bad(format("netstring length: expected a digit or ':', got %q", ch))
    end
    if #digits == 1 and digits[1] == "0" then
      return bad("netstring length has a leading zero")
    end
    digits[#digits + 1] = ch
    if #digits > #tostring(MAX_HEADER_BYTES) then
      return nil, "netstring length too large", "big"
    end
  end
  if #digits == 0 then
    return bad("netstring length is empty")
  end
  local n = tonumber(concat(digits))
  if n > MAX_HEADER_BYTES then
    return nil, format("header block of %d bytes exceeds %d", n, MAX_HEADER_BYTES), "big"
  end
  return n
end

-- Splits "NAME\0VALUE\0NAME\0VALUE\0" into an ordered list of {name, value}.
local function split_headers(block)
  if #block == 0 then
    return bad("empty header block")
  end
  if byte(block, #block) ~= 0 then
    return bad("header block does not end with NUL")
  end
  local vars, seen, pos = {}, {}, 1
  while pos <= #block do
    local nul = find(block, "\0", pos, true)
    local name = sub(block, pos, nul - 1)
    local vnul = find(block, "\0", nul + 1, true)
    if not vnul then
      return bad(format("variable %q has no value", name))
    end
    if name == "" then
      return bad(format("empty variable name at offset %d", pos - 1))
    end
    if seen[name] then
      return bad(format("variable %q appears twice", name))
    end
    local value = sub(block, nul + 1, vnul - 1)
    seen[name] = value
    vars[#vars + 1] = { name, value }
    pos = vnul + 1
  end
  return vars, seen
end

local function read_request(c)
  local len, err, kind = read_netstring_length(c)
  if not len then
    return nil, err, kind
  end
  local block, rerr = c:receive(len)
  if not block then
    return nil, format("reading %d-byte header block: %s", len, rerr), "io"
  end
  local comma, cerr = c:receive(1)
  if not comma then
    return nil, "reading netstring ',': " .. cerr, "io"
  end
  if comma ~= "," then
    return bad(format("netstring: expected ',' after %d bytes, got %q", len, comma))
  end

  local vars, env = split_headers(block)
  if not vars then
    return nil, env, "bad"
  end
  if vars[1][1] ~= "CONTENT_LENGTH" then
    return bad(format("first variable must be CONTENT_LENGTH, got %q", vars[1][1]))
  end
  local cl = vars[1][2]
  if not find(cl, "^%d+$") then
    return bad(format("CONTENT_LENGTH must be decimal digits, got %q", cl))
  end
  if env.SCGI ~= "1" then
    return bad(env.SCGI and format("SCGI must be \"1\", got %q", env.SCGI)
                         or "variable SCGI=1 is missing")
  end
  local body_len = tonumber(cl)
  if body_len > MAX_BODY_BYTES then
    return nil, format("body of %s bytes exceeds %d", cl, MAX_BODY_BYTES), "big"
  end

  local body = ""
  if body_len > 0 then
    local berr, partial
    body, berr, partial = c:receive(body_len)
    if not body then
      return nil, format("reading body: got %d of %d bytes (%s)", #(partial or ""), body_len, berr),
             "io"
    end
  end
  return { vars = vars, env = env, body = body }
end

------------------------------------------------------------------------------------------------
-- Answering.

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function html_escape(s)
  return (gsub(s, "[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function query_param(query, want)
  for pair in query:gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if unescape((gsub(k, "+", " "))) == want then
      return unescape((gsub(v, "+", " ")))
    end
  end
  return nil
end

-- Returns (path, query) of the request. REQUEST_URI is what the client asked for, so routing on
-- it ignores however the gateway split SCRIPT_NAME/PATH_INFO; the CGI pair is the fallback.
local function request_target(env)
  local uri = env.REQUEST_URI
  if uri and uri ~= "" then
    uri = gsub(uri, "#.*$", "")
    local path, query = uri:match("^([^?]*)%??(.*)$")
    path = gsub(path, "^%a[%w+.-]*://[^/]*", "")   -- absolute-form request-target
    return path, env.QUERY_STRING or query
  end
  return (env.SCRIPT_NAME or "") .. (env.PATH_INFO or ""), env.QUERY_STRING or ""
end

local function response(status, headers, body)
  local out = { "Status: ", status, "\r\n" }
  for _, h in ipairs(headers) do
    out[#out + 1] = h[1] .. ": " .. h[2] .. "\r\n"
  end
  out[#out + 1] = "Content-Length: " .. #body .. "\r\n\r\n"
  out[#out + 1] = body
  return concat(out), status, #body
end

local function text(status, body, extra)
  local headers = { { "Content-Type", "text/plain; charset=utf-8" } }
  for _, h in ipairs(extra or {}) do
    headers[#headers + 1] = h
  end
  return response(status, headers, body)
end

local ENDPOINTS = {
  { "hello", "a greeting with the pid of the process that answered" },
  { "env", "the SCGI variables this app received" },
  { "echo", "the request body back (try POST)" },
  { "slow?s=2", "answer after 2 seconds (blocks this one-at-a-time app)" },
  { "redirect?to=", "an internal redirect to the hello page, via Location and X-Location" },
  { "download", "X-Sendfile / X-Send-Static naming this app's source file" },
}

local function index_page(base, env)
  local items = {}
  for _, e in ipairs(ENDPOINTS) do
    local rel = e[1]
    if rel == "redirect?to=" then
      rel = rel .. base .. "hello"
    end
    items[#items + 1] = format('  <li><a href="%s">%s</a> &mdash; %s</li>\n',
                               html_escape(base .. rel), html_escape(rel), html_escape(e[2]))
  end
  local body = concat {
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>scgi-lua demo app</title>",
    "</head>\n<body>\n<h1>scgi-lua demo app</h1>\n<p>pid ", pid, ", you asked for <code>",
    html_escape(env.REQUEST_URI or "?"), "</code></p>\n<ul>\n", concat(items), "</ul>\n</body></html>\n",
  }
  return response("200 OK", { { "Content-Type", "text/html; charset=utf-8" } }, body)
end

local function handle(req)
  local env = req.env
  local path, query = request_target(env)
  local base, last = path:match("^(.*/)([^/]*)$")
  if not base then
    base, last = "/", path
  end
  last = unescape(last)

  if last == "hello" then
    return text("200 OK", format("Hello from the scgi-lua demo app (pid %s)!\n", pid))

  elseif last == "env" then
    local lines = {}
    for i, v in ipairs(req.vars) do
      lines[i] = v[1] .. "=" .. v[2] .. "\n"
    end
    return text("200 OK", concat(lines))

  elseif last == "echo" then
    local ctype = env.CONTENT_TYPE
    if not ctype or ctype == "" then
      ctype = "application/octet-stream"
    end
    return response("200 OK", { { "Content-Type", ctype } }, req.body)

  elseif last == "slow" then
    local s = query_param(query, "s") or "1"
    local n = tonumber(s)
    if not n or n ~= n or n < 0 or n > MAX_SLEEP then
      return text("400 Bad Request", format("s must be a number of seconds from 0 to %d\n",
                                            MAX_SLEEP))
    end
    sleep(n)
    return text("200 OK", format("slept %s seconds (pid %s)\n", s, pid))

  elseif last == "redirect" then
    -- mod_cgi's convention: 200 + a local path makes the gateway re-route the request itself.
    -- Location serves routes with the default internal_redirect; X-Location serves those that
    -- name it (frameworks such as Django qualify Location into an absolute URL).
    local to = query_param(query, "to") or ""
    if to == "" then
      to = base .. "hello"
    end
    if sub(to, 1, 1) ~= "/" or find(to, "[%c]") then
      return text("400 Bad Request", "to must be a local path starting with /\n")
    end
    return text("200 OK",
                "The gateway did not redirect internally; this route has that turned off.\n",
                { { "Location", to }, { "X-Location", to } })

  elseif last == "download" then
    -- The path is fixed, never taken from the request: a backend that lets clients name files
    -- turns the gateway's sendfile into an arbitrary file read.
    return text("200 OK",
                "The gateway did not serve the file itself; sendfile is off on this route.\n",
                { { "X-Sendfile", self_path }, { "X-Send-Static", self_path } })
  end

  return index_page(base, env)
end

------------------------------------------------------------------------------------------------
-- Serving.

local function peer_of(c)
  local ok, a, p = pcall(c.getpeername, c)
  if ok and a then
    return p and (tostring(a) .. ":" .. tostring(p)) or tostring(a)
  end
  return "unix"
end

-- After an early answer the peer may still be sending: close our side, then drain briefly so
-- the kernel does not turn unread input into a reset that destroys the answer in flight.
local function linger_close(c)
  c:shutdown("send")
  c:settimeout(1)
  local drained = 0
  while drained < MAX_BODY_BYTES do
    local chunk, err, partial = c:receive(65536)
    chunk = chunk or partial
    if chunk then
      drained = drained + #chunk
    end
    if err then
      break
    end
  end
  c:close()
end

local function serve_one(c)
  local t0 = gettime()
  local peer = peer_of(c)          -- before close: a closed socket has no peer
  c:settimeout(IO_TIMEOUT)
  local req, err, kind = read_request(c)
  if not req then
    if kind == "empty" then
      c:close()                    -- a TCP-connect probe; not worth a line
      return
    end
    if kind == "io" then
      log("%s - - (no answer: %s)", peer, err)
      c:close()
      return
    end
    local status = kind == "big" and "413 Content Too Large" or "400 Bad Request"
    local out, _, n = text(status, "bad SCGI request: " .. err .. "\n")
    c:send(out)
    linger_close(c)
    log("%s - - %s %d (%s)", peer, status:sub(1, 3), n, err)
    return
  end

  local ok, out, status, n = pcall(handle, req)
  if not ok then
    log("handler error: %s", tostring(out))
    out, status, n = text("500 Internal Server Error", "demo app error\n")
  end
  local sent, serr = c:send(out)
  c:close()
  local env = req.env
  log("%s \"%s %s\" %s %d %.3fs%s", env.REMOTE_ADDR or peer, env.REQUEST_METHOD or "-",
      env.REQUEST_URI or "-", status:sub(1, 3), n, gettime() - t0,
      sent and "" or (" (send failed: " .. tostring(serr) .. ")"))
end

local function listen_unix(path)
  local ok, unix = pcall(require, "socket.unix")
  if not ok then
    error("--unix needs luasocket's socket.unix module: " .. tostring(unix), 0)
  end
  local function try()
    local s = assert(unix.stream())
    local bok, berr = s:bind(path)
    if not bok then
      s:close()
      return nil, berr
    end
    assert(s:listen(64))
    return s
  end
  local s, err = try()
  if not s and err and find(err, "in use", 1, true) then
    -- A socket file left by a killed instance: remove it only if it is a socket (never a file
    -- a mistyped --unix points at) and nobody answers on it.
    local st = os.execute("test -S '" .. gsub(path, "'", "'\\''") .. "'")
    if st ~= 0 and st ~= true then
      error(format("%s: exists and is not a socket", path), 0)
    end
    local probe = assert(unix.stream())
    local live = probe:connect(path)
    probe:close()
    if live then
      error(format("%s: another server is listening there", path), 0)
    end
    os_remove(path)
    s, err = try()
  end
  if not s then
    error(format("cannot listen on unix:%s: %s", path, tostring(err)), 0)
  end
  return s, "unix:" .. path
end

local function listen_tcp(host, port)
  local s, err = socket.bind(host, port, 64)
  if not s then
    error(format("cannot listen on %s:%d: %s", host, port, tostring(err)), 0)
  end
  local addr, bound = s:getsockname()
  addr = addr or host
  if find(addr, ":", 1, true) then
    addr = "[" .. addr .. "]"
  end
  return s, addr .. ":" .. tostring(bound or port)
end

local function main(argv)
  local opts = parse_args(argv)
  local ok, server, where = pcall(function()
    if opts.unix then
      return listen_unix(opts.unix)
    end
    return listen_tcp(opts.host, opts.port)
  end)
  if not ok then
    io_stderr:write("demo_app: ", tostring(server), "\n")
    os_exit(1)
  end
  io_stdout:write("demo app listening on ", where, "\n")
  io_stdout:flush()

  server:settimeout(nil)
  while true do
    local c, err = server:accept()
    if c then
      local sok, serr = pcall(serve_one, c)
      if not sok then
        log("connection error: %s", tostring(serr))
        pcall(c.close, c)
      end
    elseif err ~= "timeout" then
      log("accept failed: %s", tostring(err))
      sleep(0.1)                   -- EMFILE and friends: don't spin
    end
  end
end

main(arg or {})
