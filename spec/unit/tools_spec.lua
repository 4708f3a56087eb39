-- spec/tools/cycles.sh (run by `make lint`): which include graphs it calls cyclic, on small
-- trees written to a temp directory.

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function tree(files)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  for name, src in pairs(files) do write(dir .. "/" .. name, src) end
  return dir
end

local function cycles(files)
  local dir = tree(files)
  local p = assert(io.popen("sh spec/tools/cycles.sh '" .. dir .. "' 2>&1; echo \"rc=$?\""))
  local out = p:read "*a"
  p:close()
  os.execute("rm -rf '" .. dir .. "'")
  local rc = tonumber(out:match "rc=(%d+)%s*$")
  return rc, out
end

describe("spec/tools/cycles.sh", function()
  it("passes a layered tree", function()
    local rc, out = cycles {
      ["a.h"] = '#include "b.h"\nint a_f(void);\n',
      ["a.c"] = '#include "a.h"\n#include "b.h"\nint a_f(void)\n{\n    return b_f();\n}\n',
      ["b.h"] = "int b_f(void);\n",
      ["b.c"] = '#include "b.h"\nint b_f(void)\n{\n    return 1;\n}\n',
    }
    assert.equal(0, rc, out)
    assert.matches("cycles: none among 2 modules", out, 1, true)
  end)

  it("finds two modules whose files include each other's header", function()
    local rc, out = cycles {
      ["a.h"] = '#include "b.h"\n',
      ["a.c"] = '#include "a.h"\n',
      ["b.h"] = "",
      ["b.c"] = '#include "b.h"\n#include "a.h"\n',
    }
    assert.equal(1, rc, out)
    assert.matches("cycle: a <-> b", out, 1, true)
    assert.matches("a %-> b: [^\n]*/a%.h includes b%.h", out)
    assert.matches("b %-> a: [^\n]*/b%.c includes a%.h", out)
  end)

  it("charges a header without its own .c to the .c files defining what it declares", function()
    local rc, out = cycles {
      ["p.h"] = "int a_f(int x);\nint b_f(int x);\n",
      ["a.c"] = '#include "p.h"\nint a_f(int x)\n{\n    return b_f(x);\n}\n',
      ["b.c"] = '#include "p.h"\nint b_f(int x)\n{\n    return x ? a_f(x - 1) : 0;\n}\n',
    }
    assert.equal(1, rc, out)
    assert.matches("cycle: a <-> b", out, 1, true)
    assert.matches("which declares b_f (b.c)", out, 1, true)
    assert.matches("which declares a_f (a.c)", out, 1, true)
  end)

  it("does not count a types-only header, static functions or prototypes in comments", function()
    local rc, out = cycles {
      ["types.h"] = "typedef struct t { int x; } t;\n/* int a_f(void); */\n",
      ["a.c"] = '#include "types.h"\nstatic int b_f(void)\n{\n    return 0;\n}\n'
        .. "int a_f(void)\n{\n    return b_f();\n}\n",
      ["b.c"] = '#include "types.h"\nint b_f(void)\n{\n    return 0;\n}\n',
    }
    assert.equal(0, rc, out)
    assert.matches("cycles: none among 3 modules", out, 1, true)
  end)

  it("refuses a directory that does not exist", function()
    local p = assert(io.popen("sh spec/tools/cycles.sh /nonexistent/dir 2>&1; echo \"rc=$?\""))
    local out = p:read "*a"
    p:close()
    assert.matches("rc=2%s*$", out)
  end)
end)
