-- luacheck configuration for scgi-lua (`make lint` runs `luacheck lua spec examples`).
-- Runtime modules and configs run under LuaJIT 2.1 and set no globals; specs run under busted.
std = "luajit"
max_line_length = 120

ignore = {
  -- `not (x >= 0)` is the NaN-safe comparison the specs mean (NaN fails every comparison)
  "581",
  -- an empty branch that documents a case ("-- blank lines are allowed") is deliberate
  "542",
}

files["spec"] = { std = "+busted" }

-- The fake backend runs handler source (spec/helpers/init.lua: scgi_backend opts.handler)
-- in its own global environment; these are the globals that source may use.
files["spec/helpers/scgi_backend.lua"] = {
  globals = { "sleep", "send_all", "env_lines", "blob", "scgi", "socket", "proc" },
}
