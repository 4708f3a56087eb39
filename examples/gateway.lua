-- examples/gateway.lua: the configuration from Apache's mod_proxy_scgi manual, in scgi-lua's
-- format. Every Apache directive on that page has a counterpart below, plus the pieces the
-- manual only describes in prose (the balancer, internal redirects, X-Sendfile).
--
-- Try it with the demo application on both balancer ports:
--
--   luajit examples/demo_app.lua --port 4000 &
--   luajit examples/demo_app.lua --port 4001 &
--   ./scgi-lua examples/gateway.lua
--   curl http://127.0.0.1:8080/scgi-bin/hello
--
-- `./scgi-lua -t examples/gateway.lua` checks this file without starting anything. The config
-- is plain Lua: it is run once at start and again at each reload, so it may compute values,
-- but whatever it does runs before the gateway listens, not per request.

return {
  -- Loopback only. An SCGI gateway passes whatever the backend says, so expose it to other
  -- machines deliberately, e.g. "0.0.0.0:80", behind a firewall you trust. A list is accepted
  -- too, e.g. { "127.0.0.1:8080", "[::1]:8080" }.
  listen = "127.0.0.1:8080",

  -- Combined Log Format on stderr, so it lands in the journal under systemd (see
  -- scgi-lua.service). Name a file instead to keep access logs apart; examples/logrotate.conf
  -- rotates /var/log/scgi-lua/*.log.
  access_log = "stderr",

  -- Counters per backend and per balancer member, as JSON or Prometheus text, for loopback
  -- clients only. While you try the balancer below, `curl
  -- http://127.0.0.1:8080/.well-known/scgi-lua/status` shows which member took each request.
  status = { path = "/.well-known/scgi-lua/status", allow = { "127.0.0.1", "::1" } },

  balancers = {
    -- <Proxy "balancer://somecluster"> with two BalancerMember lines. byrequests is Apache's
    -- default method too: a weighted round-robin, so with one demo app on each port,
    -- /cluster/hello alternates between two pids. Stop one of them and requests keep working:
    -- the dead member is skipped for `retry` seconds (10 by default, where Apache waits 60),
    -- and a request is only retried elsewhere if none of it had been sent yet.
    somecluster = {
      method = "byrequests",
      members = {
        "scgi://127.0.0.1:4000",
        "scgi://127.0.0.1:4001",
      },
    },
  },

  -- Routes are tried in order and the first match wins, like a list of ProxyPass lines. A
  -- prefix ending in "/" also answers its bare form: /scgi-bin gets a 301 to /scgi-bin/.
  routes = {
    -- ProxyPass /scgi-bin/ scgi://localhost:4000/
    -- 127.0.0.1 rather than "localhost": names are resolved when the config loads, and
    -- "localhost" may come back as ::1 first while the demo app listens on IPv4 only.
    -- Internal redirects are on by default (ProxySCGIInternalRedirect On): a 200 with
    -- "Location: /somewhere" makes the gateway fetch /somewhere itself, as mod_cgi does, so
    -- /scgi-bin/redirect ends up at the demo app's hello page.
    { path = "/scgi-bin/", pass = "scgi://127.0.0.1:4000/" },

    -- ProxyPass /cluster/ balancer://somecluster/
    -- The manual's balancer example reuses /scgi-bin/; it gets its own prefix here so both
    -- examples can run side by side.
    -- proxy-scgi-pathinfo is the manual's SetEnvIf Request_URI . proxy-scgi-pathinfo. Without
    -- it, SCRIPT_NAME is the whole path and the application works out its own PATH_INFO (RFC
    -- 3875 §3.3), which is right for most frameworks. With it, the gateway splits at the mount
    -- point: compare /scgi-bin/env (SCRIPT_NAME=/scgi-bin/env) with /cluster/env
    -- (SCRIPT_NAME=/cluster, PATH_INFO=/env). Unlike Apache's guess, the split is exact even
    -- when the path contains percent-encoded characters.
    { path = "/cluster/", pass = "balancer://somecluster/",
      env = { ["proxy-scgi-pathinfo"] = "1" } },

    -- <Location /django-app/> ProxySCGIInternalRedirect X-Location </Location>
    -- Django turns every Location into an absolute URL (https://host/...), which never looks
    -- like a local path, so the internal redirect needs a header of its own. The application
    -- sends "X-Location: /path" with a 200; the gateway removes that header and serves /path
    -- as a new GET, keeping any cookies the first response set.
    -- Try /django-app/redirect?to=/scgi-bin/env: the variables shown include
    -- REDIRECT_STATUS=200 and REDIRECT_REQUEST_URI, the request the client actually made.
    { path = "/django-app/", pass = "scgi://127.0.0.1:4000/",
      internal_redirect = "X-Location" },

    -- ProxySCGISendfile X-Send-Static
    -- The application decides who may download what, then names the file in X-Send-Static
    -- and sends no body; the gateway streams the file with sendfile(2) and handles Range, HEAD,
    -- ETag and If-Modified-Since, so the bytes never cross the SCGI socket. /files/download
    -- returns the demo app's own source this way; /scgi-bin/download, where sendfile is off
    -- (the default), shows the header and the placeholder body instead.
    -- In production, confine it: sendfile_root = "/srv/files" makes the gateway refuse (403)
    -- any file whose real path, symlinks followed, lies outside that directory, so a bug in
    -- the application cannot hand out /etc/shadow. It is left out here only because the demo
    -- app's source lives wherever you checked this repository out.
    { path = "/files/", pass = "scgi://127.0.0.1:4000/",
      sendfile = "X-Send-Static" },
  },
}
