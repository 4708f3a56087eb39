#!/usr/bin/env bash
# TLS termination, scgi-lua beside nginx (listen ... ssl, scgi_pass), one worker each, the
# shared rig's SCGI backend behind both. Called by spec/bench/run.sh (make bench) and
# runnable alone. Each scenario runs in alternating rounds (scgi-lua, nginx, scgi-lua, ...),
# every run on freshly started servers, and ratios are medians of per-round ratios, as the
# rig's compare.sh does. A round in which processes outside the bench used more than
# NOISE_MAX_CPU CPU seconds is discarded and redone (at most NOISE_RETRIES times).
#   tls-hello        wrk https, 64 keep-alive connections, GET /hello: req/s, p50/p99
#   tls-hs-new       openssl s_time -new: a full handshake + GET /hello per connection
#   tls-hs-reuse     openssl s_time -reuse: the same, resuming the first session (tickets)
#   tls-sendfile100m wrk https, 4 connections, 100 MiB X-Sendfile / X-Accel-Redirect: MB/s
#   tls-idle10k      IDLE_CONNS (10000) finished handshakes left idle: server RSS after
# Both servers get the same self-signed EC P-256 certificate (made once per run), TLS 1.3
# only, and their default suites, so every client here negotiates the same cipher (checked
# with s_client before the first round and printed).
#   TLS_SCENARIOS="tls-hello tls-hs-new tls-hs-reuse tls-sendfile100m tls-idle10k"  ROUNDS=3
#   DURATION=10s  WARMUP=2s  HS_CLIENTS=2 (parallel s_time processes)  IDLE_CONNS=10000
#   PINS="0 1" (PIN=1 alone means PINS=1: server on CPU 1, clients and backend on CPU 0)
#   HOLD=SECONDS HOLD_SERVER=scgi-lua|nginx: start one server and keep it up, no load
#   TLS_TABLE=FILE: also write the markdown table there (run.sh does)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rig=${BENCH_RIG:-$here/../shared/bench}
[ -d "$rig/backend" ] || { echo "bench rig not found at $rig (set BENCH_RIG)" >&2; exit 1; }
TLS_SCENARIOS=${TLS_SCENARIOS:-"tls-hello tls-hs-new tls-hs-reuse tls-sendfile100m tls-idle10k"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
HS_CLIENTS=${HS_CLIENTS:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
NOISE_MAX_CPU=${NOISE_MAX_CPU:-1.0}
NOISE_RETRIES=${NOISE_RETRIES:-2}
if [ -n "${PIN:-}" ]; then PINS=${PINS:-$PIN}; else PINS=${PINS:-"0 1"}; fi
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
secs=${DURATION%s}
for tool in wrk curl openssl python3 ss taskset; do
    command -v "$tool" >/dev/null || { echo "tls.sh: $tool not found" >&2; exit 1; }
done
[ -x "$NGINX_BIN" ] || { echo "tls.sh: nginx not found" >&2; exit 1; }
[ -x "$here/scgi-lua" ] || { echo "tls.sh: build scgi-lua first (make)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# the rig's backend: its prebuilt binary, or a build in the cache dir bench.sh uses
BACKEND_BIN=$rig/backend/scgi_backend
if [ ! -x "$BACKEND_BIN" ] || [ "$rig/backend/scgi_backend.c" -nt "$BACKEND_BIN" ]; then
    BACKEND_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/scgi-bench/scgi_backend"
    if [ ! -x "$BACKEND_BIN" ] || [ "$rig/backend/scgi_backend.c" -nt "$BACKEND_BIN" ]; then
        mkdir -p "$(dirname "$BACKEND_BIN")"
        ${CC:-cc} -O2 -g -Wall -o "$BACKEND_BIN" "$rig/backend/scgi_backend.c" -pthread >&2 || exit 1
    fi
fi

top=$(mktemp -d /tmp/scgi-tlsbench.XXXXXX)
chmod 755 "$top"
STARTED=()
stop_pid() {
    local pid=$1 i kids
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kids=$(pgrep -P "$pid")
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    for i in $kids; do kill -0 "$i" 2>/dev/null && kill -KILL "$i" 2>/dev/null; done
    return 0
}
stop_all() {
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[$i]}"; done
    STARTED=()
}
trap 'stop_all; rm -rf "$top"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# one certificate and data file for the whole run
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$top/key.pem" -out "$top/cert.pem" 2>/dev/null || { echo "tls.sh: openssl req failed" >&2; exit 1; }
chmod 600 "$top/key.pem"
mkdir -p "$top/data"
head -c 104857600 /dev/urandom >"$top/data/file100m.bin"
chmod -R a+rX "$top/data"

pick_port() {
    local p i
    for i in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        [ -z "$(ss -Htan "( sport = :$p )")" ] && { echo "$p"; return 0; }
    done
    return 1
}
tree_pids() { echo "$1"; pgrep -P "$1"; }
tree_rss() {
    local p t=0 r
    for p in $(tree_pids "$1"); do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${r:-0}))
    done
    echo "$t"
}
tree_ticks() {
    local p t=0 v
    for p in $(tree_pids "$1"); do
        v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# "pid ticks" of user processes outside this script's tree: the noise indicator
mine() { ps -e -o pid=,ppid= | awk -v root=$$ '{ par[$1] = $2; p[NR] = $1 }
    END { want[root] = 1; c = 1; while (c) { c = 0; for (i in p) if (!(p[i] in want) && (par[p[i]] in want)) { want[p[i]] = 1; c = 1 } }
          for (x in want) printf " %s", x; print " " }'; }
foreign_ticks() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v mine="$(mine)" '
        { if (index(mine, " " $1 " ")) next
          l = $0; sub(/^.*\) /, "", l); split(l, f, " ")
          if ($1 == 2 || f[2] == 2) next
          print $1, f[12] + f[13] }'
}
other_cpu() {
    awk -v hz="$(getconf CLK_TCK)" 'FNR == NR { t0[$1] = $2; next }
        { d = $2 - ($1 in t0 ? t0[$1] : 0); if (d > 0) s += d } END { printf "%.2f", s / hz }' "$1" "$2"
}
now() { date +%s.%N; }

