-- scgi-lua(8) STATUS ENDPOINT: JSON by default, Prometheus text 0.0.4 with ?format=prometheus,
-- HTML with ?format=html, 400 for an unknown format, 403 (and a log line) for a client outside
-- status.allow. Counters: uptime, config generation, requests by status class, and per
-- backend, keyed by its URL, under its balancer or its route: state, busy, requests,
-- failures, bytes, last error. The Prometheus output goes through a strict parser written
-- here, so a scraper would accept it.

local helpers = require "spec.helpers"

---------------------------------------------------------------------------------------------
-- JSON. A small decoder of our own, strict enough for the gateway's output: objects, arrays,
-- strings with escapes (\uXXXX below 0x80 only, which is all the gateway emits), numbers,
-- true/false, null (gives nil). dkjson (a dependency of busted) decodes when it loads; the
-- first test checks that both decoders agree, so the fallback stays honest.

local function mini_json_decode(s)
  local pos = 1
  local value
  local function fail(msg) error(string.format("JSON: %s at byte %d", msg, pos), 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r",
                t = "\t" }
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail "unterminated string" end
      if c == '"' then
        pos = pos + 1
        return table.concat(out)
      elseif c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        if ESC[e] then
          out[#out + 1] = ESC[e]
          pos = pos + 2
        elseif e == "u" then
          local hex = s:match("^%x%x%x%x", pos + 2) or fail "bad \\u escape"
          local n = tonumber(hex, 16)
          if n >= 0x80 then fail "\\u escape above 0x7f (not supported here)" end
          out[#out + 1] = string.char(n)
          pos = pos + 6
        else
          fail "bad escape"
        end
      elseif c:byte() < 0x20 then
        fail "control character in a string"
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
  end
  local function list(close, item)
    pos = pos + 1
    ws()
    if s:sub(pos, pos) == close then
      pos = pos + 1
      return
    end
    while true do
      item()
      ws()
      local d = s:sub(pos, pos)
      pos = pos + 1
      if d == close then return end
      if d ~= "," then fail("expected ',' or '" .. close .. "'") end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      list("}", function()
        ws()
        if s:sub(pos, pos) ~= '"' then fail "expected a key" end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail "expected ':'" end
        pos = pos + 1
        t[k] = value()
      end)
      return t
    elseif c == "[" then
      local t, n = {}, 0
      list("]", function()
        n = n + 1
        t[n] = value()
      end)
      return t
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then
      pos = pos + 4
      return true
    elseif s:sub(pos, pos + 4) == "false" then
      pos = pos + 5
      return false
    elseif s:sub(pos, pos + 3) == "null" then
      pos = pos + 4
      return nil
    end
    local num = s:match("^-?%d+%.?%d*", pos)
    if num then num = num .. (s:match("^[eE][-+]?%d+", pos + #num) or "") end
    if not num or not tonumber(num) then fail "unexpected character" end
    pos = pos + #num
    return tonumber(num)
  end
  local ok, v = pcall(function()
    local r = value()
    ws()
    if pos <= #s then fail "trailing bytes" end
    return r
  end)
  if not ok then return nil, v end
  return v
end

local json_decode = mini_json_decode
local have_dkjson, dkjson = pcall(require, "dkjson")
if have_dkjson and type(dkjson) == "table" and dkjson.decode then
  json_decode = function(s)
    local v, _, err = dkjson.decode(s)
    if err then return nil, err end
    return v
  end
end

---------------------------------------------------------------------------------------------
-- A strict parser for the Prometheus text exposition format 0.0.4. Returns
-- { families = { name = { type, help, samples = { { name, labels, labelkey, value } } } },
--   order = { family names in order } }, or nil, "line N: what is wrong".

local METRIC_NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL_NAME = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function parse_float(s)
  if s == "NaN" then return 0 / 0 end
  if s == "+Inf" or s == "Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if not s:match "^[-+]?%d+%.?%d*$" and not s:match "^[-+]?%d*%.%d+$"
     and not s:match "^[-+]?%d+%.?%d*[eE][-+]?%d+$" and not s:match "^[-+]?%d*%.%d+[eE][-+]?%d+$" then
    return nil
  end
  return tonumber(s)
end

-- Labels inside {...} starting at `pos` (just after "{"); returns labels, sorted key, next pos.
local function parse_labels(line, pos)
  local labels, names = {}, {}
  while true do
    local close = line:match("^%s*}()", pos)
    if close then break end
    local name, after = line:match("^%s*([^=%s]+)%s*=%s*\"()", pos)
    if not name then return nil, "expected label=\"value\"" end
    if not name:match(LABEL_NAME) then return nil, "invalid label name " .. name end
    if name:sub(1, 2) == "__" then return nil, "reserved label name " .. name end
    if labels[name] then return nil, "duplicate label " .. name end
    local out, i = {}, after
    while true do
      local c = line:sub(i, i)
      if c == "" then return nil, "unterminated label value" end
      if c == '"' then break end
      if c == "\\" then
        local e = line:sub(i + 1, i + 1)
        if e == "\\" then out[#out + 1] = "\\"
        elseif e == '"' then out[#out + 1] = '"'
        elseif e == "n" then out[#out + 1] = "\n"
        else return nil, "invalid escape \\" .. e .. " in label value" end
        i = i + 2
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
    labels[name] = table.concat(out)
    names[#names + 1] = name
    pos = i + 1
    local comma = line:match("^%s*,()", pos)
    if comma then
      pos = comma
    elseif not line:match("^%s*}", pos) then
      return nil, "expected ',' or '}' after a label"
    end
  end
  table.sort(names)
  local key = {}
  for _, n in ipairs(names) do key[#key + 1] = n .. "=" .. labels[n] end
  return labels, table.concat(key, "\0"), line:match("^%s*}()", pos)
end

local function family_of(name, families)
  if families[name] then return name end
  for _, suffix in ipairs { "_bucket", "_sum", "_count" } do
    local base = name:sub(1, #name - #suffix)
    if name:sub(-#suffix) == suffix and families[base] then
      local t = families[base].type
      if t == "histogram" or (t == "summary" and suffix ~= "_bucket") then return base end
    end
  end
  return nil
end

local function check_histogram(fname, fam)
  local series = {} -- label key without le -> { buckets = {}, sum, count }
  local order = {}
  for _, s in ipairs(fam.samples) do
    local rest = {}
    for k, v in pairs(s.labels) do if k ~= "le" then rest[#rest + 1] = k .. "=" .. v end end
    table.sort(rest)
    local key = table.concat(rest, "\0")
    local ser = series[key]
    if not ser then
      ser = { buckets = {} }
      series[key] = ser
      order[#order + 1] = key
    end
    if s.name == fname .. "_bucket" then
      if not s.labels.le then return "bucket without le" end
      local le = parse_float(s.labels.le)
      if not le then return "bucket le is not a number: " .. s.labels.le end
      ser.buckets[#ser.buckets + 1] = { le = le, count = s.value }
    elseif s.name == fname .. "_sum" then
      ser.sum = s.value
    elseif s.name == fname .. "_count" then
      ser.count = s.value
    else
      return "sample " .. s.name .. " does not belong to histogram " .. fname
    end
  end
  if #order == 0 then return "histogram without samples" end
  for _, key in ipairs(order) do
    local ser = series[key]
    local b = ser.buckets
    if #b == 0 then return "histogram series without buckets" end
    for i = 2, #b do
      if not (b[i].le > b[i - 1].le) then return "bucket bounds not increasing" end
      if b[i].count < b[i - 1].count then return "buckets not cumulative" end
    end
    if b[#b].le ~= math.huge then return "last bucket is not le=\"+Inf\"" end
    if not ser.count then return "histogram without _count" end
    if not ser.sum then return "histogram without _sum" end
    if b[#b].count ~= ser.count then
      return string.format("+Inf bucket %s differs from _count %s", b[#b].count, ser.count)
    end
  end
  return nil
end

local function parse_prometheus(text)
  if text ~= "" and text:sub(-1) ~= "\n" then return nil, "the text does not end with a newline" end
  local families, order, closed = {}, {}, {}
  local current
  local function enter(fname, n)
    if current ~= fname then
      if closed[fname] then
        return string.format("line %d: family %s appears again after another family", n, fname)
      end
      if current then closed[current] = true end
      current = fname
    end
  end
  local n = 0
  for line in text:gmatch "([^\n]*)\n" do
    n = n + 1
    local err
    if line:match "^%s*$" then
      -- blank lines are allowed
    elseif line:match "^#" then
      local kind, name, rest = line:match "^#%s+(%u+)%s+(%S+)%s*(.*)$"
      if kind == "HELP" or kind == "TYPE" then
        if not name:match(METRIC_NAME) then return nil, "line " .. n .. ": invalid name " .. name end
        local fam = families[name]
        if not fam then
          fam = { samples = {} }
          families[name] = fam
          order[#order + 1] = name
        end
        err = enter(name, n)
        if err then return nil, err end
        if #fam.samples > 0 then return nil, "line " .. n .. ": " .. kind .. " after samples of " .. name end
        if kind == "HELP" then
          if fam.help then return nil, "line " .. n .. ": second HELP for " .. name end
          if rest:gsub("\\[\\n]", ""):find("\\", 1, true) then
            return nil, "line " .. n .. ": invalid escape in HELP"
          end
          fam.help = rest
        else
          if fam.type then return nil, "line " .. n .. ": second TYPE for " .. name end
          if not TYPES[rest] then return nil, "line " .. n .. ": unknown type " .. rest end
          fam.type = rest
        end
      end -- other comments are ignored
    else
      local name, pos = line:match "^([^%s{]+)()"
      if not name or not name:match(METRIC_NAME) then
        return nil, "line " .. n .. ": invalid metric name in " .. line
      end
      local labels, key = {}, ""
      if line:sub(pos, pos) == "{" then
        labels, key, pos = parse_labels(line, pos + 1)
        if not labels then return nil, "line " .. n .. ": " .. key end
      end
      local value, ts = line:match("^[ \t]+(%S+)[ \t]*(%S*)[ \t]*$", pos)
      if not value then return nil, "line " .. n .. ": expected a value in " .. line end
      local v = parse_float(value)
      if not v then return nil, "line " .. n .. ": value is not a number: " .. value end
      if ts ~= "" and not ts:match "^-?%d+$" then
        return nil, "line " .. n .. ": timestamp is not an integer: " .. ts
      end
      local fname = family_of(name, families)
      if not fname then return nil, "line " .. n .. ": sample " .. name .. " before its TYPE" end
      local fam = families[fname]
      if not fam.type then return nil, "line " .. n .. ": no TYPE for " .. fname end
      if not fam.help then return nil, "line " .. n .. ": no HELP for " .. fname end
      err = enter(fname, n)
      if err then return nil, err end
      fam.seen = fam.seen or {}
      local id = name .. "\0" .. key
      if fam.seen[id] then return nil, "line " .. n .. ": duplicate series " .. line end
      fam.seen[id] = true
      if fam.type == "counter" and not (v >= 0) then
        return nil, "line " .. n .. ": negative or NaN counter " .. line
      end
      fam.samples[#fam.samples + 1] = { name = name, labels = labels, labelkey = key, value = v }
    end
  end
  for _, fname in ipairs(order) do
    local fam = families[fname]
    if not fam.type then return nil, "family " .. fname .. " has no TYPE" end
    if fam.type == "counter" and not fname:match "_total$" then
      return nil, "counter " .. fname .. " does not end in _total"
    end
    if fam.type == "histogram" then
      local err = check_histogram(fname, fam)
      if err then return nil, fname .. ": " .. err end
    end
  end
  return { families = families, order = order }
end

-- The value of `name` with exactly the labels `want` (a table), or nil.
local function sample(parsed, name, want)
  local fname = family_of(name, parsed.families)
  if not fname then return nil end
  for _, s in ipairs(parsed.families[fname].samples) do
    if s.name == name then
      local same = true
      for k, v in pairs(want or {}) do same = same and s.labels[k] == v end
      for k in pairs(s.labels) do same = same and (want or {})[k] ~= nil end
      if same then return s.value end
    end
  end
  return nil
end

---------------------------------------------------------------------------------------------

describe("status endpoint #integration #status", function()
  local a, b, c, d, gw
  local refused_port
  local url_a, url_b, url_d, url_refused

  lazy_setup(function()
    a, b, c, d = helpers.scgi_backend(), helpers.scgi_backend(), helpers.scgi_backend(),
                 helpers.scgi_backend()
    refused_port = helpers.free_port()
    -- members written without a path, as in scgi-lua(8) "Balancers"; they are keyed by that URL
    url_a = "scgi://127.0.0.1:" .. a.port
    url_b = "scgi://127.0.0.1:" .. b.port
    url_d = "scgi://127.0.0.1:" .. d.port
    url_refused = "scgi://127.0.0.1:" .. refused_port
    gw = helpers.start_gateway {
      access_log = false,
      status = { path = "/status", allow = { "127.0.0.1" } },
      balancers = {
        pool = { members = { url_a, url_b } },
        flaky = { members = { { url = url_refused, retry = 30 }, url_d } },
      },
      routes = {
        { path = "/direct/", pass = c.url },
        { path = "/pool/", pass = "balancer://pool/" },
        { path = "/flaky/", pass = "balancer://flaky/" },
        { path = "/refused/", pass = url_refused .. "/" },
        { path = "/shared/", pass = c.url },
      },
    }
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    for _, be in ipairs { a, b, c, d } do be:stop() end
  end)

  local function get(path)
    return assert(gw:request { path = path, timeout = 5 })
  end

  local function status_json()
    local res = get "/status"
    assert.equal(200, res.status, res.body)
    assert.matches("^application/json", res.headers["content-type"])
    local doc, err = json_decode(res.body)
    assert.is_table(doc, "not JSON (" .. tostring(err) .. "):\n" .. res.body)
    return doc, res
  end

  local function prometheus()
    local res = get "/status?format=prometheus"
    assert.equal(200, res.status, res.body)
    assert.matches("^text/plain; version=0%.0%.4", res.headers["content-type"])
    local parsed, err = parse_prometheus(res.body)
    assert.truthy(parsed, "invalid Prometheus text: " .. tostring(err) .. "\n" .. res.body)
    return parsed, res.body
  end

  -- A backend entry keyed by its URL: exactly `url`, or (for a route's pass URL, which has a
  -- path) the same URL without its trailing slash.
  local function by_url(t, url)
    assert.is_table(t)
    local e = t[url] or t[(url:gsub("/$", ""))]
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    assert.is_table(e, "no entry for " .. url .. " (keys: " .. table.concat(keys, ", ") .. ")")
    return e
  end

  -- A route's direct backend: the route names it by URL, and its one entry under `backends`
  -- (one per backend URL, whichever routes share it) lists the route.
  local function direct_backend(doc, index, url)
    assert.is_table(doc.routes)
    local r = doc.routes[index]
    assert.is_table(r, "no routes[" .. index .. "]")
    assert.equal(index, r.index)
    assert.is_string(r.backend)
    assert.equal((url:gsub("/$", "")), (r.backend:gsub("/$", "")))
    local e = by_url(doc.backends, url)
    assert.is_table(e.routes)
    local listed = false
    for _, i in ipairs(e.routes) do listed = listed or i == index end
    assert.is_true(listed, "backends[" .. url .. "].routes does not list route " .. index)
    return e
  end

  local function check_backend_fields(e)
    for _, k in ipairs { "busy", "requests", "failures", "bytes_to", "bytes_from" } do
      assert.is_number(e[k], k)
      assert.is_true(e[k] >= 0 and e[k] == math.floor(e[k]), k .. " = " .. tostring(e[k]))
    end
    assert.is_string(e.state)
  end

  it("answers JSON by default with uptime, generation and requests by class", function()
    local doc = status_json()
    assert.is_string(doc.version)
    assert.is_number(doc.uptime_seconds)
    assert.is_true(doc.uptime_seconds >= 0)
    assert.equal(1, doc.generation)
    assert.is_table(doc.requests)
    for _, class in ipairs { "1xx", "2xx", "3xx", "4xx", "5xx" } do
      assert.is_number(doc.requests[class], class)
    end
    assert.is_number(doc.requests.total)
    assert.is_table(doc.connections)
    assert.is_true(doc.connections.open >= 1, "this request's connection is open")
    -- the spec's own decoder reads the same document as dkjson
    local res0 = get "/status"
    assert.same(json_decode(res0.body), (mini_json_decode(res0.body)))
    -- ?format=json is the same document
    local res = get "/status?format=json"
    assert.equal(200, res.status)
    assert.matches("^application/json", res.headers["content-type"])
    assert.is_table(json_decode(res.body))
  end)

  it("request counters by class grow with the traffic", function()
    local s1 = status_json()
    for _ = 1, 3 do assert.equal(200, get("/direct/x").status) end
    for _ = 1, 2 do assert.equal(404, get("/nowhere").status) end
    assert.equal(503, get("/refused/x").status)
    local s2 = status_json()
    local function grew(class) return s2.requests[class] - s1.requests[class] end
    -- the first status request itself may be counted in between, or not yet
    assert.is_true(grew "2xx" >= 3 and grew "2xx" <= 4, "2xx grew by " .. grew "2xx")
    assert.equal(2, grew "4xx")
    assert.equal(1, grew "5xx")
    assert.is_true(s2.requests.total - s1.requests.total >= 6)
    assert.is_true(s2.uptime_seconds >= s1.uptime_seconds)
    assert.equal(s1.generation, s2.generation)
  end)

  it("shows balancer members keyed by URL with busy/requests/failures/bytes and state", function()
    local before = status_json()
    local pool = before.balancers and before.balancers.pool
    assert.is_table(pool, "no balancers.pool")
    assert.equal("byrequests", pool.method)
    local a0, b0 = by_url(pool.members, url_a), by_url(pool.members, url_b)
    for _ = 1, 4 do assert.equal(200, get("/pool/x").status) end
    local after = status_json().balancers.pool.members
    local a1, b1 = by_url(after, url_a), by_url(after, url_b)
    for _, e in ipairs { a1, b1 } do
      check_backend_fields(e)
      assert.equal("ok", e.state)
      assert.equal(0, e.busy)
      assert.equal(0, e.failures)
    end
    -- byrequests with equal weights: two each
    assert.equal(2, a1.requests - a0.requests)
    assert.equal(2, b1.requests - b0.requests)
    assert.is_true(a1.bytes_to > a0.bytes_to and a1.bytes_from > a0.bytes_from)
    assert.is_true(b1.bytes_to > b0.bytes_to and b1.bytes_from > b0.bytes_from)
  end)

  it("shows a route's direct backend under that route", function()
    local before = direct_backend(status_json(), 1, c.url)
    for _ = 1, 2 do assert.equal(200, get("/direct/y").status) end
    local doc = status_json()
    local e = direct_backend(doc, 1, c.url)
    check_backend_fields(e)
    assert.equal("ok", e.state)
    assert.equal(2, e.requests - before.requests)
    assert.is_true(e.bytes_to > before.bytes_to and e.bytes_from > before.bytes_from)
    assert.equal("/direct/", doc.routes[1].path)
    -- a balancer route names its balancer instead
    assert.equal("pool", doc.routes[2].balancer)
  end)

  it("one row per direct backend URL, naming every route that passes to it", function()
    -- routes 1 and 5 pass to the same backend: its counters are the backend's, shown once
    local before = status_json()
    local e0 = direct_backend(before, 1, c.url)
    for _ = 1, 3 do assert.equal(200, get("/direct/shared").status) end
    local doc = status_json()
    local e = direct_backend(doc, 5, c.url)
    assert.same(e, direct_backend(doc, 1, c.url))
    assert.same({ 1, 5 }, e.routes)
    assert.equal(3, e.requests - e0.requests)
    local n = 0
    for url in pairs(doc.backends) do
      if url:gsub("/$", "") == c.url:gsub("/$", "") then n = n + 1 end
    end
    assert.equal(1, n, "the shared backend is listed more than once")
    -- Prometheus: one series per backend, labelled by its URL alone, with the same count
    local parsed, text = prometheus()
    local count = 0
    for line in text:gmatch "[^\n]+" do
      if line:find("scgi_lua_member_requests_total{", 1, true) and line:find(c.url, 1, true) then
        count = count + 1
      end
    end
    assert.equal(1, count, text)
    assert.equal(e.requests, sample(parsed, "scgi_lua_member_requests_total", { member = c.url }))
    -- which backend each route uses is in scgi_lua_route_info
    assert.equal(1, sample(parsed, "scgi_lua_route_info",
                           { route = "5", path = "/shared/", member = c.url }))
    assert.equal(1, sample(parsed, "scgi_lua_route_info",
                           { route = "2", path = "/pool/", balancer = "pool" }))
    -- HTML: one row for the backend, naming both routes
    local html = get("/status?format=html").body
    local rows = 0
    for row in html:gmatch "<tr>(.-)</tr>" do
      if row:find(c.url, 1, true) then
        rows = rows + 1
        assert.truthy(row:find("/direct/", 1, true) and row:find("/shared/", 1, true), row)
      end
    end
    assert.equal(1, rows, html)
  end)

  it("a member that refuses connections shows failures and last_error", function()
    for _ = 1, 2 do
      local res = get "/flaky/x"
      assert.equal(200, res.status, res.body) -- failover to the other member
    end
    local doc = status_json()
    local members = doc.balancers.flaky.members
    local bad = by_url(members, url_refused)
    check_backend_fields(bad)
    assert.is_true(bad.failures >= 1, "failures = " .. tostring(bad.failures))
    assert.is_string(bad.last_error)
    assert.matches("[Rr]efused", bad.last_error)
    assert.equal("error", bad.state)
    local good = by_url(members, url_d)
    assert.equal(2, good.requests)
    assert.equal(0, good.failures)
    assert.equal("ok", good.state)

    -- a route's direct backend too
    assert.equal(503, get("/refused/z").status)
    local e = direct_backend(status_json(), 4, url_refused .. "/")
    assert.is_true(e.failures >= 1)
    assert.matches("[Rr]efused", e.last_error)

    -- and the same in Prometheus form
    local parsed = prometheus()
    local f = sample(parsed, "scgi_lua_member_failures_total",
                     { balancer = "flaky", member = url_refused })
    assert.truthy(f, "no failures sample for " .. url_refused)
    assert.equal(bad.failures, f)
    assert.equal(0, sample(parsed, "scgi_lua_member_up", { balancer = "flaky", member = url_refused }))
  end)

  it("?format=prometheus is valid text format 0.0.4", function()
    for _ = 1, 2 do get "/pool/p" end
    local parsed, text = prometheus()
    local fams = parsed.families
    assert.is_true(#parsed.order >= 5, text)
    for _, fname in ipairs(parsed.order) do
      assert.matches("^scgi_lua_", fname)
      assert.truthy(fams[fname].help, "HELP for " .. fname)
    end
    assert.equal("gauge", fams.scgi_lua_uptime_seconds and fams.scgi_lua_uptime_seconds.type)
    assert.is_number(sample(parsed, "scgi_lua_uptime_seconds"))
    assert.equal(1, sample(parsed, "scgi_lua_config_generation"))
    local reqs = fams.scgi_lua_requests_total
    assert.equal("counter", reqs and reqs.type)
    for _, class in ipairs { "1xx", "2xx", "3xx", "4xx", "5xx" } do
      assert.is_number(sample(parsed, "scgi_lua_requests_total", { class = class }), class)
    end
    assert.is_true(sample(parsed, "scgi_lua_requests_total", { class = "2xx" }) >= 2)
    -- at least one histogram, with requests in it
    local hist
    for _, fname in ipairs(parsed.order) do
      if fams[fname].type == "histogram" then hist = fname end
    end
    assert.truthy(hist, "no histogram family")
    assert.is_true(sample(parsed, hist .. "_count") >= 2)
    -- members labelled with their URL, agreeing with the JSON
    local json = status_json().balancers.pool.members
    local reqs_a = sample(parsed, "scgi_lua_member_requests_total", { balancer = "pool", member = url_a })
    assert.truthy(reqs_a, "no requests sample for " .. url_a .. "\n" .. text)
    assert.equal(by_url(json, url_a).requests, reqs_a)
    assert.equal(1, sample(parsed, "scgi_lua_member_up", { balancer = "pool", member = url_b }))
  end)

  it("the test's Prometheus parser is strict", function()
    local good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 1\n"
    assert.truthy(parse_prometheus(good))
    local bad = {
      ["no TYPE"] = "# HELP x_total X.\nx_total 1\n",
      ["no HELP"] = "# TYPE x_total counter\nx_total 1\n",
      ["TYPE twice"] = "# HELP x_total X.\n# TYPE x_total counter\n# TYPE x_total counter\nx_total 1\n",
      ["TYPE after samples"] = "# HELP x X.\n# TYPE x gauge\nx 1\n# TYPE x gauge\n",
      ["counter without _total"] = "# HELP x X.\n# TYPE x counter\nx 1\n",
      ["bad escape"] = "# HELP x X.\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",
      ["bad label name"] = "# HELP x X.\n# TYPE x gauge\nx{1a=\"b\"} 1\n",
      ["bad value"] = "# HELP x X.\n# TYPE x gauge\nx one\n",
      ["bad metric name"] = "# HELP x X.\n# TYPE x gauge\nx-y 1\n",
      ["split family"] = "# HELP x X.\n# TYPE x gauge\nx 1\n# HELP y Y.\n# TYPE y gauge\ny 1\n"
                         .. "x{a=\"b\"} 2\n",
      ["duplicate series"] = "# HELP x X.\n# TYPE x gauge\nx{a=\"b\"} 1\nx{a=\"b\"} 2\n",
      ["buckets not cumulative"] = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 3\n"
                                   .. "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
      ["no +Inf bucket"] = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
      ["+Inf differs from _count"] = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n"
                                     .. "h_sum 1\nh_count 3\n",
      ["no final newline"] = "# HELP x X.\n# TYPE x gauge\nx 1",
    }
    for what, text in pairs(bad) do
      assert.is_nil(parse_prometheus(text), "accepted: " .. what)
    end
  end)

  it("?format=html is an HTML page naming the backends", function()
    local res = get "/status?format=html"
    assert.equal(200, res.status)
    assert.matches("^text/html", res.headers["content-type"])
    assert.matches("^<!DOCTYPE html>", res.body)
    assert.matches("</html>%s*$", res.body)
    assert.truthy(res.body:find(url_a, 1, true), "member URL missing")
    assert.truthy(res.body:find(url_refused, 1, true), "member URL missing")
  end)

  it("an unknown ?format= is a 400", function()
    assert.equal(400, get("/status?format=bogus").status)
    assert.equal(400, get("/status?format=").status)
  end)

  describe("a client outside status.allow", function()
    local gw2
    lazy_setup(function()
      gw2 = helpers.start_gateway {
        access_log = false,
        status = { path = "/status", allow = { "10.0.0.0/8" } },
        routes = { { path = "/", pass = c.url } },
      }
    end)
    lazy_teardown(function() if gw2 then gw2:stop() end end)

    it("gets 403 and a log line; other paths still work", function()
      local mark = gw2:log_mark()
      local res = assert(gw2:request { path = "/status", timeout = 5 })
      assert.equal(403, res.status)
      assert.not_matches('"uptime', res.body)
      local log = gw2:wait_log("status[^\n]*403", 3, { from = mark })
      assert.truthy(log, "no log line for the refused status request:\n" .. gw2:log())
      assert.matches("127%.0%.0%.1", log)
      assert.matches("403", log)
      res = assert(gw2:request { path = "/status?format=prometheus", timeout = 5 })
      assert.equal(403, res.status)
      -- the status path is the gateway's, the rest goes to the backend as usual
      res = assert(gw2:request { path = "/other", timeout = 5 })
      assert.equal(200, res.status)
    end)
  end)
end)
