-- Issue "Hardening": a black-box scenario under valgrind shows no leak, no memcheck error
-- and no descriptor left open (spec/tools/valgrind-run.sh does the work and the counting).
local helpers = require "spec.helpers"

describe("the gateway under valgrind #integration", function()
  it("leaks nothing and closes every descriptor after mixed traffic, a reload and SIGTERM", function()
    if os.execute("command -v valgrind >/dev/null 2>&1") ~= 0 then
      pending("valgrind is not installed (apt-get install valgrind)")
      return
    end
    local v = io.open("build/variant")
    local variant = v and v:read("*l")
    if v then v:close() end
    if variant == "san" then
      pending("the binary is built with ASan (SANITIZE=1), which cannot run under valgrind")
      return
    end
    local ports = helpers.free_port() .. " " .. helpers.free_port()
    local p = assert(io.popen("SCGI_LUA_SPEC_PORTS='" .. ports .. "' sh spec/tools/valgrind-run.sh 200 2>&1"))
    local out = p:read("*a")
    p:close()
    local leaked, errors, fds = out:match("valgrind: leaked=(%d+) errors=(%d+) fds=(%d+) exit=0")
    assert.truthy(leaked, out)
    assert.equal("0", leaked, out)
    assert.equal("0", errors, out)
    assert.equal("0", fds, out)
  end)
end)