# start SERVER: the backend, then scgi-lua or nginx; sets PORT, GW_PID, RUN
start() {
    local server=$1 bport i code
    RUN=$(mktemp -d "$top/run.XXXXXX")
    chmod 755 "$RUN"
    bport=$(pick_port) && PORT=$(pick_port) || return 1
    while [ "$PORT" = "$bport" ]; do PORT=$(pick_port); done
    ${LOAD[@]+"${LOAD[@]}"} "$BACKEND_BIN" -t 1 -d "$top/data" "$bport" 2>"$RUN/backend.log" &
    STARTED+=("$!")
    if [ "$server" = scgi-lua ]; then
        # client_header / keepalive as nginx's client_header_timeout and keepalive_timeout
        cat >"$RUN/gateway.lua" <<LUA
return {
  listen = { { addr = "127.0.0.1:$PORT", tls = { protocols = "TLSv1.3",
    certs = { { cert = "$top/cert.pem", key = "$top/key.pem" } } } } },
  workers = 1,
  access_log = false,
  log_level = "warn",
  timeouts = { client_header = 60, keepalive = 65 },
  limits = { connections = 16384 },
  routes = { { path = "/", pass = "scgi://127.0.0.1:$bport/", sendfile = true,
               sendfile_root = "$top/data" } },
}
LUA
        ${GW[@]+"${GW[@]}"} "$here/scgi-lua" "$RUN/gateway.lua" >"$RUN/gateway.log" 2>&1 &
    else
        # the rig's peers/nginx.conf.in with the listener made TLS
        mkdir -p "$RUN/tmp"
        cp "$rig/peers/scgi_params" "$RUN/scgi_params"
        local user=""
        [ "$(id -u)" = 0 ] && user="user www-data $(id -gn www-data 2>/dev/null || echo www-data);"
        cat >"$RUN/nginx.conf" <<NGINX
daemon off;
master_process on;
worker_processes 1;
$user
pid $RUN/nginx.pid;
error_log $RUN/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off;
    default_type application/octet-stream;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    client_body_buffer_size 1m;
    client_max_body_size 0;
    client_body_temp_path $RUN/tmp/client_body;
    proxy_temp_path       $RUN/tmp/proxy;
    fastcgi_temp_path     $RUN/tmp/fastcgi;
    uwsgi_temp_path       $RUN/tmp/uwsgi;
    scgi_temp_path        $RUN/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT ssl backlog=4096;
        server_name localhost;
        ssl_certificate     $top/cert.pem;
        ssl_certificate_key $top/key.pem;
        ssl_protocols TLSv1.3;
        location / {
            include scgi_params;
            scgi_pass 127.0.0.1:$bport;
            scgi_buffers 16 64k;
            scgi_max_temp_file_size 0;
        }
        location /protected/ {
            internal;
            alias $top/data/;
        }
    }
}
NGINX
        ${GW[@]+"${GW[@]}"} "$NGINX_BIN" -p "$RUN/" -e "$RUN/error.log" -c "$RUN/nginx.conf" >"$RUN/gateway.log" 2>&1 &
    fi
    GW_PID=$!
    STARTED+=("$GW_PID")
    for i in $(seq 100); do
        kill -0 "$GW_PID" 2>/dev/null || break
        code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "https://127.0.0.1:$PORT/hello")
        [ "$code" = 200 ] && return 0
        sleep 0.1
    done
    echo "tls.sh: $server did not answer https://127.0.0.1:$PORT/hello" >&2
    tail -n 20 "$RUN/gateway.log" "$RUN/error.log" "$RUN/backend.log" 2>/dev/null >&2
    return 1
}

