-- README "Two commands" (installation): `make install PREFIX=… DESTDIR=…` and `luarocks make` both
-- give a working program outside the checkout: the binary, the scgilua.* modules it loads from the
-- installed tree (not from the checkout), the man page and the examples. Black-box: the installed
-- binary is run from the staging tree with SCGI_LUA_PATH unset. Both installs reuse the binary
-- `make` already built; nothing is compiled here unless the build is stale.

local helpers = require "spec.helpers"
local proc = helpers.proc
local stat = require "posix.sys.stat"
local unistd = require "posix.unistd"

local ROOT = helpers.root
local PREFIX = "/usr/local"

-- The build variant the checkout was last built as. `make` relinks ./scgi-lua whenever the
-- variant changes, so under `make test SANITIZE=1` an install without SANITIZE would swap
-- the sanitized binary the other specs use for a plain one.
local function make_env()
  local variant = (proc.read_file(ROOT .. "/build/variant") or ""):match "^%s*(%S*)"
  if variant == "san" then return { "SANITIZE=1" } end
  return {}
end

-- Run argv through env(1): SCGI_LUA_PATH unset (the lookup under test), `vars` set.
local function run(argv, opts)
  opts = opts or {}
  local full = { "env", "-u", "SCGI_LUA_PATH" }
  for _, v in ipairs(opts.vars or {}) do full[#full + 1] = v end
  for _, a in ipairs(argv) do full[#full + 1] = a end
  return proc.run(full, { cwd = opts.cwd or ROOT, timeout = opts.timeout or 60 })
end

local function is_executable(path)
  return unistd.access(path, "x") == 0
end

local function is_file(path)
  local st = stat.stat(path)
  return st ~= nil and stat.S_ISREG(st.st_mode) ~= 0
end

local function which(name)
  for dir in (os.getenv "PATH" or "/usr/bin:/bin"):gmatch "[^:]+" do
    if is_executable(dir .. "/" .. name) then return dir .. "/" .. name end
  end
  return nil
end

local function make_install(destdir)
  local argv = { "make", "--no-print-directory", "install", "PREFIX=" .. PREFIX,
                 "DESTDIR=" .. destdir }
  for _, v in ipairs(make_env()) do argv[#argv + 1] = v end
  local code, out = run(argv, { timeout = 120 })
  assert.equal(0, code, "make install failed:\n" .. tostring(out))
  return destdir .. PREFIX
end

-- -V and -t examples/gateway.lua with the installed binary, run from inside its tree.
local function check_runs(bin, prefix, config)
  local code, out = run({ bin, "-V" }, { cwd = prefix })
  assert.equal(0, code, out)
  assert.matches("^scgi%-lua %d+%.%d+%.%d+", out)
  local _, repo_out = helpers.run_gateway { "-V" }
  assert.equal(repo_out, out, "the installed binary is not the one in the checkout")

  code, out = run({ bin, "-t", config }, { cwd = prefix })
  assert.equal(0, code, out)
  assert.matches("configuration OK", out)
  assert.matches("route 1: path /scgi%-bin/ %-> scgi://127%.0%.0%.1:4000/", out)
  assert.matches("balancer://somecluster/ %(byrequests, 2 members%)", out)
end

describe("installation #integration #install", function()
  describe("make install PREFIX=/usr/local DESTDIR=…", function()
    local destdir, prefix

    lazy_setup(function()
      destdir = helpers.temp_dir "install"
      prefix = make_install(destdir)
    end)

    it("installs the binary, the modules, the man page and the examples", function()
      assert.is_true(is_executable(prefix .. "/bin/scgi-lua"), "bin/scgi-lua")
      for _, m in ipairs { "config.lua", "schema.lua" } do
        assert.is_true(is_file(prefix .. "/share/lua/5.1/scgilua/" .. m), "module " .. m)
      end
      assert.is_true(is_file(prefix .. "/share/man/man8/scgi-lua.8"), "man page")
      for _, f in ipairs { "gateway.lua", "routing.lua", "balancer.lua", "demo_app.lua",
                           "scgi-lua.service", "logrotate.conf" } do
        assert.is_true(is_file(prefix .. "/share/doc/scgi-lua/examples/" .. f), "example " .. f)
      end
      -- nothing escapes DESTDIR: every installed path is under it
      assert.is_nil(stat.stat(destdir .. "/bin"))
    end)

    it("the installed binary prints its version and checks examples/gateway.lua", function()
      local bin = prefix .. "/bin/scgi-lua"
      check_runs(bin, prefix, prefix .. "/share/doc/scgi-lua/examples/gateway.lua")
      -- and the checkout's copy, by absolute path, from a directory with no lua/ in it
      check_runs(bin, prefix, ROOT .. "/examples/gateway.lua")
    end)

    it("the installed man page is a valid scgi-lua(8) page", function()
      local page = assert(proc.read_file(prefix .. "/share/man/man8/scgi-lua.8"))
      assert.matches("\n%.TH SCGI%-LUA 8 ", "\n" .. page)
      for _, section in ipairs { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS",
                                 "CONFIGURATION", "FILES", "EXAMPLES", "SEE ALSO" } do
        local pat = "\n%.SH \"?" .. (section:gsub(" ", "%%s")) .. "\"?\n"
        assert.truthy(page:find(pat), "no section " .. section)
      end
      if not which "groff" then
        pending "groff is not installed: the page was not rendered"
        return
      end
      local code, out = run({ "groff", "-man", "-ww", "-z", prefix .. "/share/man/man8/scgi-lua.8" })
      assert.equal(0, code, out)
      assert.equal("", out, "groff warnings:\n" .. out)
    end)

    it("loads its modules from the installed tree, not from the checkout", function()
      -- a second staging tree whose modules are then taken away: -t must fail there, which
      -- shows the first tree's -t ran on its own share/lua/5.1 (unless a system-wide copy
      -- exists at the compiled-in directory, which would hide the difference)
      local other = make_install(helpers.temp_dir "install-nomods")
      local moddir = other .. "/share/lua/5.1/scgilua"
      for _, m in ipairs(proc.list_dir(moddir)) do assert(os.remove(moddir .. "/" .. m)) end
      if is_file(PREFIX .. "/share/lua/5.1/scgilua/config.lua") then
        pending("scgilua is installed system-wide under " .. PREFIX .. "; cannot tell the trees apart")
        return
      end
      local code, out = run({ other .. "/bin/scgi-lua", "-t", ROOT .. "/examples/gateway.lua" },
                            { cwd = other })
      assert.is_not.equal(0, code, out)
      assert.not_matches("configuration OK", out)
    end)
  end)

  describe("luarocks make", function()
    it("builds and installs the binary and the modules into a tree", function()
      local luarocks = which "luarocks"
      if not luarocks then
        pending "luarocks is not installed (apt-get install -y luarocks): rockspec not checked"
        return
      end
      local code, out = run({ luarocks, "--lua-version=5.1", "lint", "scgi-lua-scm-1.rockspec" })
      assert.equal(0, code, "luarocks lint:\n" .. tostring(out))

      local tree = helpers.temp_dir "rocktree"
      -- make reads SANITIZE from the environment too: keep the checkout's build variant
      code, out = run({ luarocks, "--lua-version=5.1", "make", "--tree=" .. tree,
                        "scgi-lua-scm-1.rockspec" }, { vars = make_env(), timeout = 120 })
      assert.equal(0, code, "luarocks make:\n" .. tostring(out))
      assert.matches("scgi%-lua scm%-1 is now installed", out)

      local bin = tree .. "/bin/scgi-lua"
      assert.is_true(is_executable(bin), "bin/scgi-lua in the tree")
      for _, m in ipairs { "config.lua", "schema.lua" } do
        assert.is_true(is_file(tree .. "/share/lua/5.1/scgilua/" .. m), "module " .. m)
      end
      check_runs(bin, tree, ROOT .. "/examples/gateway.lua")

      -- listed in the tree's manifest, so `luarocks remove` can take it out again
      code, out = run({ luarocks, "--lua-version=5.1", "--tree=" .. tree, "list", "--porcelain" })
      assert.equal(0, code, out)
      assert.matches("scgi%-lua\tscm%-1\tinstalled", out)
    end)
  end)
end)
