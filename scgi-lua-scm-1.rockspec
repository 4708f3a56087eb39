-- LuaRocks build of scgi-lua: `luarocks make` in a checkout builds the binary and installs it
-- with the scgilua.* modules, by running the Makefile (`make`, then `make install`).
rockspec_format = "3.0"
package = "scgi-lua"
version = "scm-1"

source = {
  -- Placeholder: example.invalid is reserved and never resolves, so `luarocks install` of
  -- this file fails until the real repository URL is filled in. `luarocks make` in a checkout
  -- does not use it. "git+https" makes LuaRocks clone over https.
  url = "git+https://example.invalid/scgi-lua.git",
}

description = {
  summary = "HTTP to SCGI gateway configured and scripted in Lua",
  detailed = [[
scgi-lua is a standalone HTTP/1.1 to SCGI gateway built on libev, http-parser and LuaJIT, in
the spirit of Apache's mod_proxy_scgi. Its configuration is a Lua file: prefix routes and
Lua route matchers, access hooks, load balancers over SCGI backends (round-robin, by traffic,
by busyness or a Lua policy), internal redirects, X-Sendfile, hot reload on SIGHUP.
]],
  homepage = "https://example.invalid/scgi-lua",
  -- license: to be decided by the project owner. The repository has no licence yet; this
  -- placeholder keeps `luarocks lint` quiet without granting or claiming any licence.
  license = "UNLICENSED (to be decided)",
  labels = { "scgi", "http", "gateway", "proxy", "luajit" },
}

-- The binary embeds LuaJIT, which loads modules from the Lua 5.1 paths, so the modules must be
-- installed for 5.1 (LuaJIT reports itself as 5.1): under a 5.2+ LuaRocks they would land
-- where the gateway never looks.
dependencies = {
  "lua ~> 5.1",
}

-- For `luarocks test` and the busted suites (spec/): integration specs start real processes
-- and talk to them over sockets.
test_dependencies = {
  "busted",
  "luasocket",
  "luaposix",
}

test = {
  type = "busted",
}

-- C libraries the binary links against, checked before the build so a missing one is named
-- up front. Their directories are passed to make below, but the Makefile does not read them
-- yet: it finds LuaJIT through pkg-config and the others on the compiler's default paths.
-- LuaJIT is listed here rather than taken from LUA_INCDIR, which points at whatever Lua runs
-- LuaRocks and may not have luajit.h.
external_dependencies = {
  LIBEV = { header = "ev.h", library = "ev" },
  HTTP_PARSER = { header = "http_parser.h", library = "http_parser" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  LUAJIT = { header = "luajit-2.1/luajit.h", library = "luajit-5.1" },
}

build = {
  type = "make",
  -- `make` then `make install`; the Makefile installs the binary and the Lua modules itself,
  -- so no build.install.lua table here.
  -- No CFLAGS either (LuaRocks warns "variable CFLAGS was not passed"): a CFLAGS on make's
  -- command line would replace the Makefile's own flags (-std=c11, -D_GNU_SOURCE, the LuaJIT
  -- include path, SG_LUA_DIR) instead of adding to them, and the build would fail.
  -- No PREFIX or LUADIR at build time: LuaRocks points them at the rock's staging directory,
  -- from which it then moves the files into the tree, so a module path compiled into the
  -- binary from them would not exist afterwards. The Makefile's defaults (/usr/local) match
  -- the system tree's share/lua/5.1.
  build_variables = {
    LIBEV_INCDIR = "$(LIBEV_INCDIR)",
    LIBEV_LIBDIR = "$(LIBEV_LIBDIR)",
    HTTP_PARSER_INCDIR = "$(HTTP_PARSER_INCDIR)",
    HTTP_PARSER_LIBDIR = "$(HTTP_PARSER_LIBDIR)",
    LUAJIT_INCDIR = "$(LUAJIT_INCDIR)",
    LUAJIT_LIBDIR = "$(LUAJIT_LIBDIR)",
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUADIR = "$(LUADIR)",
  },
  copy_directories = { "examples" },
}
