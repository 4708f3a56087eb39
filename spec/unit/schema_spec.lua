-- Unit tests for scgilua.schema (the declarative checker) and the address helpers of
-- scgilua.config.

local s = require "scgilua.schema"
local config = require "scgilua.config"

local function run(v, value, path)
  local cx = s.context()
  local out = v.check(value, path or "x", cx)
  return out, cx.errs
end

describe("scgilua.schema", function()
  describe("repr", function()
    it("shows scalars with their type", function()
      assert.equal('"2x" (string)', s.repr "2x")
      assert.equal("0 (number)", s.repr(0))
      assert.equal("1.5 (number)", s.repr(1.5))
      assert.equal("false (boolean)", s.repr(false))
      assert.equal("nil", s.repr(nil))
      assert.equal("a table", s.repr {})
      assert.equal("a function", s.repr(print))
    end)

    it("escapes and cuts strings", function()
      assert.equal('"a\\"b\\\\c\\n\\0" (string)', s.repr 'a"b\\c\n\0')
      local q = s.quote(("x"):rep(100))
      assert.equal(62, #q)
      assert.matches('%.%.%."$', q)
    end)
  end)

  describe("join", function()
    it("builds dotted paths", function()
      assert.equal("a", s.join("", "a"))
      assert.equal("a.b_c", s.join("a", "b_c"))
      assert.equal("a[2]", s.join("a", 2))
      assert.equal('a["x-y"]', s.join("a", "x-y"))
      assert.equal("[1]", s.join("", 1))
      assert.equal("a[true]", s.join("a", true))
    end)
  end)

  describe("suggest", function()
    it("finds the closest name within 2 edits", function()
      local names = { "listen", "workers", "timeouts", "limits", "routes" }
      assert.equal("listen", s.suggest("lisen", names))
      assert.equal("listen", s.suggest("lsiten", names)) -- transposition counts once
      assert.equal("routes", s.suggest("route", names))
      assert.equal("limits", s.suggest("LIMITS", names))
      assert.is_nil(s.suggest("zz", names))
      assert.is_nil(s.suggest("something", names))
      assert.is_nil(s.suggest(1, names))
    end)

    it("computes edit distances", function()
      assert.equal(0, s.distance("abc", "abc"))
      assert.equal(3, s.distance("", "abc"))
      assert.equal(1, s.distance("ab", "ba"))
      assert.equal(3, s.distance("kitten", "sitting"))
    end)
  end)

  describe("validators", function()
    it("integer", function()
      local v = s.integer { min = 1, max = 3 }
      assert.equal(2, run(v, 2))
      local out, errs = run(v, 4)
      assert.is_nil(out)
      assert.same({ "x: expected an integer between 1 and 3, got 4 (number)" }, errs)
      assert.same({ "x: expected an integer, got 1e+300 (number)" },
        select(2, run(s.integer {}, 1e300)))
      assert.same({ "x: expected an integer <= 3, got 2.5 (number)" },
        select(2, run(s.integer { max = 3 }, 2.5)))
    end)

    it("number", function()
      assert.same({ "x: expected a number > 1, got 1 (number)" },
        select(2, run(s.number { gt = 1 }, 1)))
      assert.same({ "x: expected a number, got nan (number)" }, select(2, run(s.number {}, 0 / 0)))
    end)

    it("string rejects NUL bytes", function()
      assert.same({ 'x: expected a string, got "a\\0" (string)' },
        select(2, run(s.string {}, "a\0")))
    end)

    it("copies a validator with other options by calling it", function()
      local base = s.integer { min = 0 }
      local v = base { default = 7, required = true }
      assert.equal(7, v.default)
      assert.is_true(v.required)
      assert.is_nil(base.default)
      assert.equal("an integer >= 0", v.what)
    end)

    it("record walks fields in order, then unknown keys sorted", function()
      local r = s.record {
        { b = s.integer { default = 1 } },
        { a = s.string { required = true } },
        post = function(out) out.seen = true end,
      }
      local out, errs = run(r, { b = "1", zeta = 1, aa = 2 }, "")
      assert.same({ b = nil, seen = true }, { b = out.b, seen = out.seen })
      assert.same({ 'b: expected an integer, got "1" (string)', "a: required field missing",
                    'aa: unknown field (did you mean "a"?)', "zeta: unknown field" }, errs)
      assert.same({ "b", "a" }, r.fields)
    end)

    it("list reports stray keys and short lists", function()
      local l = s.list { of = s.integer {}, min = 2 }
      assert.same({ 1, 2 }, (run(l, { 1, 2 })))
      assert.same({ "x: expected a list, got a list of 1 element" }, select(2, run(l, { 1 })))
      assert.same({ "x.k: unexpected key in a list",
                    "x: expected a list, got a list of 1 element" },
        select(2, run(l, { 1, k = 2 })))
    end)

    it("one_of reports the combined description", function()
      local v = s.one_of { s.literal { true, to = "T" }, s.literal { false }, s.string {} }
      assert.equal("T", run(v, true))
      assert.equal(false, run(v, false))
      assert.equal("x", run(v, "x"))
      assert.same({ "x: expected true, false or a string, got 1 (number)" }, select(2, run(v, 1)))
    end)

    it("map walks keys in sorted order", function()
      local m = s.map { key = s.string { match = "^%l+$", what = "a name" }, of = s.integer {} }
      local out, errs = run(m, { b = 1, a = "x", ["C"] = 2 })
      assert.same({ b = 1 }, out)
      assert.same({ 'x.C: expected a name, got "C" (string)',
                    'x.a: expected an integer, got "x" (string)' }, errs)
    end)
  end)
end)

describe("scgilua.config address helpers", function()
  it("recognises IPv4 addresses", function()
    for _, a in ipairs { "0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.0.10" } do
      assert.is_true(config.is_ipv4(a), a)
    end
    for _, a in ipairs { "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", "" } do
      assert.is_false(config.is_ipv4(a), a)
    end
  end)

  it("recognises IPv6 addresses", function()
    for _, a in ipairs { "::", "::1", "fe80::1", "2001:db8::8a2e:370:7334",
                         "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::ffff:192.0.2.1",
                         "1:2:3:4:5:6:1.2.3.4" } do
      assert.is_true(config.is_ipv6(a), a)
    end
    for _, a in ipairs { ":", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", ":1::", "g::1",
                         "1:2:3:4:5:6:7:8::", "::1.2.3", "1.2.3.4" } do
      assert.is_false(config.is_ipv6(a), a)
    end
  end)

  it("recognises host names", function()
    for _, h in ipairs { "localhost", "app.local", "my_app", "a-b.example.com", "example.com." } do
      assert.is_true(config.is_hostname(h), h)
    end
    for _, h in ipairs { "", "-a", "a-", "a..b", "a b", "1.2.3", ("a"):rep(64) } do
      assert.is_false(config.is_hostname(h), h)
    end
  end)

  it("parses URLs outside a config", function()
    assert.same({ kind = "balancer", name = "x", url_path = "/", text = "balancer://x/" },
      config.parse_url("balancer://x/", { "x" }))
    local out, err = config.parse_url("balancer://x/")
    assert.is_nil(out)
    assert.matches("^expected an scgi://host:port/, scgi%+unix:/path or", err)
  end)

  it("never raises on odd input", function()
    local odd = { 1, -1, 0.5, "", "x", true, false, {}, { {} }, { "" }, print,
                  setmetatable({}, {}), { [{}] = 1 }, { [true] = 1 }, ("\0"):rep(3) }
    local fields = { "listen", "workers", "timeouts", "limits", "access_log", "log_level",
                     "status", "balancers", "routes" }
    for _, f in ipairs(fields) do
      for _, v in ipairs(odd) do
        local cfg, errs = config.validate { [f] = v }
        assert.is_nil(cfg)
        assert.is_true(#errs >= 1)
        cfg, errs = config.validate { routes = { { [f] = v } } }
        assert.is_nil(cfg)
        assert.is_true(#errs >= 1)
        cfg, errs = config.validate { balancers = { b = { members = { { url = v, [f] = v } } } },
                                      routes = { { path = v, match = v, pass = v, env = v } } }
        assert.is_nil(cfg)
        assert.is_true(#errs >= 1)
      end
    end
  end)
end)
