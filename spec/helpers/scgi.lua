-- SCGI wire format for the specs: netstring framing, header block encode/decode.
-- Used by the fake backend (spec/helpers/scgi_backend.lua) to decode what the gateway sends,
-- and by specs that speak SCGI to the fake backend directly. Pure Lua, no I/O.

local _M = {}

--- Frame `payload` as a netstring.
function _M.netstring(payload)
  return #payload .. ":" .. payload .. ","
end

--- Encode an SCGI request head. `vars` is a list of { name, value } pairs (kept in order).
-- CONTENT_LENGTH and SCGI are NOT added: pass them yourself to control the order.
function _M.encode(vars)
  local parts = {}
  for _, kv in ipairs(vars) do
    parts[#parts + 1] = kv[1] .. "\0" .. kv[2] .. "\0"
  end
  return _M.netstring(table.concat(parts))
end

--- Decode the payload of a netstring into names (ordered) and env (map; last value wins).
-- Returns names, env, or nil, err.
function _M.decode_pairs(payload)
  local names, env = {}, {}
  if payload == "" then return names, env end
  if payload:sub(-1) ~= "\0" then return nil, "header block does not end with NUL" end
  local pos = 1
  while pos <= #payload do
    local z1 = payload:find("\0", pos, true)
    local z2 = z1 and payload:find("\0", z1 + 1, true)
    if not z2 then return nil, "odd number of NUL-terminated strings" end
    local name = payload:sub(pos, z1 - 1)
    if name == "" then return nil, "empty variable name at offset " .. (pos - 1) end
    names[#names + 1] = name
    env[name] = payload:sub(z1 + 1, z2 - 1)
    pos = z2 + 1
  end
  return names, env
end

--- Incremental netstring reader state: feed bytes, learn when the head is complete.
-- Returns: "more" (need more bytes), or "done", payload, raw, rest, or "error", message.
function _M.parse_head(buf)
  local colon = buf:find(":", 1, true)
  if not colon then
    if #buf > 10 or buf:find "[^0-9]" then return "error", "bad netstring length prefix" end
    return "more"
  end
  local digits = buf:sub(1, colon - 1)
  if not digits:match "^[0-9]+$" or #digits > 10 then
    return "error", "bad netstring length prefix " .. string.format("%q", digits)
  end
  if #digits > 1 and digits:sub(1, 1) == "0" then
    return "error", "netstring length with leading zero"
  end
  local len = tonumber(digits)
  local need = colon + len + 1
  if #buf < need then return "more" end
  if buf:sub(need, need) ~= "," then return "error", "netstring not terminated by ','" end
  return "done", buf:sub(colon + 1, colon + len), buf:sub(1, need), buf:sub(need + 1)
end

return _M
