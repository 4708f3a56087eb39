-- scgilua.config: loads a gateway.lua file, validates it and returns the normalised table the C
-- core reads (its field names are a contract with the C config decoder; the user-facing ones are
-- documented in scgi-lua(8) "CONFIGURATION"). Every problem is collected as "<dotted.path>:
-- <message>"; the caller names the file and reports them all once.
-- It does not resolve host names, open sockets or touch files named in the config: that is the
-- C core's job at load and reload. Pure Lua, no ffi: runs under a stock luajit.

local type, pairs, ipairs, next, tostring, tonumber = type, pairs, ipairs, next, tostring, tonumber
local loadfile, loadstring, pcall, error = loadfile, loadstring, pcall, error
local fmt, find, match, sub, gsub = string.format, string.find, string.match, string.sub,
  string.gsub
local concat, sort = table.concat, table.sort
local max, huge = math.max, math.huge

local s = require "scgilua.schema"

local _M = { _VERSION = "0.1.0" }

local UNIX_PATH_MAX = 107 -- sizeof(sockaddr_un.sun_path) - 1 on Linux
local TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$" -- RFC 9110 token: header names, cookie names
local BALANCER_NAME = "^[%w_.-]+$"

-- Addresses --------------------------------------------------------------------------------

local function is_ipv4(h)
  local a, b, c, d = match(h, "^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then
    return false
  end
  for _, o in ipairs { a, b, c, d } do
    if tonumber(o) > 255 or (#o > 1 and sub(o, 1, 1) == "0") then -- inet_pton rejects "010"
      return false
    end
  end
  return true
end

local function split(str, sep)
  local out, i = {}, 1
  while true do
    local j = find(str, sep, i, true)
    if not j then
      out[#out + 1] = sub(str, i)
      return out
    end
    out[#out + 1] = sub(str, i, j - 1)
    i = j + #sep
  end
end

-- Counts the 16-bit groups of one side of "::", or nil; a dotted IPv4 tail counts as two.
local function ipv6_groups(part, may_end_in_ipv4)
  if part == "" then
    return 0
  end
  local groups = split(part, ":")
  local n = 0
  for i, g in ipairs(groups) do
    if i == #groups and may_end_in_ipv4 and find(g, ".", 1, true) then
      if not is_ipv4(g) then
        return nil
      end
      n = n + 2
    elseif find(g, "^%x%x?%x?%x?$") then
      n = n + 1
    else
      return nil
    end
  end
  return n
end

local function is_ipv6(h)
  if #h < 2 or #h > 45 or not find(h, "^[%x:.]+$") then
    return false
  end
  local a, b = find(h, "::", 1, true)
  if not a then
    return ipv6_groups(h, true) == 8
  end
  local tail = sub(h, b + 1)
  if find(tail, "::", 1, true) then
    return false
  end
  local nh, nt = ipv6_groups(sub(h, 1, a - 1), false), ipv6_groups(tail, true)
  return nh ~= nil and nt ~= nil and nh + nt <= 7
end

local function is_hostname(h)
  h = gsub(h, "%.$", "", 1)
  if h == "" or #h > 253 or find(h, "^[%d.]+$") then -- all digits: an IPv4 address or nothing
    return false
  end
  for _, label in ipairs(split(h, ".")) do
    if #label > 63 or not find(label, "^[%w_][%w_-]*$") or find(label, "-$") then
      return false
    end
  end
  return true
end

_M.is_ipv4, _M.is_ipv6, _M.is_hostname = is_ipv4, is_ipv6, is_hostname

-- "[v6]" or a name/IPv4 (anything else gives nil); returns the host without brackets, is_v6.
local function parse_host(h)
  local v6 = match(h, "^%[(.*)%]$")
  if v6 then
    if is_ipv6(v6) then
      return v6, true
    end
    return nil
  end
  if is_ipv4(h) or is_hostname(h) then
    return h, false
  end
  return nil
end

local function host_text(host, v6)
  return v6 and "[" .. host .. "]" or host
end

local function port_number(p, lo)
  local n = #p <= 5 and tonumber(p)
  if n and n >= lo and n <= 65535 then
    return n
  end
  return nil
end

-- An absolute socket path, or nil, message.
local function socket_path(p, v)
  if sub(p, 1, 1) ~= "/" then
    return nil, "expected an absolute socket path, got " .. s.repr(v)
  elseif #p > UNIX_PATH_MAX then
    return nil, fmt("socket path too long (%d bytes at most), got %s", UNIX_PATH_MAX, s.repr(v))
  end
  return p
end

local ADDRESS_WHAT = 'an address like "127.0.0.1:8080", "[::1]:8080", "*:8080", "8080" or '
  .. '"unix:/path"'
local LISTEN_WHAT = ADDRESS_WHAT .. ", or a list of them"

-- A listen string -> { kind = "tcp", host, port, text } | { kind = "unix", path, text } or
-- nil, message.
local function parse_listen(v)
  local upath = match(v, "^unix:(.*)$")
  if upath then
    local p, msg = socket_path(upath, v)
    if not p then
      return nil, msg
    end
    return { kind = "unix", path = p, text = "unix:" .. p }
  end
  local host, port = match(v, "^(.*):([^:%]]*)$")
  if not host then
    host, port = "", v
  end
  if not find(port, "^%d+$") then
    return nil, "expected " .. ADDRESS_WHAT .. ", got " .. s.repr(v)
  end
  port = port_number(port, 0)
  if not port then
    return nil, "expected a port between 0 and 65535, got " .. s.repr(v)
  end
  local v6
  if host == "" or host == "*" then
    host, v6 = "0.0.0.0", false
  else
    local h
    h, v6 = parse_host(host)
    if not h then
      if find(host, ":", 1, true) and not find(host, "[%[%]]") then
        return nil, 'IPv6 addresses need brackets, as in "[::1]:8080", got ' .. s.repr(v)
      end
      return nil, "expected a host name, an IPv4 address or an [IPv6] address, got " .. s.repr(v)
    end
    host = h
  end
  return { kind = "tcp", host = host, port = port, text = host_text(host, v6) .. ":" .. port }
end

-- URLs -------------------------------------------------------------------------------------

local PASS_WHAT = "an scgi://host:port/, scgi+unix:/path, unix:/path|scgi://host/ or "
  .. "balancer://name/ URL"
local MEMBER_WHAT = "an scgi://host:port/, scgi+unix:/path or unix:/path|scgi://host/ URL"

-- The path part of a URL: "" means "/"; no spaces, controls, query or fragment.
local function url_path(p)
  if p == "" then
    return "/"
  end
  if sub(p, 1, 1) ~= "/" or find(p, "[%s%c?#]") then
    return nil
  end
  return p
end

-- A pass/member URL -> pass table, or nil, message. `cx.balancers` lists the known balancer
-- names; `allow_balancer` is false for balancer members.
local function parse_url(v, cx, allow_balancer)
  local what = allow_balancer and PASS_WHAT or MEMBER_WHAT
  local bad = "expected " .. what .. ", got " .. s.repr(v)

  local rest = match(v, "^scgi://(.*)$")
  if rest then
    local authority, path = match(rest, "^([^/]*)(.*)$")
    local host, port = match(authority, "^(.*):(%d+)$")
    if not host then
      return nil, "expected scgi://HOST:PORT/ with a port, got " .. s.repr(v)
    end
    port = port_number(port, 1)
    if not port then
      return nil, "expected a port between 1 and 65535, got " .. s.repr(v)
    end
    local h, v6 = parse_host(host)
    if not h then
      return nil, "expected a host name, an IPv4 address or an [IPv6] address, got " .. s.repr(v)
    end
    path = url_path(path)
    if not path then
      return nil, bad
    end
    return { kind = "tcp", host = h, port = port, url_path = path,
             text = "scgi://" .. host_text(h, v6) .. ":" .. port .. path }
  end

  rest = match(v, "^scgi%+unix:(.*)$")
  if rest then
    local p, msg = socket_path(rest, v)
    if not p then
      return nil, msg
    end
    return { kind = "unix", path = p, url_path = "/", text = "scgi+unix:" .. p }
  end

  local sock, after = match(v, "^unix:([^|]*)|(.*)$")
  if sock then
    local p, msg = socket_path(sock, v)
    if not p then
      return nil, msg
    end
    local path = match(after, "^scgi://[%w._%-]*:?%d*(.*)$") -- Apache ignores host and port
    path = path and url_path(path)
    if not path then
      return nil, bad
    end
    local text = path == "/" and "scgi+unix:" .. p or "unix:" .. p .. "|scgi://localhost" .. path
    return { kind = "unix", path = p, url_path = path, text = text }
  end

  local name, path = match(v, "^balancer://([^/]*)(.*)$")
  if name and allow_balancer then
    path = url_path(path)
    if name == "" or not find(name, BALANCER_NAME) or not path then
      return nil, bad
    end
    local known = cx.balancers
    if not known[name] then
      return nil, fmt('unknown balancer "%s" (known: %s)', name,
        #known > 0 and concat(known, ", ") or "none")
    end
    return { kind = "balancer", name = name, url_path = path,
             text = "balancer://" .. name .. path }
  end

  return nil, bad
end

_M.parse_listen = parse_listen
_M.parse_url = function(v, known_balancers)
  local known = {}
  for i, n in ipairs(known_balancers or {}) do
    known[i], known[n] = n, true
  end
  return parse_url(v, { balancers = known }, known_balancers ~= nil)
end

-- Small checks -----------------------------------------------------------------------------

local function is_ip_or_cidr(v)
  local ip, bits = match(v, "^([^/]+)/(%d%d?%d?)$")
  if not ip then
    return is_ipv4(v) or is_ipv6(v)
  end
  bits = tonumber(bits)
  return (is_ipv4(ip) and bits <= 32) or (is_ipv6(ip) and bits <= 128)
end

-- Lua 5.1 pattern syntax: string.find only reports the errors it runs into, so "a(" or "x%1"
-- would fail later against a real path. Returns nil if fine, else the reason.
local function skip_set(p, i) -- p[i] == "[": index after the closing "]", or nil
  local n = #p
  i = i + 1
  if sub(p, i, i) == "^" then
    i = i + 1
  end
  repeat
    if i > n then
      return nil
    end
    local c = sub(p, i, i)
    i = i + 1
    if c == "%" then
      if i > n then
        return nil
      end
      i = i + 1
    end
  until sub(p, i, i) == "]"
  return i + 1
end

local function pattern_error(p)
  local ok, err = pcall(find, "", p)
  if not ok then
    return (gsub(tostring(err), "^bad argument #%d+ to '[%w.]+' %((.*)%)$", "%1"))
  end
  local i, n, open, closed, level = 1, #p, {}, {}, 0
  if sub(p, 1, 1) == "^" then
    i = 2
  end
  while i <= n do
    local c = sub(p, i, i)
    if c == "(" then
      level = level + 1
      open[#open + 1] = level
      i = i + 1
    elseif c == ")" then
      if #open == 0 then
        return "invalid pattern capture"
      end
      closed[open[#open]] = true
      open[#open] = nil
      i = i + 1
    elseif c == "[" then
      i = skip_set(p, i)
      if not i then
        return "malformed pattern (missing ']')"
      end
    elseif c == "%" then
      local d = sub(p, i + 1, i + 1)
      if d == "" then
        return "malformed pattern (ends with '%')"
      elseif d == "b" then
        if i + 3 > n then
          return "unbalanced pattern"
        end
        i = i + 4
      elseif d == "f" then
        if sub(p, i + 2, i + 2) ~= "[" then
          return "missing '[' after '%f' in pattern"
        end
        i = skip_set(p, i + 2)
        if not i then
          return "malformed pattern (missing ']')"
        end
      elseif find(d, "%d") then
        if not closed[tonumber(d)] then
          return "invalid capture index"
        end
        i = i + 2
      else
        i = i + 2
      end
    else
      i = i + 1
    end
  end
  if #open > 0 then
    return "unfinished capture"
  end
  return nil
end
_M.pattern_error = pattern_error

-- "+H", "+H+I", "+HI", "-D" -> flags; letters are case-insensitive, as in Apache.
local STATUS_FLAGS = { H = "hot_standby", D = "disabled", N = "drain", I = "ignore_errors" }

local function parse_status(v)
  local flags = { hot_standby = false, disabled = false, drain = false, ignore_errors = false }
  if not find(v, "^[+-][%a+-]*$") then
    return nil
  end
  local on = true
  for c in v:gmatch(".") do
    if c == "+" or c == "-" then
      on = c == "+"
    else
      local f = STATUS_FLAGS[c:upper()]
      if not f then
        return nil
      end
      flags[f] = on
    end
  end
  return flags
end

local function number_text(v)
  if s.is_integer(v) then
    return fmt("%d", v)
  end
  return tostring(v)
end

-- Schema -----------------------------------------------------------------------------------

local header_name = s.string { match = TOKEN, what = "a header name" }

local abs_path = s.string { match = "^/", what = "an absolute path" }

local url_path_field = s.string { what = 'a path starting with "/"',
  convert = function(v)
    return find(v, "^/") and not find(v, "[%s%c]") and v or nil
  end }

local pass_url = s.string { what = PASS_WHAT, convert = function(v, cx)
  return parse_url(v, cx, true)
end }

local member_url = s.string { what = MEMBER_WHAT, convert = function(v, cx)
  return parse_url(v, cx, false)
end }

local listen_addr = s.string { what = ADDRESS_WHAT, convert = parse_listen }

-- listen[i].tls (README "TLS"): files are checked when the config is built (tls.c), where
-- OpenSSL can say what is wrong with them.
local tls_cert = s.record {
  { cert = s.string { match = ".", what = "a PEM certificate file path", required = true } },
  { key = s.string { match = ".", what = "a PEM private key file path", required = true } },
  { ocsp = s.string { match = ".", what = "a DER OCSP response file path" } },
}

local tls = s.record {
  { certs = s.list { of = tls_cert, min = 1, required = true,
    what = "a non-empty list of { cert = , key = } tables" } },
  { protocols = s.enum { "TLSv1.2+", "TLSv1.3", default = "TLSv1.2+" } },
  { ciphers = s.string { match = ".", what = "an OpenSSL cipher list" } },
  { client_ca = s.string { match = ".", what = "a PEM CA file path" } },
  { verify_client = s.enum { "require", "optional" } },
  { export_client_cert = s.boolean { default = false } },
  post = function(out, _v, path, cx)
    if out.verify_client and not out.client_ca then
      cx:err(s.join(path, "verify_client"), "needs client_ca (the CA that signs client certificates)")
    elseif out.client_ca and not out.verify_client then
      out.verify_client = "require"
    end
  end,
}

local listen_record = s.record {
  { addr = s.string { what = ADDRESS_WHAT, convert = parse_listen, required = true } },
  { tls = tls },
  { redirect_https = s.boolean { default = false } },
  post = function(out, _v, path, cx)
    if out.addr and out.addr.kind == "unix" and out.tls then
      cx:err(s.join(path, "tls"), "TLS on a unix socket is not supported")
    end
    if out.tls and out.redirect_https then
      cx:err(s.join(path, "redirect_https"), "is for a plain listener (this one has tls)")
    end
  end,
}

-- An address string, or { addr = , tls = }: flattened to the address fields plus `tls`.
local listen_entry = s.custom { type = "any", what = ADDRESS_WHAT .. ' or { addr = , tls = }',
  check = function(v, path, cx)
    if type(v) == "string" then
      return listen_addr.check(v, path, cx)
    end
    if type(v) ~= "table" then
      return cx:expected(path, ADDRESS_WHAT .. ' or { addr = , tls = }', v)
    end
    local r = listen_record.check(v, path, cx)
    if not r or not r.addr then
      return nil
    end
    r.addr.tls = r.tls
    r.addr.redirect_https = r.redirect_https or nil
    return r.addr
  end,
}

local listen = s.custom { type = "any", what = LISTEN_WHAT, default = "127.0.0.1:8080",
  check = function(v, path, cx)
    -- one entry on its own: a string, or a table with `addr` (a list has none)
    if type(v) == "string" or (type(v) == "table" and v.addr ~= nil) then
      local x = listen_entry.check(v, path, cx)
      return x ~= nil and { x } or nil
    end
    local list = s.list { of = listen_entry, min = 1, what = LISTEN_WHAT }
    return list.check(v, path, cx)
  end,
}

local workers = s.one_of {
  s.integer { min = 1 },
  s.literal { "auto", to = 0 },
  default = 1,
}

local timeouts = s.record {
  { client_header = s.number { gt = 0, default = 10 } },
  { client_body = s.number { gt = 0, default = 60 } },
  { keepalive = s.number { gt = 0, default = 75 } },
  { connect = s.number { gt = 0, default = 5 } },
  { backend = s.number { gt = 0, default = 60 } },
  { send = s.number { gt = 0, default = 60 } },
  { shutdown = s.number { gt = 0, default = 30 } },
  { tls_handshake = s.number { gt = 0, default = 10 } },
  default = {},
}

local limits = s.record {
  { header_bytes = s.integer { min = 1024, max = 1048576, default = 16384 } },
  { headers = s.integer { min = 1, max = 10000, default = 100 } },
  { body_bytes = s.integer { min = 0, default = 1073741824 } },
  { connections = s.integer { min = 1, default = 10000 } },
  { hook_time = s.number { gt = 0, default = 1 } },
  { lua_memory = s.integer { min = 1048576, default = 67108864 } },
  { match_path_bytes = s.integer { min = 256, max = 1048576, default = 2048 } },
  default = {},
}

local access_log = s.one_of {
  s.string { match = ".", what = "a file path" },
  s.literal { false },
  what = '"stderr", a file path or false',
  default = "stderr",
}

local log_level = s.enum { "debug", "info", "warn", "error", default = "info" }

local allow_entry = s.string { what = 'an IP address or CIDR range like "10.0.0.0/8"',
  convert = function(v)
    return is_ip_or_cidr(v) and v or nil
  end }

local status_record = s.record {
  { path = url_path_field { default = "/.well-known/scgi-lua/status" } },
  { allow = s.list { of = allow_entry, default = { "127.0.0.1", "::1" } } },
}

local status = s.one_of { status_record, s.literal { false, to = nil }, what = "a table or false" }

local check = s.record {
  { interval = s.number { gt = 0, default = 5 } },
  { path = url_path_field { default = "/" } },
  { timeout = s.number { gt = 0, default = 2 } },
}

local STATUS_WHAT = 'a status like "+H", "+D", "+N", "+I" or a combination like "+H+I"'

local member_record = s.record {
  { url = member_url { required = true } },
  { loadfactor = s.integer { min = 1, max = 100, default = 1 } },
  { lbset = s.integer { min = 0, max = 99, default = 0 } },
  { retry = s.number { min = 0, default = 10 } },
  { status = s.string { what = STATUS_WHAT, convert = parse_status, default = "+" } },
  { route = s.string { match = "^[%w_-]+$", what = 'a route name (letters, digits, "_", "-")' } },
  { check = check },
  post = function(out, v)
    out.pass, out.url = out.url, v.url
    local flags = out.status or {}
    out.status = nil
    for _, f in pairs(STATUS_FLAGS) do
      out[f] = flags[f] or false
    end
  end,
}

local member = s.one_of {
  s.custom { type = "string", what = MEMBER_WHAT, check = function(v, path, cx)
    if member_url.check(v, path, cx) ~= nil then
      return member_record.check({ url = v }, path, cx)
    end
  end },
  member_record,
}

-- Errors for two members of one balancer that share a URL or a route.
local function check_unique(members, n, field, path, cx, label)
  local seen = {}
  for i = 1, n do
    local m = members[i]
    local key = m and (field == "url" and m.pass and m.pass.text or field == "route" and m.route)
    if key then
      if seen[key] then
        cx:err(s.join(s.join(path, i), field),
          fmt("duplicate %s %s (same as members[%d])", label, s.quote(m[field]), seen[key]))
      else
        seen[key] = i
      end
    end
  end
end

local balancer = s.record {
  { method = s.one_of {
      s.enum { "byrequests", "bytraffic", "bybusyness" },
      s.func {},
      default = "byrequests",
  } },
  { members = s.list { of = member, min = 1, required = true,
                       what = "a non-empty list of members" } },
  { sticky = s.string { match = TOKEN, what = "a cookie or parameter name" } },
  { maxattempts = s.integer { min = 0 } },
  post = function(out, v, path, cx)
    if type(out.method) == "function" then
      out.method, out.method_fn = "lua", out.method
    end
    local members = out.members or {}
    local n = type(v.members) == "table" and #v.members or 0
    local mpath = s.join(path, "members")
    check_unique(members, n, "url", mpath, cx, "member")
    check_unique(members, n, "route", mpath, cx, "route")
    if out.maxattempts == nil then
      out.maxattempts = max(#members - 1, 0)
    end
  end,
}

local balancers = s.map {
  key = s.string { match = BALANCER_NAME,
                   what = 'a balancer name (letters, digits, "_", ".", "-")' },
  of = balancer,
  default = {},
}

local redirect_header = s.one_of {
  s.literal { true, to = "Location" },
  s.literal { false },
  header_name,
  what = "true, false or a header name",
}

local sendfile_header = s.one_of {
  s.literal { true, to = "X-Sendfile" },
  s.literal { false },
  header_name,
  what = "true, false or a header name",
}

local sendfile_root = s.list { of = abs_path, min = 1, single = true,
  what = "an absolute path or a non-empty list of them" }

local ENV_VALUE_WHAT = "a string, a number, false or a function"

local env = s.custom { type = "table", what = "a table of variable names to values",
  check = function(v, path, cx, w)
    if type(v) ~= "table" then
      return cx:expected(path, w or "a table of variable names to values", v)
    end
    local names = {}
    for k in next, v do
      names[#names + 1] = k
    end
    sort(names, s.key_less)
    local out = {}
    for _, name in ipairs(names) do
      local kpath, value = s.join(path, name), v[name]
      local t = type(value)
      if type(name) ~= "string" or name == "" or find(name, "[=%z]") then
        cx:expected(kpath, 'a variable name without "=" or NUL as key', name)
      elseif t == "number" and value == value and value > -huge and value < huge then
        out[#out + 1] = { name = name, value = number_text(value) }
      elseif (t == "string" and not find(value, "%z")) or value == false or t == "function" then
        out[#out + 1] = { name = name, value = value }
      elseif t == "string" then
        cx:expected(kpath, "a string without NUL bytes", value)
      else
        cx:expected(kpath, ENV_VALUE_WHAT, value)
      end
    end
    return out
  end }

-- string.find backtracks in C, where no hook can stop it: each ".*", ".+" or ".-" multiplies
-- the work by the length of the path, and so does an unanchored pattern (it is retried at
-- every offset). Up to n^2 is cheap for paths within limits.match_path_bytes (a few ms at
-- 2 KiB); n^3 already takes seconds there. Returns nil, or the reason for refusing.
-- A repeated item whose class can match "/" (".", "%S", "[%w/]", "[^x]", ...) may span any
-- number of path segments, so each one multiplies the backtracking cost by the path length;
-- string.find runs in C, where the hook budget cannot stop it.
local function pattern_cost_error(p)
  local degree, i, n = sub(p, 1, 1) == "^" and 0 or 1, 1, #p
  while i <= n do
    local c, j = sub(p, i, i), i + 1
    if c == "%" then
      local k = sub(p, i + 1, i + 1)
      if k == "b" then
        j = i + 4
      elseif k == "f" then
        j = skip_set(p, i + 2) or n + 1
        c = nil -- a frontier matches no character
      else
        j = i + 2
      end
    elseif c == "[" then
      j = skip_set(p, i) or n + 1
    elseif c == "(" or c == ")" or (c == "$" and j > n) then
      c = nil
    end
    if c and find(sub(p, j, j), "^[*+-]$") and find("/", "^" .. sub(p, i, j - 1) .. "$") then
      degree = degree + 1
    end
    i = j
  end
  if degree >= 3 then
    return fmt("matching costs n^%d steps for a path of n bytes (each repeated item that can " ..
               "match '/', such as .* .+ .- %%S+ [^x]*, and a missing '^' anchor multiply by n); " ..
               "anchor it with '^' or use [^/]+ for a segment", degree)
  end
  return nil
end
_M.pattern_cost_error = pattern_cost_error

local match_field = s.one_of {
  s.string { what = "a Lua pattern", convert = function(v)
    local err = pattern_error(v) or pattern_cost_error(v)
    if err then
      return nil, fmt("invalid Lua pattern %s: %s", s.quote(v), err)
    end
    return v
  end },
  s.func {},
}

local route = s.record {
  { path = s.string { what = 'a path starting with "/"', match = "^/" } },
  { match = match_field },
  { pass = pass_url { required = true } },
  { internal_redirect = redirect_header { default = true } },
  { sendfile = sendfile_header { default = false } },
  { sendfile_root = sendfile_root },
  { env = env { default = {} } },
  { timeout = s.number { gt = 0 } },
  { pass_auth = s.boolean { default = true } },
  { allow_encoded_slashes = s.boolean { default = false } },
  { https_only = s.boolean { default = false } },
  { access = s.func {} },
  post = function(out, v, path, cx)
    if v.path == nil and v.match == nil then
      cx:err(path, 'needs a "path" or a "match" field (or both)')
    end
    out.pathinfo = false
    for _, e in ipairs(out.env or {}) do
      if e.name == "proxy-scgi-pathinfo" and e.value ~= false then
        out.pathinfo = true
      end
    end
  end,
}

local routes = s.list { of = route, min = 1, required = true, what = "a non-empty list of routes" }

local config = s.record {
  { listen = listen },
  { workers = workers },
  { timeouts = timeouts },
  { limits = limits },
  { access_log = access_log },
  { log_format = s.func {} },
  { log_level = log_level },
  { status = status },
  { balancers = balancers },
  { routes = routes },
  post = function(out, v, _path, cx)
    if out.status == false then
      out.status = nil
    end
    local seen = {}
    for i, l in ipairs(out.listen or {}) do
      if seen[l.text] then
        cx:err(type(v.listen) == "table" and s.join("listen", i) or "listen",
          fmt('duplicate address "%s" (same as listen[%d])', l.text, seen[l.text]))
      end
      seen[l.text] = seen[l.text] or i
    end
    for name, b in pairs(out.balancers or {}) do
      b.name = name
    end
    -- a route without its own timeout waits as long as any other backend: the C decoder
    -- reads every route's timeout as given
    local backend = out.timeouts and out.timeouts.backend
    for i, r in pairs(out.routes or {}) do
      r.index = i
      if r.timeout == nil then
        r.timeout = backend
      end
    end
  end,
}

-- Field lists (for documentation and tests).
_M.fields = {
  config = config.fields, timeouts = timeouts.fields, limits = limits.fields,
  listen = listen_record.fields, tls = tls.fields, tls_cert = tls_cert.fields,
  status = status_record.fields, balancer = balancer.fields, member = member_record.fields,
  check = check.fields, route = route.fields,
}

-- API --------------------------------------------------------------------------------------

--- Validates and normalises a configuration table.
--- Returns the normalised config, or nil and the list of every problem ("<path>: <message>").
--- `filename` is only used for argument checking symmetry with load_file; messages do not
--- name the file (the caller does). Raises on misuse (t not a table).
function _M.validate(t, filename)
  if type(t) ~= "table" then
    error(fmt("bad argument #1 to 'validate' (table expected, got %s)", type(t)), 2)
  end
  if filename ~= nil and type(filename) ~= "string" then
    error(fmt("bad argument #2 to 'validate' (string expected, got %s)", type(filename)), 2)
  end
  local cx = s.context()
  local known = {}
  if type(t.balancers) == "table" then
    for name in next, t.balancers do
      if type(name) == "string" and find(name, BALANCER_NAME) then
        known[#known + 1] = name
      end
    end
    sort(known)
    for _, name in ipairs(known) do
      known[name] = true
    end
  end
  cx.balancers = known
  local cfg = config.check(t, "", cx)
  if #cx.errs > 0 then
    return nil, cx.errs
  end
  return cfg
end

--- Loads, runs and validates a configuration file.
--- Returns the normalised config, or nil and a list of error strings. Load and runtime errors
--- carry the file name and line (as Lua reports them); validation errors do not.
--- With `source` (the file's bytes, read earlier), those bytes are run instead of what the
--- file holds now, under the file's name: a master hands its workers what it validated.
function _M.load_file(path, source)
  if type(path) ~= "string" then
    error(fmt("bad argument #1 to 'load_file' (string expected, got %s)", type(path)), 2)
  end
  if source ~= nil and type(source) ~= "string" then
    error(fmt("bad argument #2 to 'load_file' (string expected, got %s)", type(source)), 2)
  end
  local chunk, err
  if source then
    chunk, err = loadstring(source, "@" .. path)
  else
    chunk, err = loadfile(path)
  end
  if not chunk then
    return nil, { tostring(err) }
  end
  local ok, t = pcall(chunk)
  if not ok then
    if type(t) ~= "string" then
      t = "error object is " .. s.repr(t)
    end
    if sub(t, 1, #path + 1) ~= path .. ":" then
      t = path .. ": " .. t
    end
    return nil, { t }
  end
  if type(t) ~= "table" then
    return nil, { path .. ": expected the file to return a table, got " .. s.repr(t) }
  end
  return _M.validate(t, path)
end

local function route_line(cfg, r, i)
  local parts = {}
  if r.path then
    parts[#parts + 1] = "path " .. r.path
  end
  if type(r.match) == "function" then
    parts[#parts + 1] = "match <function>"
  elseif r.match then
    parts[#parts + 1] = "match " .. s.quote(r.match)
  end
  local line = fmt("route %d: %s -> %s", r.index or i, concat(parts, " "), r.pass.text)
  local b = r.pass.kind == "balancer" and cfg.balancers and cfg.balancers[r.pass.name]
  if b then
    line = line .. fmt(" (%s, %d member%s)", b.method, #b.members, #b.members == 1 and "" or "s")
  end
  return line
end

--- One line per route, for `scgi-lua -t`: "route 1: path /scgi-bin/ -> scgi://127.0.0.1:4000/".
function _M.summary(cfg)
  if type(cfg) ~= "table" or type(cfg.routes) ~= "table" then
    error("bad argument #1 to 'summary' (validated config expected)", 2)
  end
  local lines = {}
  for i, r in ipairs(cfg.routes) do
    lines[i] = route_line(cfg, r, i)
  end
  return lines
end

return _M
