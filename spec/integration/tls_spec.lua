-- README "TLS" and the `listen[i].tls.*` / `timeouts.tls_handshake` keys of "Configuration
-- reference", as a client meets them: SNI picks the certificate (exact, wildcard, unknown
-- and no name), the backend's HTTPS / SSL_* variables next to a plain listener's, client
-- certificates (require / optional / export), an access hook deciding on req.tls and
-- req.scheme, certificate renewal by rename and by SIGHUP (an established connection keeps
-- its session), a broken certificate (`-t` and reload), plain HTTP to the TLS port, the
-- handshake timeout, session resumption (one worker and two), X-Sendfile bodies and Range
-- over TLS, a TLS 1.3 floor, and garbage records after the handshake.
--
-- Certificates are made once per file with the `openssl` CLI (a CA, server certificates and
-- a client certificate signed by it); clients are Python's ssl (spec/helpers/tls_client.py),
-- curl and `openssl s_client`.

local helpers = require "spec.helpers"
local socket = require "socket"
local stat = require "posix.sys.stat"
local proc = helpers.proc

local MiB = 1024 * 1024

local function sh(cmd, timeout)
  local code, out = proc.run({ "sh", "-c", cmd }, { timeout = timeout or 30 })
  assert(code == 0, "command failed (" .. tostring(code) .. "): " .. cmd .. "\n" .. tostring(out))
  return out
end

local function q(s) -- shell quoting
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function unquote(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The `key value` lines tls_client.py printed → map (other lines, e.g. tracebacks, kept in .text).
local function parse_client(text)
  local r = { text = text }
  for line in text:gmatch "[^\n]+" do
    local k, v = line:match "^(%S+) (%S*)$"
    if k then r[k] = unquote(v) end
  end
  return r
end

local CLIENT = helpers.root .. "/spec/helpers/tls_client.py"

-- Run tls_client.py: opts.port, sni, ca, cert, key, max_tls12, get (list), header (list),
-- connections, garbage. Returns the parsed report.
local function client_argv(o)
  local argv = { "python3", CLIENT, "--port", tostring(o.port) }
  local function add(...) for _, a in ipairs { ... } do argv[#argv + 1] = a end end
  if o.sni then add("--sni", o.sni) end
  if o.ca then add("--ca", o.ca) end
  if o.cert then add("--cert", o.cert, "--key", o.key) end
  if o.max_tls12 then add "--max-tls12" end
  for _, p in ipairs(o.get or {}) do add("--get", p) end
  for _, h in ipairs(o.header or {}) do add("--header", h) end
  if o.connections then add("--connections", tostring(o.connections)) end
  if o.garbage then add("--garbage", tostring(o.garbage)) end
  if o.wait_file then add("--wait-file", o.wait_file) end
  return argv
end

local function tls_client(o)
  local code, out = proc.run(client_argv(o), { timeout = o.timeout or helpers.slack(20) })
  assert(code == 0, "tls_client.py failed (" .. tostring(code) .. "):\n" .. tostring(out))
  return parse_client(out)
end

-- Certificates, once per file: a CA; a.example and *.b.example (server); client one (client,
-- serial 1A2B3C); old/new/third.example for the renewal tests; a key of no certificate here.
local D, CA = nil, nil
local C = {}

local function leaf(name, subj, ext, serial)
  local base = D .. "/" .. name
  proc.write_file(base .. ".ext", ext .. "\n")
  sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
     " -keyout " .. q(base .. ".key") .. " -out " .. q(base .. ".csr") .. " -subj " .. q(subj) ..
     " && openssl x509 -req -in " .. q(base .. ".csr") .. " -CA " .. q(CA) .. " -CAkey " ..
     q(D .. "/ca.key") .. " -set_serial " .. serial .. " -days 2 -out " .. q(base .. ".pem") ..
     " -extfile " .. q(base .. ".ext") .. " && chmod 600 " .. q(base .. ".key"))
  C[name] = { cert = base .. ".pem", key = base .. ".key" }
end

local function make_certs()
  D = helpers.temp_dir "tls"
  CA = D .. "/ca.pem"
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " ..
     q(D .. "/ca.key") .. " -out " .. q(CA) .. " -days 2 -subj '/CN=scgi-lua test CA'")
  leaf("a", "/CN=a.example", "subjectAltName=DNS:a.example", "0x10")
  leaf("b", "/CN=*.b.example", "subjectAltName=DNS:*.b.example", "0x11")
  leaf("client", "/O=scgi-lua tests/CN=client one",
       "extendedKeyUsage=clientAuth", "0x1A2B3C")
  leaf("old", "/CN=old.example", "subjectAltName=DNS:old.example", "0x20")
  leaf("new", "/CN=new.example", "subjectAltName=DNS:new.example", "0x21")
  leaf("third", "/CN=third.example", "subjectAltName=DNS:third.example", "0x22")
  leaf("stray", "/CN=stray.example", "subjectAltName=DNS:stray.example", "0x23")