sfhdr() { [ "$1" = nginx ] && echo X-Accel-Redirect || echo X-Sendfile; }

# wrk's summary as "rps=.. p50_ms=.. p99_ms=.. errors=.. mb_s=.."
wrk_fields() {
    awk 'function ms(s, v, u) { v = s + 0; u = s; sub(/^[0-9.]+/, "", u)
            return u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v }
         function mb(s, v, u) { v = s + 0; u = s; sub(/^[0-9.]+/, "", u)
            return (u == "B" ? v / 1048576 : u == "KB" ? v / 1024 : u == "GB" ? v * 1024 : v) * 1.048576 }
         /^Requests\/sec:/ { rps = $2 } /^Transfer\/sec:/ { m = mb($2) }
         /^ +50% / { p50 = ms($2) } /^ +99% / { p99 = ms($2) }
         /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) err += $i + 0 }
         /Non-2xx or 3xx responses:/ { err += $NF }
         END { printf "rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d mb_s=%.1f", rps, p50, p99, err, m }' "$1"
}

# one measured run of SCENARIO against SERVER: prints one line of key=value fields
measure() {
    local server=$1 s=$2 t0 t1 g0 g1 f0 f1 w0 w1 out fields extra="" n i rss0
    start "$server" || { echo "$server $s FAILED"; stop_all; return 1; }
    out=$RUN/out
    case $s in
    tls-hello) ${LOAD[@]+"${LOAD[@]}"} wrk -t1 -c64 -d"$WARMUP" --timeout 2s "https://127.0.0.1:$PORT/hello" >/dev/null 2>&1 ;;
    tls-sendfile100m)
        curl -sk --max-time 60 -o "$RUN/check" "https://127.0.0.1:$PORT/sendfile?f=file100m.bin&h=$(sfhdr "$server")"
        cmp -s "$RUN/check" "$top/data/file100m.bin" || { echo "$server $s FAILED (body differs)"; stop_all; return 1; }
        rm -f "$RUN/check" ;;
    esac
    rss0=$(tree_rss "$GW_PID")
    foreign_ticks >"$RUN/f0"; g0=$(tree_ticks "$GW_PID"); t0=$(now)
    case $s in
    tls-hello)
        ${LOAD[@]+"${LOAD[@]}"} wrk -t1 -c64 -d"$DURATION" --timeout 2s --latency "https://127.0.0.1:$PORT/hello" >"$out" 2>&1
        fields=$(wrk_fields "$out") ;;
    tls-sendfile100m)
        ${LOAD[@]+"${LOAD[@]}"} wrk -t1 -c4 -d"$DURATION" --timeout 30s --latency \
            "https://127.0.0.1:$PORT/sendfile?f=file100m.bin&h=$(sfhdr "$server")" >"$out" 2>&1
        fields=$(wrk_fields "$out") ;;
    tls-hs-new | tls-hs-reuse)
        # s_time: one connection at a time per process, each a handshake and GET /hello (read
        # to the end, so TLS 1.3 tickets arrive and -reuse has one to resume)
        local pids=()
        for i in $(seq "$HS_CLIENTS"); do
            ${LOAD[@]+"${LOAD[@]}"} openssl s_time -connect "127.0.0.1:$PORT" "-${s#tls-hs-}" -time "$secs" \
                -www /hello >"$out.$i" 2>&1 &
            pids+=("$!")
        done
        wait "${pids[@]}"
        t1=$(now)
        n=$(cat "$out".* | awk '/connections in .* real seconds/ { n += $1 } END { print n + 0 }')
        fields=$(awk -v n="$n" -v t="$t0" -v u="$t1" 'BEGIN { printf "hs_s=%.1f conns=%d", n / (u - t), n }') ;;
    tls-idle10k)
        mkfifo "$RUN/hold"
        ${LOAD[@]+"${LOAD[@]}"} python3 "$here/spec/bench/idle_tls.py" "$PORT" "$IDLE_CONNS" <"$RUN/hold" >"$out" 2>&1 &
        local py=$!
        exec 9>"$RUN/hold"
        for i in $(seq 1200); do grep -q '^open' "$out" && break; kill -0 $py 2>/dev/null || break; sleep 0.1; done
        sleep 1 # the server's last accept and handshake bookkeeping settle
        n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
        fields="rss_kb=$(tree_rss "$GW_PID") rss0_kb=$rss0 established=$n client=$(head -n 1 "$out" | tr ' ' _)"
        exec 9>&-
        wait $py ;;
    esac
    t1=$(now); g1=$(tree_ticks "$GW_PID"); foreign_ticks >"$RUN/f1"
    local gcpu
    gcpu=$(awk -v a="$g0" -v b="$g1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    # server CPU per handshake / request / MB: what the server spent, whoever was the bottleneck
    case $s in
    tls-hs-*) extra=" gw_us_per_hs=$(awk -v c="$gcpu" -v n="$n" 'BEGIN { printf "%.0f", n ? c * 1e6 / n : 0 }')" ;;
    tls-hello) extra=" gw_us_per_req=$(awk -v c="$gcpu" -v r="$(field "$fields" rps)" -v d="$secs" 'BEGIN { printf "%.1f", r ? c * 1e6 / (r * d) : 0 }')" ;;
    tls-sendfile100m) extra=" gw_ms_per_gb=$(awk -v c="$gcpu" -v m="$(field "$fields" mb_s)" -v d="$secs" 'BEGIN { printf "%.0f", m ? c * 1e6 / (m * d) : 0 }')" ;;
    esac
    [ "$s" != tls-idle10k ] && extra="$extra rss_kb=$(tree_rss "$GW_PID")"
    echo "$server $s $fields$extra gw_cpu_s=$gcpu other_cpu_s=$(other_cpu "$RUN/f0" "$RUN/f1")"
    stop_all
    rm -rf "$RUN"
}

