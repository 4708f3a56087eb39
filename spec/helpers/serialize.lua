-- Serialise plain Lua values (nil, booleans, numbers, strings, tables of those) as Lua source.
-- Used to write gateway configs given as tables and the fake backend's request records.
-- Functions cannot be serialised: give configs with hooks as source strings.

local _M = {}

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat
  return then true until while]]):gmatch "%a+" do
  keywords[w] = true
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  return a < b
end

local function ser(v, indent, seen)
  local t = type(v)
  if t == "string" then
    return string.format("%q", v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot serialise number " .. v) end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  elseif t == "boolean" or t == "nil" then
    return tostring(v)
  elseif t == "table" then
    if seen[v] then error("cannot serialise a table with cycles") end
    seen[v] = true
    local inner = indent .. "  "
    local parts = {}
    local n = #v
    for i = 1, n do parts[#parts + 1] = inner .. ser(v[i], inner, seen) end
    local keys = {}
    for k in pairs(v) do
      if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then
        keys[#keys + 1] = k
      end
    end
    table.sort(keys, key_order)
    for _, k in ipairs(keys) do
      local ks
      if type(k) == "string" and k:match "^[%a_][%w_]*$" and not keywords[k] then
        ks = k
      else
        ks = "[" .. ser(k, inner, seen) .. "]"
      end
      parts[#parts + 1] = inner .. ks .. " = " .. ser(v[k], inner, seen)
    end
    seen[v] = nil
    if #parts == 0 then return "{}" end
    return "{\n" .. table.concat(parts, ",\n") .. ",\n" .. indent .. "}"
  else
    error("cannot serialise a " .. t .. " (functions must be given in a config source string)")
  end
end

--- Lua source for value `v` (an expression).
function _M.value(v)
  return ser(v, "", {})
end

--- Lua chunk source "return <v>\n".
function _M.chunk(v)
  return "return " .. ser(v, "", {}) .. "\n"
end

--- Load a chunk written by _M.chunk from `path` in an empty environment.
function _M.load_file(path)
  local f, err = loadfile(path)
  if not f then return nil, err end
  setfenv(f, {})
  local ok, v = pcall(f)
  if not ok then return nil, v end
  return v
end

return _M