end

-- The backend: X-Sf-Path → an X-Sendfile answer; otherwise the variables as NAME=VALUE lines
-- (the spec reads the exact values from the backend's records).
local HANDLER = [[
function(req, sock)
  local p = req.env.HTTP_X_SF_PATH
  if p then
    send_all(sock, "Status: 200 OK\r\nX-Sendfile: " .. p .. "\r\nContent-Length: 3\r\n\r\nbad")
    return
  end
  local body = env_lines(req)
  send_all(sock, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body ..
                 "\r\n\r\n" .. body)
end]]

local function tls_listen(port, t)
  local parts = {}
  for _, c in ipairs(t.certs) do
    parts[#parts + 1] = string.format("{ cert = %q, key = %q }", c.cert, c.key)
  end
  local extra = ""
  for _, k in ipairs { "client_ca", "verify_client", "protocols" } do
    if t[k] then extra = extra .. string.format(", %s = %q", k, t[k]) end
  end
  if t.export_client_cert then extra = extra .. ", export_client_cert = true" end
  return string.format('{ addr = "127.0.0.1:%d", tls = { certs = { %s }%s } }', port,
                       table.concat(parts, ", "), extra)
end

-- Lines of `text` at level error ("time error [pid] ...").
local function error_lines(text)
  local out = {}
  for line in text:gmatch "[^\n]+" do
    if line:match "^%S+ error %[" then out[#out + 1] = line end
  end
  return out
end

local function cn_of_s_client(out)
  return out:match "subject=[^\n]-CN%s*=%s*([^,\n/]+)"
end

describe("TLS #integration #tls", function()
  local app, gw, ROOT
  local P = {}

  lazy_setup(function()
    make_certs()
    ROOT = D .. "/files"
    assert(stat.mkdir(ROOT, 493))
    local f = assert(io.open(ROOT .. "/one.bin", "wb"))
    assert(f:write(helpers.blob(MiB, 7)))
    assert(f:close())
    f = assert(io.open(ROOT .. "/big.bin", "wb"))
    for i = 1, 100 do assert(f:write(helpers.blob(MiB, 100 + i))) end
    assert(f:close())

    app = helpers.scgi_backend { handler = HANDLER }
    for _, k in ipairs { "tls", "mtls", "opt", "v13" } do P[k] = helpers.free_port() end
    local A = C.a
    local src = string.format([[
return {
  listen = { "127.0.0.1:{PORT}", %s, %s, %s, %s },
  access_log = false,
  timeouts = { tls_handshake = 1, backend = 20, send = 20 },
  routes = {
    { path = "/guarded/", pass = %q, access = function(req)
        if not (req.tls and req.tls.client_verify == "SUCCESS") then
          return 403, "client certificate required\n"
        end
      end },
    { path = "/show/", pass = %q, access = function(req)
        local t = req.tls
        return 418, req.scheme .. "|" .. (t and table.concat({ t.protocol, t.cipher, t.sni or "-",
          tostring(t.client_verify), t.client_s_dn or "-", t.client_i_dn or "-",
          t.client_serial or "-" }, "|") or "no tls")
      end },
    { path = "/sf/", pass = %q, sendfile = true, sendfile_root = %q },
    { path = "/", pass = %q },
  },
}]],
      tls_listen(P.tls, { certs = { A, C.b } }),
      tls_listen(P.mtls, { certs = { A }, client_ca = CA, verify_client = "require",
                           export_client_cert = true }),
      tls_listen(P.opt, { certs = { A }, client_ca = CA, verify_client = "optional" }),
      tls_listen(P.v13, { certs = { A }, protocols = "TLSv1.3" }),
      app.url, app.url, app.url, ROOT, app.url)
    gw = helpers.start_gateway(src)
    assert(proc.poll(function() return helpers.can_connect { host = "127.0.0.1", port = P.v13 } end, 5))
  end)

  lazy_teardown(function()
    if gw then gw:stop() end
    if app then app:stop() end
  end)

  local function curl(args)
    return proc.run({ "sh", "-c", "curl -sS --max-time 20 " .. args }, { timeout = helpers.slack(30) })
  end

  describe("SNI", function()
    it("picks a.example, *.b.example for x.b.example, the first for an unknown name", function()
      local r = tls_client { port = P.tls, sni = "a.example", ca = CA }
      assert.equal("a.example", r["conn.1.cn"], r.text)
      r = tls_client { port = P.tls, sni = "x.b.example", ca = CA }
      assert.equal("*.b.example", r["conn.1.cn"], r.text)
      r = tls_client { port = P.tls, sni = "b.example", ca = CA } -- a wildcard covers one label
      assert.equal("a.example", r["conn.1.cn"], r.text)
      r = tls_client { port = P.tls, sni = "unknown.example", ca = CA }
      assert.equal("a.example", r["conn.1.cn"], r.text)
    end)

    it("curl verifies x.b.example against the wildcard certificate", function()
      local code, out = curl(string.format("--cacert %s --resolve x.b.example:%d:127.0.0.1 " ..
                                           "-o /dev/null -w '%%{http_code}' https://x.b.example:%d/",
                                           q(CA), P.tls, P.tls))
      assert.equal(0, code, out)
      assert.equal("200", out)
    end)

    it("openssl s_client: without SNI the first certificate, with a.example that one", function()
      local base = "openssl s_client -connect 127.0.0.1:" .. P.tls .. " -CAfile " .. q(CA) ..
                   " </dev/null 2>&1"
      local out = sh(base:gsub(" </dev/null", " -noservername </dev/null"))
      assert.equal("a.example", cn_of_s_client(out), out)
      assert.truthy(out:find("Verify return code: 0 (ok)", 1, true), out)
      out = sh(base:gsub(" </dev/null", " -servername x.b.example </dev/null"))
      assert.equal("*.b.example", cn_of_s_client(out), out)
    end)
  end)

  describe("backend variables", function()
    it("HTTPS, REQUEST_SCHEME, SERVER_PORT, SSL_PROTOCOL, SSL_CIPHER, SSL_TLS_SNI", function()
      local r = tls_client { port = P.tls, sni = "a.example", ca = CA, get = { "/vars" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      local env = app:last_request().env
      assert.equal("/vars", env.REQUEST_URI)
      assert.equal("on", env.HTTPS)
      assert.equal("https", env.REQUEST_SCHEME)
      assert.equal(tostring(P.tls), env.SERVER_PORT)
      assert.equal(r["conn.1.version"], env.SSL_PROTOCOL)
      assert.equal(r["conn.1.cipher"], env.SSL_CIPHER)
      assert.equal("a.example", env.SSL_TLS_SNI)
      assert.is_nil(env.SSL_CLIENT_VERIFY) -- no client_ca on this listener
      assert.is_nil(env.SSL_CLIENT_CERT)
    end)

    it("TLS 1.2: SSL_PROTOCOL and SSL_CIPHER say so", function()
      local r = tls_client { port = P.tls, sni = "a.example", ca = CA, max_tls12 = true,
                             get = { "/vars12" } }
      assert.equal("TLSv1.2", r["conn.1.version"], r.text)
      local env = app:last_request().env
      assert.equal("/vars12", env.REQUEST_URI)
      assert.equal("TLSv1.2", env.SSL_PROTOCOL)
      assert.equal(r["conn.1.cipher"], env.SSL_CIPHER)
    end)

    it("without SNI there is no SSL_TLS_SNI", function()
      local r = tls_client { port = P.tls, ca = CA, get = { "/nosni" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      local env = app:last_request().env
      assert.equal("/nosni", env.REQUEST_URI)
      assert.equal("on", env.HTTPS)
      assert.is_nil(env.SSL_TLS_SNI)
    end)

    it("the plain listener of the same gateway: REQUEST_SCHEME=http, no HTTPS, no SSL_*", function()
      local res = assert(gw:request { path = "/plain" })
      assert.equal(200, res.status)
      local env = app:last_request().env
      assert.equal("/plain", env.REQUEST_URI)
      assert.equal("http", env.REQUEST_SCHEME)
      assert.equal(tostring(gw.port), env.SERVER_PORT)
      assert.is_nil(env.HTTPS)
      for name in pairs(env) do assert.is_nil(name:match "^SSL_", name) end
    end)
  end)

  describe("client certificates", function()
    it("require: no certificate → the handshake fails, logged at info", function()
      local mark = gw:log_mark()
      local r = tls_client { port = P.mtls, sni = "a.example", ca = CA, get = { "/nocert" } }
      assert.is_nil(r["resp.1.1.status"], r.text)
      assert.truthy(r["conn.1.error"], r.text)
      local log = gw:wait_log("info %[%d+%] [^\n]*TLS handshake failed", helpers.slack(5), { from = mark })
      assert.truthy(log, gw:log())
      assert.same({}, error_lines(log))
      for _, rec in ipairs(app:requests()) do assert.not_equal("/nocert", rec.env.REQUEST_URI) end
    end)

    it("require: a valid certificate → SUCCESS, subject, issuer, serial and the PEM", function()
      local r = tls_client { port = P.mtls, sni = "a.example", ca = CA, cert = C.client.cert,
                             key = C.client.key, get = { "/withcert" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      local env = app:last_request().env
      assert.equal("/withcert", env.REQUEST_URI)
      assert.equal("SUCCESS", env.SSL_CLIENT_VERIFY)
      assert.equal("CN=client one,O=scgi-lua tests", env.SSL_CLIENT_S_DN)
      assert.equal("CN=scgi-lua test CA", env.SSL_CLIENT_I_DN)
      assert.equal("1A2B3C", (env.SSL_CLIENT_M_SERIAL or ""):upper())
      local pem = proc.read_file(C.client.cert)
      assert.equal(pem:gsub("%s+$", ""), (env.SSL_CLIENT_CERT or ""):gsub("%s+$", ""))
    end)

    it("require: a certificate from another CA is refused", function()
      -- a self-signed certificate: no chain to the CA
      local base = D .. "/selfsigned"
      sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " ..
         q(base .. ".key") .. " -out " .. q(base .. ".pem") .. " -days 2 -subj '/CN=intruder'")
      local mark = gw:log_mark()
      local r = tls_client { port = P.mtls, ca = CA, cert = base .. ".pem", key = base .. ".key",
                             get = { "/intruder" } }
      assert.is_nil(r["resp.1.1.status"], r.text)
      assert.truthy(gw:wait_log("TLS handshake failed", helpers.slack(5), { from = mark, plain = true }))
    end)

    it("optional: no certificate → connects, SSL_CLIENT_VERIFY=NONE, no client DN", function()
      local r = tls_client { port = P.opt, sni = "a.example", ca = CA, get = { "/optional" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      local env = app:last_request().env
      assert.equal("/optional", env.REQUEST_URI)
      assert.equal("NONE", env.SSL_CLIENT_VERIFY)
      assert.is_nil(env.SSL_CLIENT_S_DN)
      assert.is_nil(env.SSL_CLIENT_CERT) -- export_client_cert is off here
    end)

    it("optional: with a certificate → SUCCESS, and no SSL_CLIENT_CERT without export", function()
      local r = tls_client { port = P.opt, ca = CA, cert = C.client.cert, key = C.client.key,
                             get = { "/optional-cert" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      local env = app:last_request().env
      assert.equal("SUCCESS", env.SSL_CLIENT_VERIFY)
      assert.equal("CN=client one,O=scgi-lua tests", env.SSL_CLIENT_S_DN)
      assert.is_nil(env.SSL_CLIENT_CERT)
    end)
  end)

  describe("hooks", function()
    it("an access hook refuses unless req.tls.client_verify == SUCCESS", function()
      local r = tls_client { port = P.opt, ca = CA, get = { "/guarded/x" } }
      assert.equal("403", r["resp.1.1.status"], r.text)
      assert.equal("client certificate required\n", r["resp.1.1.body"])
      r = tls_client { port = P.opt, ca = CA, cert = C.client.cert, key = C.client.key,
                       get = { "/guarded/y" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      assert.equal("/guarded/y", app:last_request().env.REQUEST_URI)
      local res = assert(gw:request { path = "/guarded/z" }) -- plain: no req.tls at all
      assert.equal(403, res.status)
    end)

    it("req.scheme and req.tls fields", function()
      local r = tls_client { port = P.opt, sni = "a.example", ca = CA, cert = C.client.cert,
                             key = C.client.key, get = { "/show/" } }
      assert.equal("418", r["resp.1.1.status"], r.text)
      assert.equal(table.concat({ "https", r["conn.1.version"], r["conn.1.cipher"], "a.example",
                                  "SUCCESS", "CN=client one,O=scgi-lua tests",
                                  "CN=scgi-lua test CA" }, "|"),
                   r["resp.1.1.body"]:gsub("|[^|]*$", ""))
      assert.equal("1A2B3C", r["resp.1.1.body"]:match "[^|]*$":upper())
      local res = assert(gw:request { path = "/show/" })
      assert.equal(418, res.status)
      assert.equal("http|no tls", res.body)
    end)
  end)

  describe("failures", function()
    it("plain HTTP to the TLS port → plaintext 400, logged at info", function()
      local mark = gw:log_mark()
      local c = assert(socket.connect("127.0.0.1", P.tls))
      c:settimeout(helpers.slack(5))
      assert(c:send "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
      local data, err, partial = c:receive "*a"
      c:close()
      data = data or partial
      assert.truthy(data:match "^HTTP/1%.1 400 ", tostring(data) .. " " .. tostring(err))
      assert.truthy(data:find("The plain HTTP request was sent to HTTPS port", 1, true), data)
      assert.truthy(gw:wait_log("info %[%d+%] [^\n]*plain HTTP request on the TLS port",
                                helpers.slack(5), { from = mark }), gw:log())
    end)

    -- connect, send `bytes`, and return how long until the gateway closed the connection
    local function time_to_close(bytes)
      local c = assert(socket.connect("127.0.0.1", P.tls))
      local t0 = helpers.now()
      if bytes then assert(c:send(bytes)) end
      c:settimeout(helpers.slack(5))
      local _, err = c:receive "*a"
      local dt = helpers.now() - t0
      c:close()
      return dt, err
    end

    it("handshake timeout: a client that sends nothing is closed after tls_handshake", function()
      local mark = gw:log_mark()
      local dt = time_to_close()
      assert.is_true(dt >= 0.9, "closed after " .. dt .. " s")
      assert.is_true(dt < helpers.slack(3), "closed after " .. dt .. " s")
      assert.truthy(gw:wait_log("info %[%d+%] [^\n]*TLS handshake not completed within " ..
                                "timeouts.tls_handshake", helpers.slack(3), { from = mark }))
    end)

    it("handshake timeout: half a ClientHello likewise", function()
      local mark = gw:log_mark()
      -- record header for 512 bytes, ClientHello of 508, version, 20 of its 32 random bytes
      local half = "\22\3\1\2\0" .. "\1\0\1\252" .. "\3\3" .. ("r"):rep(20)
      local dt = time_to_close(half)
      assert.is_true(dt >= 0.9, "closed after " .. dt .. " s")
      assert.is_true(dt < helpers.slack(3), "closed after " .. dt .. " s")
      assert.truthy(gw:wait_log("TLS handshake not completed within timeouts.tls_handshake",
                                helpers.slack(3), { from = mark, plain = true }))
    end)

    it("protocols = TLSv1.3 refuses a TLS 1.2 client (which the default listener accepts)", function()
      local mark = gw:log_mark()
      local r = tls_client { port = P.v13, ca = CA, max_tls12 = true, get = { "/v12" } }
      assert.truthy(r["conn.1.error"], r.text)
      assert.is_nil(r["conn.1.version"], r.text)
      assert.truthy(gw:wait_log("TLS handshake failed", helpers.slack(5), { from = mark, plain = true }))
      r = tls_client { port = P.v13, ca = CA, get = { "/v13" } }
      assert.equal("TLSv1.3", r["conn.1.version"], r.text)
      assert.equal("200", r["resp.1.1.status"], r.text)
    end)

    it("garbage records after the handshake close the connection; no error line", function()
      local mark = gw:log_mark()
      for _, n in ipairs { 1, 100, 16000 } do
        local r = tls_client { port = P.tls, ca = CA, garbage = n }
        assert.equal("TLSv1.3", r["conn.1.version"], r.text)
        assert.truthy(r["conn.1.garbage"] == "eof" or r["conn.1.garbage"] == "reset", r.text)
      end
      local r = tls_client { port = P.tls, ca = CA, get = { "/after-garbage" } }
      assert.equal("200", r["resp.1.1.status"], r.text)
      assert.truthy(gw:alive())
      assert.same({}, error_lines(gw:log():sub(mark + 1)))
    end)
  end)

  describe("sessions", function()
    it("a second connection resumes the first one's session", function()
      local r = tls_client { port = P.tls, sni = "a.example", ca = CA, connections = 3,
                             get = { "/s" } }
      assert.equal("False", r["conn.1.reused"], r.text)
      assert.equal("True", r["conn.2.reused"], r.text)
      assert.equal("True", r["conn.3.reused"], r.text)
      assert.equal("200", r["resp.3.1.status"], r.text)
    end)

    it("TLS 1.2 resumes too", function()
      local r = tls_client { port = P.tls, ca = CA, max_tls12 = true, connections = 2,
                             get = { "/s12" } }
      assert.equal("TLSv1.2", r["conn.2.version"], r.text)
      assert.equal("True", r["conn.2.reused"], r.text)
    end)
  end)

  describe("bodies over TLS", function()
    local function sha256(path)
      return sh("sha256sum " .. q(path)):match "^(%x+)"
    end

    it("1 MiB and 100 MiB X-Sendfile bodies arrive byte for byte", function()
      for _, name in ipairs { "one.bin", "big.bin" } do
        local path = ROOT .. "/" .. name
        local r = tls_client { port = P.tls, ca = CA, get = { "/sf/" .. name },
                               header = { "X-Sf-Path: " .. path }, timeout = helpers.slack(40) }
        assert.equal("200", r["resp.1.1.status"], r.text)
        assert.equal(tostring(stat.stat(path).st_size), r["resp.1.1.len"])
        assert.equal(sha256(path), r["resp.1.1.sha256"])
      end
    end)

    it("a Range request: 206 with the right bytes (curl)", function()
      local path = ROOT .. "/one.bin"
      local outp = D .. "/range.out"
      local code, out = curl(string.format("--cacert %s --resolve a.example:%d:127.0.0.1 " ..
                                           "-H %s -r 1000-2999 -o %s -w '%%{http_code}' " ..
                                           "https://a.example:%d/sf/one",
                                           q(CA), P.tls, q("X-Sf-Path: " .. path), q(outp), P.tls))
      assert.equal(0, code, out)
      assert.equal("206", out)
      assert.equal(helpers.blob(MiB, 7):sub(1001, 3000), proc.read_file(outp))
    end)
  end)
end)

describe("TLS certificate reload #integration #tls", function()
  local app

  lazy_setup(function()
    if not D then make_certs() end
    app = helpers.scgi_backend {}
  end)
  lazy_teardown(function()
    if app then app:stop() end
  end)

  -- a gateway whose TLS listener serves live.pem / live.key, copies of `from`
  local function start(from, extra)
    local dir = helpers.temp_dir "live"
    local live = { cert = dir .. "/live.pem", key = dir .. "/live.key" }
    proc.write_file(live.cert, proc.read_file(from.cert))
    proc.write_file(live.key, proc.read_file(from.key))
    sh("chmod 600 " .. q(live.key))
    local port = helpers.free_port()
    local src = string.format([[
return {
  listen = { "127.0.0.1:{PORT}", %s },
  access_log = false,
  %s
  routes = { { path = "/", pass = %q } },
}]], tls_listen(port, { certs = { live } }), extra or "", app.url)
    local gw = helpers.start_gateway(src)
    assert(proc.poll(function() return helpers.can_connect { host = "127.0.0.1", port = port } end, 5))
    return gw, port, live, dir
  end

  -- replace the live files by rename, as certbot does
  local function renew(live, from, dir)
    proc.write_file(dir .. "/tmp.key", proc.read_file(from.key))
    sh("chmod 600 " .. q(dir .. "/tmp.key"))
    proc.write_file(dir .. "/tmp.pem", proc.read_file(from.cert))
    assert(os.rename(dir .. "/tmp.key", live.key))
    assert(os.rename(dir .. "/tmp.pem", live.cert))
  end

  local function cn(port)
    return tls_client({ port = port, ca = CA })["conn.1.cn"]
  end

  it("a renewed certificate (by rename) serves new handshakes; an open connection goes on", function()
    local gw, port, live, dir = start(C.old)
    assert.equal("old.example", cn(port))
    -- a keep-alive connection: one request now, another after the renewal
    local go = dir .. "/go"
    local pr = helpers.start_process(client_argv { port = port, ca = CA, get = { "/one", "/two" },
                                                   wait_file = go })
    assert(helpers.poll(function() return pr.log():find("conn.1.waiting", 1, true) end,
                        helpers.slack(10)), pr.log())
    local mark = gw:log_mark()
    renew(live, C.new, dir)
    local got = helpers.poll(function() return cn(port) == "new.example" end, helpers.slack(6))
    assert.truthy(got, "still " .. tostring(cn(port)) .. "\n" .. gw:log())
    assert.truthy(gw:wait_log("reloaded", helpers.slack(3), { from = mark, plain = true }))
    proc.write_file(go, "")
    assert(helpers.poll(function() return not pr.alive() end, helpers.slack(10)))
    local r = parse_client(pr.log())
    assert.equal("old.example", r["conn.1.cn"], r.text)
    assert.equal("200", r["resp.1.1.status"], r.text)
    assert.equal("200", r["resp.1.2.status"], r.text)
    assert.is_nil(r["conn.1.error"], r.text)
    -- SIGHUP: files changed, the reload it triggers serves them
    mark = gw:log_mark()
    renew(live, C.third, dir)
    assert(gw:signal "HUP")
    assert.truthy(gw:wait_log("reloaded [^\n]*%(SIGHUP%)", helpers.slack(5), { from = mark }), gw:log())
    -- the SIGHUP reload read the files after the rename, and its generation serves from the
    -- moment it is logged (whether or not the file watcher reloaded too): no polling here
    assert.equal("third.example", cn(port))
    gw:stop()
  end)

  it("a reload to a broken key keeps the old certificate serving", function()
    local gw, port, live, dir = start(C.old)
    assert.equal("old.example", cn(port))
    local mark = gw:log_mark()
    -- new.example's certificate with a key of another certificate
    renew(live, { cert = C.new.cert, key = C.stray.key }, dir)
    local log = gw:wait_log("reload [^\n]*failed[^\n]*", helpers.slack(6), { from = mark })
    assert.truthy(log, gw:log())
    -- the reason may follow on the next line(s) of the same report
    assert(gw:wait_log("key values mismatch", helpers.slack(3), { from = mark, plain = true }))
    log = gw:log():sub(mark + 1)
    assert.truthy(log:find("failed, keeping generation 1:[^\n]*listen%[2%]%.tls%.certs%[1%]%.key: " ..
                           "[^\n]*live%.key: key values mismatch"), log)
    assert.equal("old.example", cn(port))
    assert.equal("old.example", cn(port))
    assert.truthy(gw:alive())
    gw:stop()
  end)

  it("scgi-lua -t names the dotted path and OpenSSL's reason", function()
    local function check(cert, key)
      local src = string.format([[
return {
  listen = { "127.0.0.1:1", %s },
  routes = { { path = "/", pass = "scgi://127.0.0.1:9/" } },
}]], tls_listen(2, { certs = { C.a, { cert = cert, key = key } } }))
      local path = helpers.temp_file(src)
      return helpers.run_gateway { "-t", path }
    end
    local code, out = check(C.b.cert, C.stray.key)
    assert.not_equal(0, code)
    assert.truthy(out:find("listen[2].tls.certs[2].key", 1, true), out)
    assert.truthy(out:lower():find("mismatch", 1, true), out)
    code, out = check(C.b.cert, D .. "/missing.key")
    assert.not_equal(0, code)
    assert.truthy(out:find("listen[2].tls.certs[2].key", 1, true), out)
    assert.truthy(out:find("missing.key", 1, true), out)
    code, out = check(CA .. ".nope", C.b.key)
    assert.not_equal(0, code)
    assert.truthy(out:find("listen[2].tls.certs[2].cert", 1, true), out)
    code, out = check(C.b.cert, C.b.key)
    assert.equal(0, code, out)
  end)

  it("workers = 2: a session made by one worker resumes on the other", function()
    local gw, port = start(C.a, 'workers = 2, log_level = "debug",')
    local deadline = helpers.now() + helpers.slack(20)
    local rounds, crossed, pids = 0, 0, {}
    repeat
      rounds = rounds + 1
      local mark = gw:log_mark()
      local r = tls_client { port = port, ca = CA, connections = 6, get = { "/w" } }
      -- which worker did each handshake: its debug line names the client's port
      local by_port = {}
      assert(helpers.poll(function()
        local log = gw:log():sub(mark + 1)
        for pid, p in log:gmatch "debug %[(%d+)%] 127%.0%.0%.1:(%d+): TLSv1%.3" do by_port[p] = pid end
        for i = 1, 6 do if not by_port[r["conn." .. i .. ".port"]] then return false end end
        return true
      end, helpers.slack(3)), r.text .. "\n" .. gw:log())
      local first = by_port[r["conn.1.port"]]
      pids[first] = true
      for i = 1, 6 do
        assert.equal("200", r["resp." .. i .. ".1.status"], r.text)
        if i > 1 then
          assert.equal("True", r["conn." .. i .. ".reused"], r.text)
          local pid = by_port[r["conn." .. i .. ".port"]]
          pids[pid] = true
          if pid ~= first then crossed = crossed + 1 end
        end
      end
    until crossed >= 2 or helpers.now() > deadline
    assert.is_true(crossed >= 2, "no session crossed workers in " .. rounds .. " rounds\n" .. gw:log())
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.equal(2, n)
    gw:stop()
  end)
end)
