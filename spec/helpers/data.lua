-- Deterministic test data shared by the specs and the fake backend process.

local _M = {}

--- String of `n` pseudo-random bytes (deterministic for a seed; every byte value occurs).
-- Built from a 4 KiB block rotated by a different amount per block, so a lost, duplicated or
-- reordered block changes the result.
function _M.blob(n, seed)
  local x = seed or 1
  local piece = {}
  for i = 1, 4096 do
    x = (x * 1103515245 + 12345) % 2147483648
    piece[i] = string.char(math.floor(x / 65536) % 256)
  end
  local p = table.concat(piece)
  local parts = {}
  for i = 1, math.ceil(n / #p) do
    local r = (i * 37) % #p
    parts[i] = p:sub(r + 1) .. p:sub(1, r)
  end
  return table.concat(parts):sub(1, n)
end

return _M