field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
noisy() { awk -v v="$(field "$1" other_cpu_s)" -v m="$NOISE_MAX_CPU" 'BEGIN { exit !(v + 0 > m + 0) }'; }

if [ -n "${HOLD:-}" ]; then
    # debugging aid (perf, s_client): HOLD=SECONDS HOLD_SERVER=scgi-lua|nginx keeps one up
    GW=() LOAD=()
    [ "${PINS%% *}" = 1 ] && GW=(taskset -c 1) LOAD=(taskset -c 0)
    start "${HOLD_SERVER:-scgi-lua}" || exit 1
    echo "${HOLD_SERVER:-scgi-lua} pid $GW_PID at https://127.0.0.1:$PORT/ (data $top/data), holding ${HOLD}s" >&2
    sleep "$HOLD"
    exit 0
fi

log=$(mktemp)
trap 'stop_all; rm -rf "$top" "$log"' EXIT
for pin in $PINS; do
    GW=() LOAD=()
    [ "$pin" = 1 ] && GW=(taskset -c 1) LOAD=(taskset -c 0)
    first=1
    for s in $TLS_SCENARIOS; do
        if [ "$first" = 1 ]; then
            # what s_client (the same OpenSSL defaults as wrk, s_time, python) negotiates
            first=0 neg=""
            for server in scgi-lua nginx; do
                start "$server" || exit 1
                got=$(openssl s_client -connect "127.0.0.1:$PORT" </dev/null 2>/dev/null | awk '/^New, / { print $2, $NF }')
                echo "pin=$pin $server negotiates $got"
                stop_all
                [ -n "$neg" ] && [ "$neg" != "$got" ] && { echo "tls.sh: the servers negotiate different ciphers" >&2; exit 1; }
                neg=$got
            done
        fi
        for ((r = 1; r <= ROUNDS; r++)); do
            for ((attempt = 0; ; attempt++)); do
                measure scgi-lua "$s" >"$top/line"; a=$(tail -n 1 "$top/line")
                measure nginx "$s" >"$top/line"; b=$(tail -n 1 "$top/line")
                if [ "$attempt" -lt "$NOISE_RETRIES" ] && { noisy "$a" || noisy "$b"; }; then
                    echo "discarded pin=$pin round $r A: $a"; echo "discarded pin=$pin round $r B: $b"
                    continue
                fi
                break
            done
            echo "pin=$pin round $r A: $a"
            echo "pin=$pin round $r B: $b"
            echo "R $pin $s $r A $a" >>"$log"
            echo "R $pin $s $r B $b" >>"$log"
        done
    done
done

