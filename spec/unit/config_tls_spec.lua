-- Unit tests for the TLS part of scgilua.config: listen entries as { addr = , tls = }, the
-- defaults a TLS listener gets, and every error with its dotted path. The files themselves
-- are checked by tls.c when the config is built (spec/c/test_tls.c, spec/integration).

local config = require "scgilua.config"

local ROUTES = { { path = "/", pass = "scgi://127.0.0.1:4000/" } }
local CERT = { { cert = "/etc/ssl/site.pem", key = "/etc/ssl/site.key" } }

local function ok(listen)
  local cfg, errs = config.validate { listen = listen, routes = ROUTES }
  assert(cfg, errs and table.concat(errs, "\n"))
  return cfg
end

local function fails(listen, ...)
  local cfg, errs = config.validate { listen = listen, routes = ROUTES }
  assert.is_nil(cfg)
  assert.same({ ... }, errs)
end

describe("scgilua.config TLS listeners", function()
  it("takes one { addr, tls } entry on its own, with the defaults filled", function()
    local cfg = ok { addr = "127.0.0.1:8443", tls = { certs = CERT } }
    assert.same({ {
      kind = "tcp", host = "127.0.0.1", port = 8443, text = "127.0.0.1:8443",
      tls = { certs = CERT, protocols = "TLSv1.2+", export_client_cert = false },
    } }, cfg.listen)
    assert.equal(10, cfg.timeouts.tls_handshake)
  end)

  it("mixes plain and TLS entries in a list; { addr } alone is a plain entry", function()
    local cfg = ok { "127.0.0.1:8080", { addr = "127.0.0.1:8443", tls = { certs = CERT } },
                     { addr = "127.0.0.1:8081" } }
    assert.is_nil(cfg.listen[1].tls)
    assert.equal("127.0.0.1:8443", cfg.listen[2].text)
    assert.equal(1, #cfg.listen[2].tls.certs)
    assert.is_nil(cfg.listen[3].tls)
  end)

  it("defaults verify_client to require when client_ca is given", function()
    local cfg = ok { addr = "127.0.0.1:8443", tls = { certs = CERT, client_ca = "/ca.pem" } }
    assert.equal("require", cfg.listen[1].tls.verify_client)
    cfg = ok { addr = "127.0.0.1:8443",
               tls = { certs = CERT, client_ca = "/ca.pem", verify_client = "optional",
                       protocols = "TLSv1.3", export_client_cert = true } }
    assert.equal("optional", cfg.listen[1].tls.verify_client)
    assert.equal("TLSv1.3", cfg.listen[1].tls.protocols)
    assert.is_true(cfg.listen[1].tls.export_client_cert)
  end)

  it("reports each problem with its dotted path", function()
    fails({ addr = "127.0.0.1:8443", tls = { certs = {} } },
      "listen.tls.certs: expected a non-empty list of { cert = , key = } tables, got an empty table")
    fails({ { addr = "127.0.0.1:8443", tls = { certs = { { cert = "/a" } }, protocol = "x" } } },
      "listen[1].tls.certs[1].key: required field missing",
      'listen[1].tls.protocol: unknown field (did you mean "protocols"?)')
    fails({ { addr = "127.0.0.1:8443", tls = { certs = CERT, protocols = "SSLv3" } } },
      'listen[1].tls.protocols: expected one of "TLSv1.2+", "TLSv1.3", got "SSLv3" (string)')
    fails({ { addr = "127.0.0.1:8443", tls = { certs = CERT, verify_client = "optional" } } },
      "listen[1].tls.verify_client: needs client_ca (the CA that signs client certificates)")
    fails({ { addr = "unix:/tmp/s.sock", tls = { certs = CERT } } },
      "listen[1].tls: TLS on a unix socket is not supported")
    fails({ { tls = { certs = CERT } } }, "listen[1].addr: required field missing")
    fails({ "127.0.0.1:8080", 5 }, 'listen[2]: expected an address like "127.0.0.1:8080", '
      .. '"[::1]:8080", "*:8080", "8080" or "unix:/path" or { addr = , tls = }, got 5 (number)')
  end)

  it("takes redirect_https on a plain entry only, and https_only on a route", function()
    local cfg = ok { { addr = "127.0.0.1:8080", redirect_https = true }, "127.0.0.1:8081" }
    assert.is_true(cfg.listen[1].redirect_https)
    assert.is_nil(cfg.listen[2].redirect_https)
    fails({ { addr = "127.0.0.1:8443", tls = { certs = CERT }, redirect_https = true } },
      "listen[1].redirect_https: is for a plain listener (this one has tls)")
    local c2 = assert(config.validate {
      routes = { { path = "/", pass = "scgi://127.0.0.1:4000/", https_only = true } } })
    assert.is_true(c2.routes[1].https_only)
  end)

  it("still finds a duplicate address across plain and TLS entries", function()
    fails({ "127.0.0.1:8443", { addr = "127.0.0.1:8443", tls = { certs = CERT } } },
      'listen[2]: duplicate address "127.0.0.1:8443" (same as listen[1])')
  end)
end)
