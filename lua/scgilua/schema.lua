-- scgilua.schema: a small declarative checker for configuration tables.
-- A validator checks one value, returns its normalised form, and records every problem it finds
-- as "<dotted.path>: <message>" in a context; it never raises on user input, so all errors of a
-- file are reported together. It knows nothing about scgi-lua: the field lists, defaults and the
-- address/URL rules live in scgilua.config. Pure Lua, no ffi: runs under a stock luajit.

local type, next, ipairs, tostring = type, next, ipairs, tostring
local setmetatable = setmetatable
local floor, huge, min = math.floor, math.huge, math.min
local fmt, find, sub, gsub, lower, byte = string.format, string.find, string.sub, string.gsub,
  string.lower, string.byte
local concat, sort = table.concat, table.sort

local _M = { _VERSION = "0.1.0" }

local MAX_SHOWN = 60 -- longer strings are cut in messages

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

--- `s` in double quotes, escaped, cut to a readable length.
function _M.quote(s)
  local cut = #s > MAX_SHOWN
  if cut then
    s = sub(s, 1, MAX_SHOWN - 3)
  end
  s = gsub(s, '[%c"\\]', function(c)
    return ESCAPES[c] or fmt("\\%d", byte(c))
  end)
  return '"' .. s .. (cut and '..."' or '"')
end
local quote = _M.quote

--- How a value is shown after "got": `"2x" (string)`, `0 (number)`, `true (boolean)`, `nil`,
--- `a table`, `a function`.
function _M.repr(v)
  local t = type(v)
  if t == "string" then
    return quote(v) .. " (string)"
  elseif t == "number" or t == "boolean" then
    return tostring(v) .. " (" .. t .. ")"
  elseif t == "nil" then
    return "nil"
  end
  return "a " .. t
end
local repr = _M.repr

--- The path of `key` inside `path`: `a.b`, `a[2]`, `a["not-an-identifier"]`.
function _M.join(path, key)
  local t = type(key)
  if t == "string" and find(key, "^[%a_][%w_]*$") then
    return path == "" and key or path .. "." .. key
  elseif t == "string" then
    return path .. "[" .. quote(key) .. "]"
  elseif t == "number" or t == "boolean" then
    return path .. "[" .. tostring(key) .. "]"
  end
  return path .. "[" .. t .. "]"
end
local join = _M.join

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

--- Orders mixed keys deterministically: numbers, then strings, then the rest.
function _M.key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9)
  elseif ta == "number" or ta == "string" then
    return a < b
  end
  return tostring(a) < tostring(b)
end
local key_less = _M.key_less

--- Edit distance (optimal string alignment: insert, delete, substitute, swap neighbours).
function _M.distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do
    d[i] = { [0] = i }
  end
  for j = 1, lb do
    d[0][j] = j
  end
  for i = 1, la do
    local ca = byte(a, i)
    for j = 1, lb do
      local cb = byte(b, j)
      local cost = ca == cb and 0 or 1
      local v = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and ca == byte(b, j - 1) and byte(a, i - 1) == cb then
        v = min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

--- The closest of `candidates` to `word` within 2 edits (case-insensitive), or nil.
--- Ties go to the earliest candidate; a word is never "corrected" into a completely different one.
function _M.suggest(word, candidates)
  if type(word) ~= "string" then
    return nil
  end
  local best, best_d = nil, 3
  local lw = lower(word)
  for _, c in ipairs(candidates) do
    local d = _M.distance(lw, lower(c))
    if d < best_d and d < #word then
      best, best_d = c, d
    end
  end
  return best
end

local function did_you_mean(word, candidates)
  local s = _M.suggest(word, candidates)
  return s and fmt(' (did you mean "%s"?)', s) or ""
end
_M.did_you_mean = did_you_mean

-- Context: where errors are collected. Validators may also keep shared facts in it.

local Context = {}
Context.__index = Context

function _M.context()
  return setmetatable({ errs = {} }, Context)
end