# per scenario: the metric compared, whether higher is better, the target
table() {
    echo "| TLS scenario | pinned | metric | scgi-lua / nginx (median of rounds) | min-max | scgi-lua (median) | nginx (median) | per round, scgi-lua ; nginx | also | target |"
    echo "|---|---|---|---:|---:|---:|---:|---|---|---|"
    awk '
    function med(list,   n, a, i, j, t) { n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] + 0 < a[j-1] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return n ? ((n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : "" }
    function mm(list, which,   n, a, i, m) { n = split(list, a, " "); m = a[1]
        for (i = 2; i <= n; i++) if ((which == "min") ? a[i] + 0 < m + 0 : a[i] + 0 > m + 0) m = a[i]; return m }
    function get(name,   i) { for (i = 7; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2); return "" }
    BEGIN { metric["tls-hello"] = "rps"; metric["tls-hs-new"] = "hs_s"; metric["tls-hs-reuse"] = "hs_s"
            metric["tls-sendfile100m"] = "mb_s"; metric["tls-idle10k"] = "rss_kb"
            unit["rps"] = "req/s"; unit["hs_s"] = "handshakes/s"; unit["mb_s"] = "MB/s"; unit["rss_kb"] = "RSS kB"
            target["tls-hello"] = ">= 1.2, p99 <= nginx"; target["tls-hs-new"] = ">= 1"; target["tls-hs-reuse"] = ">= 1"
            target["tls-sendfile100m"] = ">= 1"; target["tls-idle10k"] = "<= 1" }
    /FAILED/ { next }
    { k = $3 "|" $2; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      m = metric[$3]; v = get(m); side = $5; rd = $4
      val[k, side, rd] = v; vals[k, side] = vals[k, side] " " v
      pr[k, side] = pr[k, side] (pr[k, side] == "" ? "" : ",") v
      if ($3 == "tls-hello") { p50[k, side] = p50[k, side] " " get("p50_ms"); p99[k, side] = p99[k, side] " " get("p99_ms")
          q99[k, side] = q99[k, side] (q99[k, side] == "" ? "" : ",") sprintf("%.1f", get("p99_ms")) }
      if ($3 ~ /^tls-hs-/) us[k, side] = us[k, side] " " get("gw_us_per_hs")
      if ($3 == "tls-hello") us[k, side] = us[k, side] " " get("gw_us_per_req")
      if ($3 == "tls-sendfile100m") us[k, side] = us[k, side] " " get("gw_ms_per_gb")
      if ($3 == "tls-idle10k") { est[k, side] = est[k, side] " " get("established"); base[k, side] = base[k, side] " " get("rss0_kb") }
      rounds[k] = rd > rounds[k] ? rd : rounds[k] }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, sp, "|"); rl = ""
        for (r = 1; r <= rounds[k]; r++) if ((k, "A", r) in val && (k, "B", r) in val && val[k, "B", r] > 0)
            rl = rl " " val[k, "A", r] / val[k, "B", r]
        also = ""
        if (sp[1] == "tls-hello") also = sprintf("p50/p99 ms %s/%s ; %s/%s, p99 per round %s ; %s, server CPU us/request %s ; %s",
            med(p50[k, "A"]), med(p99[k, "A"]), med(p50[k, "B"]), med(p99[k, "B"]), q99[k, "A"], q99[k, "B"], med(us[k, "A"]), med(us[k, "B"]))
        if (sp[1] == "tls-sendfile100m") also = sprintf("server CPU ms/GB %s ; %s", med(us[k, "A"]), med(us[k, "B"]))
        if (sp[1] ~ /^tls-hs-/) also = sprintf("server CPU us/handshake %s ; %s", med(us[k, "A"]), med(us[k, "B"]))
        if (sp[1] == "tls-idle10k") also = sprintf("RSS before %s ; %s kB, established %s ; %s", med(base[k, "A"]), med(base[k, "B"]),
            med(est[k, "A"]), med(est[k, "B"]))
        printf "| %s | %s | %s | %.2f | %.2f-%.2f | %s | %s | %s ; %s | %s | %s |\n", sp[1], sp[2] == "1" ? "yes" : "no",
            unit[metric[sp[1]]], med(rl), mm(rl, "min"), mm(rl, "max"), med(vals[k, "A"]), med(vals[k, "B"]),
            pr[k, "A"], pr[k, "B"], also, target[sp[1]] } }' "$log"
    echo
    echo "TLS: measured $(date -u +%Y-%m-%dT%H:%MZ), ROUNDS=$ROUNDS, DURATION=$DURATION, HS_CLIENTS=$HS_CLIENTS, IDLE_CONNS=$IDLE_CONNS, one worker each, TLS 1.3, EC P-256 certificate, pinned rows with PIN=1 (server on CPU 1, clients and backend on CPU 0)."
}
table | tee "${TLS_TABLE:-/dev/null}"
