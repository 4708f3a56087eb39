-- scgi-lua(8) "Balancers" (active health checks, beyond Apache): a balancer member with `check`
-- gets a real SCGI `GET check.path` every `interval` seconds; a non-2xx/3xx answer, a failure or a
-- check slower than `check.timeout` takes it out of service until a check passes again. Members
-- without `check` get no check requests.
--
-- The fake backend's /health answer is switchable: its handler reads the status to answer from
-- a file ("200", "500", "302", or "hang" = never answer).

local helpers = require "spec.helpers"

local function app(name, status_file)
  return string.format([[
function(req, sock)
  local NAME, STATUS = %q, %q
  local path = (req.env.REQUEST_URI or ""):match "^[^?]*"
  if path == "/health" then
    local f = io.open(STATUS)
    local s = f and f:read "*l" or "200"
    if f then f:close() end
    if s == "hang" then sleep(4) return end
    local body = "health " .. s .. "\n"
    send_all(sock, "Status: " .. s .. " Check\r\nContent-Type: text/plain\r\nContent-Length: " ..
             #body .. "\r\n\r\n" .. body)
    return
  end
  req:read_body()
  local body = NAME .. "\n" .. env_lines(req)
  send_all(sock, "Status: 200 OK\r\nX-Backend: " .. NAME .. "\r\nContent-Type: text/plain\r\n" ..
           "Content-Length: " .. #body .. "\r\n\r\n" .. body)
end]], name, status_file)
end

local INTERVAL = 0.25

describe("active health checks #integration", function()
  local gw, HA, HB, DIR, STATUS_A, STATUS_B

  lazy_setup(function()
    DIR = helpers.temp_dir "healthcheck"
    STATUS_A, STATUS_B = DIR .. "/status-a", DIR .. "/status-b"
    helpers.proc.write_file(STATUS_A, "200")
    helpers.proc.write_file(STATUS_B, "200")
    HA = helpers.scgi_backend { handler = app("HA", STATUS_A) }
    HB = helpers.scgi_backend { handler = app("HB", STATUS_B) }
    gw = helpers.start_gateway(string.format([[
return {
  access_log = false,
  timeouts = { backend = 10 },
  balancers = {
    hc = { members = {
      { url = "scgi://127.0.0.1:%d", check = { interval = %s, path = "/health", timeout = 0.5 } },
      "scgi://127.0.0.1:%d",
    } },
  },
  routes = { { path = "/hc/", pass = "balancer://hc/" } },
}]], HA.port, INTERVAL, HB.port))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if HA then HA:stop() end
    if HB then HB:stop() end
  end)

  local function health_checks(b)
    local out = {}
    for _, r in ipairs(b:requests()) do
      if r.env and r.env.REQUEST_URI == "/health" then out[#out + 1] = r end
    end
    return out
  end

  local function client_count(b)
    return b:count() - #health_checks(b)
  end

  -- Wait until `n` more checks than `base` have reached HA (so at least n - 1 of them, made
  -- after the status file changed, have been answered and judged).
  local function wait_checks(base, n)
    local ok = helpers.poll(function() return #health_checks(HA) >= base + n end, 5, 0.02)
    assert.truthy(ok, "no health check requests arrive (" .. #health_checks(HA) .. " so far)")
  end

  local function set_status(s)
    local base = #health_checks(HA)
    helpers.proc.write_file(STATUS_A, s)
    return base
  end

  -- n requests, each must be 200; returns { HA = k, HB = m }.
  local function batch(n)
    local t = {}
    for i = 1, n do
      local res, err = gw:request { path = "/hc/x", timeout = 10 }
      assert(res, "request " .. i .. " failed: " .. tostring(err))
      assert.equal(200, res.status, res.body)
      local who = res.headers["x-backend"]
      t[who] = (t[who] or 0) + 1
    end
    return t
  end

  -- Poll until a batch of 6 requests goes to HB only (HA is out).
  local function wait_out(why)
    local ok = helpers.poll(function() return batch(6).HA == nil end, 5, 0.05)
    assert.truthy(ok, "HA still receives requests " .. why)
  end

  -- Poll until HA serves a request again.
  local function wait_back(why)
    local ok = helpers.poll(function() return batch(1).HA ~= nil end, 8, 0.05)
    assert.truthy(ok, "HA never came back " .. why)
  end

  before_each(function()
    -- every test starts with HA healthy and in rotation
    set_status "200"
    wait_back "at the start of the test"
  end)

  it("sends a real SCGI GET check.path to the member every interval", function()
    local base = #health_checks(HA)
    wait_checks(base, 3)
    local checks = health_checks(HA)
    local c = checks[#checks]
    assert.equal("GET", c.env.REQUEST_METHOD)
    assert.equal("/health", c.env.REQUEST_URI)
    assert.equal("0", c.env.CONTENT_LENGTH)
    assert.equal("1", c.env.SCGI)
    assert.equal("CONTENT_LENGTH", c.names[1])
    assert.equal("SCGI", c.names[2])
    -- spaced by about `interval`, not hammering
    local a, b = checks[#checks - 1].t_accept, checks[#checks].t_accept
    assert.is_true(b - a >= INTERVAL * 0.5, "two checks only " .. (b - a) .. " s apart")
    assert.is_true(b - a <= INTERVAL * 8, "two checks " .. (b - a) .. " s apart")
  end)

  it("does not check a member without `check`", function()
    wait_checks(#health_checks(HA), 2)
    assert.equal(0, #health_checks(HB))
  end)

  it("a member whose check answers 500 is taken out, and comes back when it answers 200", function()
    local t = batch(4)
    assert.is_true((t.HA or 0) > 0 and (t.HB or 0) > 0, "both members serve while healthy")
    local base = set_status "500"
    wait_checks(base, 2)
    wait_out "after its check answered 500"
    local before = client_count(HA)
    assert.same({ HB = 6 }, batch(6))
    assert.equal(before, client_count(HA))
    base = set_status "200"
    wait_checks(base, 2)
    wait_back "after its check answered 200 again"
  end)

  it("a 3xx answer passes the check", function()
    local base = set_status "302"
    wait_checks(base, 3)
    local t = batch(6)
    assert.is_true((t.HA or 0) > 0, "HA taken out by a 302 check answer")
  end)

  it("a check that times out takes the member out", function()
    local base = set_status "hang"
    wait_checks(base, 1)
    wait_out "while its check does not answer within check.timeout"
    set_status "200"
    wait_back "after its check answered 200 again"
  end)
end)