function Context:err(path, msg)
  self.errs[#self.errs + 1] = path == "" and msg or path .. ": " .. msg
end

function Context:expected(path, what, v, extra)
  self:err(path, "expected " .. what .. ", got " .. repr(v) .. (extra or ""))
end

-- Validators. Each is a table { type = <Lua type it accepts>, what = <description>,
-- default = <value used when absent>, required = <bool>, check = function(v, path, cx, what) }.
-- check() is only called with a non-nil value; it returns the normalised value, or nil after
-- recording an error. `what` lets a one_of() report its combined description instead.

-- Calling a validator with { default = , required = } gives a copy with those options, so one
-- definition serves several fields: `url_path { default = "/" }`.
local Validator = {}
Validator.__index = Validator

function Validator.__call(self, o)
  local copy = setmetatable({}, Validator)
  for k, v in next, self do
    copy[k] = v
  end
  copy.default, copy.required = o.default, o.required
  return copy
end

local function validator(o, vtype, what, check)
  return setmetatable({ type = vtype, what = o.what or what, default = o.default,
                        required = o.required, check = check }, Validator)
end

local function finite(v)
  return v == v and v > -huge and v < huge
end

-- Integers beyond 2^53 are not exact in a double, and C would overflow converting them.
local MAX_INTEGER = 2 ^ 53

local function is_integer(v)
  return type(v) == "number" and v == floor(v) and v >= -MAX_INTEGER and v <= MAX_INTEGER
end
_M.is_integer = is_integer

-- A validator whose value passes as it is when ok(v) holds.
local function checked(o, vtype, what, ok)
  local self
  self = validator(o, vtype, what, function(v, path, cx, w)
    if not ok(v) then
      return cx:expected(path, w or self.what, v)
    end
    return v
  end)
  return self
end

--- An integer, optionally within { min = , max = }.
function _M.integer(o)
  local lo, hi = o.min, o.max
  local what = lo and hi and fmt("an integer between %d and %d", lo, hi)
    or lo and fmt("an integer >= %d", lo)
    or hi and fmt("an integer <= %d", hi)
    or "an integer"
  return checked(o, "number", what, function(v)
    return is_integer(v) and not (lo and v < lo) and not (hi and v > hi)
  end)
end

--- A finite number; { gt = x } (strictly greater) or { min = x }.
function _M.number(o)
  local gt, lo = o.gt, o.min
  local what = gt == 0 and "a positive number"
    or gt and fmt("a number > %s", tostring(gt))
    or lo and fmt("a number >= %s", tostring(lo))
    or "a number"
  return checked(o, "number", what, function(v)
    return type(v) == "number" and finite(v) and not (gt and v <= gt) and not (lo and v < lo)
  end)
end

--- A string without NUL bytes. { match = <pattern it must match>,
--- convert = function(v, cx) -> value | nil, message } (a nil message means "expected <what>").
function _M.string(o)
  local pattern, convert = o.match, o.convert
  local self
  self = validator(o, "string", "a string", function(v, path, cx, w)
    if type(v) ~= "string" or find(v, "%z") or (pattern and not find(v, pattern)) then
      return cx:expected(path, w or self.what, v)
    end
    if convert then
      local out, msg = convert(v, cx)
      if out == nil then
        if msg then
          return cx:err(path, msg)
        end
        return cx:expected(path, w or self.what, v)
      end
      return out
    end
    return v
  end)
  return self
end

function _M.boolean(o)
  return checked(o, "boolean", "a boolean", function(v) return type(v) == "boolean" end)
end

function _M.func(o)
  return checked(o, "function", "a function", function(v) return type(v) == "function" end)
end

--- A fixed value of any type (e.g. `false`), mapped to { to = ... } if given.
function _M.literal(o)
  local value, to = o[1], o.to
  if to == nil then
    to = value
  end
  local what = o.what or (type(value) == "string" and quote(value) or tostring(value))
  local self
  self = validator(o, type(value), what, function(v, path, cx, w)
    if v ~= value then
      return cx:expected(path, w or self.what, v)
    end
    return to
  end)
  self.literal, self.value = true, value
  return self
end

--- One of the listed strings: { "a", "b", default = "a" }.
function _M.enum(o)
  local set, shown = {}, {}
  for i, v in ipairs(o) do
    set[v] = true
    shown[i] = quote(v)
  end
  local self
  self = validator(o, "string", "one of " .. concat(shown, ", "), function(v, path, cx, w)
    if type(v) ~= "string" or not set[v] then
      return cx:expected(path, w or self.what, v, did_you_mean(v, o))
    end
    return v
  end)
  return self
end

--- The first alternative that accepts the value's Lua type decides: { alt1, alt2, ... };
--- a literal alternative only accepts its own value.
function _M.one_of(o)
  local whats = {}
  for i, alt in ipairs(o) do
    whats[i] = alt.what
  end
  local what = #whats > 1 and concat(whats, ", ", 1, #whats - 1) .. " or " .. whats[#whats]
    or whats[1]
  local self
  self = validator(o, "any", what, function(v, path, cx, w)
    local t = type(v)
    for _, alt in ipairs(o) do
      if alt.type == t and (not alt.literal or alt.value == v) then
        return alt.check(v, path, cx, w or self.what)
      end
    end
    return cx:expected(path, w or self.what, v)
  end)
  return self
end

--- Checks that `v` is a sequence; reports stray keys and holes. Returns its length.
local function sequence_length(v, path, cx)
  local n, stray = 0, {}
  for k in next, v do
    if is_integer(k) and k >= 1 then
      if k > n then
        n = k
      end
    else
      stray[#stray + 1] = k
    end
  end
  sort(stray, key_less)
  for _, k in ipairs(stray) do
    cx:err(join(path, k), "unexpected key in a list")
  end
  for i = 1, n do
    if v[i] == nil then
      cx:err(join(path, i), "missing list element (a list cannot have holes)")
    end
  end
  return n
end

--- A list: { of = <element validator>, min = <count>, single = <accept one bare element> }.
--- The result always is a fresh list; a bare element (single) becomes a list of one, and its
--- errors carry the list's own path.
function _M.list(o)
  local of, least = o.of, o.min or 0
  local self
  self = validator(o, "table", "a list", function(v, path, cx, w)
    if o.single and type(v) == of.type and type(v) ~= "table" then
      local x = of.check(v, path, cx)
      return x ~= nil and { x } or nil
    end
    if type(v) ~= "table" then
      return cx:expected(path, w or self.what, v)
    end
    local n = sequence_length(v, path, cx)
    if n < least then
      return cx:err(path, fmt("expected %s, got %s", w or self.what, n == 0 and "an empty table"
        or fmt("a list of %d element%s", n, n == 1 and "" or "s")))
    end
    local out = {}
    for i = 1, n do
      if v[i] ~= nil then
        out[i] = of.check(v[i], join(path, i), cx)
      end
    end
    return out
  end)
  return self
end

--- A table with chosen string keys: { key = <validator of the key>, of = <value validator> }.
--- Keys are walked in sorted order; the result maps the (valid) keys to normalised values.
function _M.map(o)
  local key, of = o.key, o.of
  local self
  self = validator(o, "table", "a table", function(v, path, cx, w)
    if type(v) ~= "table" then
      return cx:expected(path, w or self.what, v)
    end
    local keys = {}
    for k in next, v do
      keys[#keys + 1] = k
    end
    sort(keys, key_less)
    local out = {}
    for _, k in ipairs(keys) do
      local kpath = join(path, k)
      if key.check(k, kpath, cx) ~= nil then
        out[k] = of.check(v[k], kpath, cx)
      end
    end
    return out
  end)
  return self
end

--- A table with known fields, walked in the declared order:
---   s.record { { name = validator }, { other = validator }, post = function(out, v, path, cx) }
--- Absent fields take the validator's default (normalised like a given value), required ones
--- are reported, unknown keys are reported (sorted) with a suggestion, then `post` runs.
function _M.record(o)
  local fields, names, known = {}, {}, {}
  for i, f in ipairs(o) do
    local name, val = next(f)
    fields[i] = { name, val }
    names[i] = name
    known[name] = true
  end
  local self
  self = validator(o, "table", "a table", function(v, path, cx, w)
    if type(v) ~= "table" then
      return cx:expected(path, w or self.what, v)
    end
    local out = {}
    for _, f in ipairs(fields) do
      local name, val = f[1], f[2]
      local x = v[name]
      if x == nil then
        x = val.default
      end
      if x ~= nil then
        out[name] = val.check(x, join(path, name), cx)
      elseif val.required then
        cx:err(join(path, name), "required field missing")
      end
    end
    local unknown = {}
    for k in next, v do
      if not known[k] then
        unknown[#unknown + 1] = k
      end
    end
    sort(unknown, key_less)
    for _, k in ipairs(unknown) do
      cx:err(join(path, k), "unknown field" .. did_you_mean(k, names))
    end
    if o.post then
      o.post(out, v, path, cx)
    end
    return out
  end)
  self.fields = names
  return self
end

--- A validator from a plain function: { type = , what = , check = function(v, path, cx, w) }.
function _M.custom(o)
  return validator(o, o.type or "any", o.what or "a value", o.check)
end

return _M
