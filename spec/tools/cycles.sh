#!/bin/sh
# Lists include cycles among the core modules and exits 1 if there is any (0: none, 2: usage).
#   spec/tools/cycles.sh [-v] [DIR]      (default: core; -v also prints every dependency)
# A module is x.c with x.h. A file of module x that includes "y.h" makes x depend on y. A
# header with no .c of its own (request.h) belongs to the .c files that define
# the functions it declares, so including it depends on each of them; a header that declares
# no function defined in a .c (types only) is a module of its own. Only "..." includes of
# files inside DIR count. Each cycle is printed with the includes that close it.
# Needs luajit (installed by `make deps`).
set -u
cd "$(dirname "$0")/../.." || exit 2
verbose=0
if [ "${1:-}" = "-v" ]; then verbose=1; shift; fi
dir=${1:-core}
[ -d "$dir" ] || { echo "cycles.sh: no directory $dir" >&2; exit 2; }
exec luajit - "$dir" "$verbose" <<'LUA'
local dir, verbose = arg[1], arg[2] == "1"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read "*a"
  f:close()
  -- comments out (a prototype inside a comment declares nothing), line breaks kept
  s = s:gsub("/%*.-%*/", function(c) return (c:gsub("[^\n]", "")) end)
  s = s:gsub("//[^\n]*", "")
  return s
end

local files = {}
local p = io.popen("ls " .. dir .. "/*.c " .. dir .. "/*.h 2>/dev/null")
for name in p:lines() do files[#files + 1] = name:match "[^/]+$" end
p:close()
-- .c files first, so that an edge is explained by the include in the source when there is one
table.sort(files, function(a, b)
  local ca, cb = a:match "%.c$" ~= nil, b:match "%.c$" ~= nil
  if ca ~= cb then return ca end
  return a < b
end)
local text, exists = {}, {}
for _, f in ipairs(files) do
  text[f] = read(dir .. "/" .. f) or ""
  exists[f] = true
end

-- functions defined at file scope in each .c: `type name(...) {` from column 0 (not static)
local defined_in = {}
for _, f in ipairs(files) do
  if f:match "%.c$" then
    for head in ("\n" .. text[f]):gmatch "\n([%a_][^\n;{}=()#]*)%b()%s*{" do
      local name = head:match "([%a_][%w_]*)%s*$"
      if name and not head:match "^static%f[%W]" then defined_in[name] = defined_in[name] or f end
    end
  end
end

-- the modules a header stands for, and why
local owners_cache = {}
local function owners(h)
  if owners_cache[h] then return owners_cache[h] end
  local base = h:gsub("%.h$", "")
  local res = {}
  if exists[base .. ".c"] then
    res[1] = { mod = base, why = "" }
  else
    local seen = {}
    for name in text[h]:gmatch "([%a_][%w_]*)%s*%(" do
      local c = defined_in[name]
      if c and not seen[c] then
        seen[c] = true
        res[#res + 1] = { mod = c:gsub("%.c$", ""), why = ", which declares " .. name .. " (" .. c .. ")" }
      end
    end
    if #res == 0 then res[1] = { mod = h, why = "" } end
  end
  owners_cache[h] = res
  return res
end

local function module_of(f)
  if f:match "%.c$" then return { { mod = (f:gsub("%.c$", "")) } } end
  return owners(f)
end

-- edges[a][b] = evidence
local edges, nodes, order = {}, {}, {}
local function node(m)
  if not nodes[m] then nodes[m] = true; order[#order + 1] = m; edges[m] = {} end
end
for _, f in ipairs(files) do
  for _, from in ipairs(module_of(f)) do
    node(from.mod)
    for inc in text[f]:gmatch '#%s*include%s*"([^"]+)"' do
      if exists[inc] then
        for _, to in ipairs(owners(inc)) do
          node(to.mod)
          if to.mod ~= from.mod and not edges[from.mod][to.mod] then
            edges[from.mod][to.mod] = dir .. "/" .. f .. " includes " .. inc .. to.why
          end
        end
      end
    end
  end
end

-- strongly connected components (Tarjan)
local index, low, onstack, stack, sccs, n = {}, {}, {}, {}, {}, 0
local function succ(v)
  local t = {}
  for w in pairs(edges[v]) do t[#t + 1] = w end
  table.sort(t)
  return t
end
local function strong(v)
  n = n + 1
  index[v], low[v] = n, n
  stack[#stack + 1] = v
  onstack[v] = true
  for _, w in ipairs(succ(v)) do
    if not index[w] then
      strong(w)
      low[v] = math.min(low[v], low[w])
    elseif onstack[w] then
      low[v] = math.min(low[v], index[w])
    end
  end
  if low[v] == index[v] then
    local comp = {}
    repeat
      local w = table.remove(stack)
      onstack[w] = nil
      comp[#comp + 1] = w
    until w == v
    if #comp > 1 then table.sort(comp); sccs[#sccs + 1] = comp end
  end
end
table.sort(order)
for _, v in ipairs(order) do if not index[v] then strong(v) end end
if verbose then
  for _, a in ipairs(order) do
    for _, b in ipairs(succ(a)) do print(("%s -> %s: %s"):format(a, b, edges[a][b])) end
  end
end

if #sccs == 0 then
  print(("cycles: none among %d modules of %s"):format(#order, dir))
  os.exit(0)
end
for _, comp in ipairs(sccs) do
  local in_comp = {}
  for _, m in ipairs(comp) do in_comp[m] = true end
  print("cycle: " .. table.concat(comp, " <-> "))
  for _, a in ipairs(comp) do
    for _, b in ipairs(succ(a)) do
      if in_comp[b] then print(("  %s -> %s: %s"):format(a, b, edges[a][b])) end
    end
  end
end
print(("cycles: %d among the modules of %s"):format(#sccs, dir))
os.exit(1)
LUA
