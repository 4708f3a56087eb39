#!/bin/sh
# make bench: scgi-lua against each installed peer (nginx, lighttpd; PEERS can add apache)
# with ../shared/bench/compare.sh, then the cost of Lua routing and balancing against plain
# prefix routing (alternating runs of the same rig). Prints a markdown table, writes it to
# spec/bench/RESULTS.md and into README.md between the bench markers. Not part of make test.
# The peer matrix runs twice: unpinned, and with the rig's PIN=1 (the gateway alone on CPU 1,
# wrk and the backend on CPU 0); each row lists the p99 of every round, so a spike in one
# round is visible instead of hidden in a median.
#   SCENARIOS="hello hello-c1 post64k big1m sendfile100m c1000"  ROUNDS=3  DURATION=10s
#   PINS="0 1" (0: unpinned, 1: pinned; PIN=1 alone means PINS=1)
# Then spec/bench/tls.sh (TLS termination beside nginx) for the same PINS, its table after the
# others; TLS=0 leaves it out.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
rig=${BENCH_RIG:-$here/../shared/bench}
[ -x "$rig/compare.sh" ] || { echo "bench rig not found at $rig (set BENCH_RIG)"; exit 1; }
SCENARIOS=${SCENARIOS:-"hello hello-c1 post64k big1m sendfile100m c1000"}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS:-"nginx lighttpd"}
if [ -n "${PIN:-}" ]; then PINS=${PINS:-$PIN}; else PINS=${PINS:-"0 1"}; fi
VARIANTS=${VARIANTS:-"lua-match balancer lua-balancer"}
export GATEWAY_NAME=scgi-lua
export GATEWAY_CMD="$here/spec/bench/gateway.sh {PORT} {BACKEND_PORT} {DATADIR} {RUNDIR} {WORKERS}"
log=$(mktemp)
table=$(mktemp)
one=$(mktemp)
tls=$(mktemp)
trap 'rm -f "$log" "$table" "$one" "$tls"' EXIT

for pin in $PINS; do
export PIN=$pin
for peer in $PEERS; do
    bin=$peer; [ "$peer" = apache ] && bin=apache2
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
        echo "skipping $peer: not installed (apt-get install $bin)"; continue
    fi
    for s in $SCENARIOS; do
        hdr=X-Sendfile; [ "$peer" = nginx ] && hdr=X-Accel-Redirect
        [ "$s" = sendfile100m ] && [ "$peer" = nginx ] && echo "(nginx serves sendfile100m through X-Accel-Redirect)"
        "$rig/compare.sh" custom "$peer" "$s" "$ROUNDS" 2>/dev/null >"$one"
        sed "s/^RATIO /RATIO pin=$pin /" "$one" >>"$log"
        grep '^RATIO' "$one" | sed "s/^RATIO /RATIO pin=$pin /"
        grep '^round ' "$one" | sed "s/^/  pin=$pin $peer $s /"
        # compare.sh reports p99 medians; the p50 ones (hello-c1's target) and every round's
        # p99 come from its round lines
        awk -v s="$s" -v peer="$peer" -v pin="$pin" '
            function med(list,   n, a, i, j, t) { n = split(list, a, " ")
                for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] + 0 < a[j-1] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
                return n ? ((n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : "-" }
            /^round [0-9]+ [AB]:/ && / rps=/ { for (i = 1; i <= NF; i++) {
                if ($i ~ /^p50_ms=/) { split($i, kv, "="); p[$3] = p[$3] " " kv[2] }
                if ($i ~ /^p99_ms=/) { split($i, kv, "="); q[$3] = q[$3] (q[$3] == "" ? "" : ",") sprintf("%.1f", kv[2]) } } }
            END { printf "P50 pin=%s %s %s %s %s %s %s\n", pin, s, peer, med(p["A:"]), med(p["B:"]),
                         q["A:"] == "" ? "-" : q["A:"], q["B:"] == "" ? "-" : q["B:"] }' "$one" >>"$log"
    done
done
done
unset PIN

# Lua routing / balancing cost: plain vs variant, alternating, same rig and backend
for v in $VARIANTS; do
    i=0
    while [ $i -lt "$ROUNDS" ]; do
        i=$((i + 1))
        a=$(GW_VARIANT=plain "$rig/bench.sh" custom hello 2>/dev/null | tail -1)
        b=$(GW_VARIANT=$v "$rig/bench.sh" custom hello 2>/dev/null | tail -1)
        echo "VARIANT $v round $i plain: $a"
        echo "VARIANT $v round $i $v: $b"
        echo "VRATIO $v $(echo "$b" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p') $(echo "$a" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')" >>"$log"
    done
done

# the same variants in user-space instructions per request: repeatable where req/s is not
VARIANTS="plain $VARIANTS" "$here/spec/bench/instructions.sh" 2000 | tee -a "$log"

# TLS termination beside nginx: its own rounds, its own table
if [ "${TLS:-1}" != 0 ]; then
    PINS="$PINS" ROUNDS="$ROUNDS" TLS_TABLE="$tls" bash "$here/spec/bench/tls.sh" | grep -v '^|\|^TLS: '
fi

{
    echo "| scenario | peer | pinned | scgi-lua / peer req/s (median) | min-max | scgi-lua p50 / p99 ms | peer p50 / p99 ms | p99 ms per round, scgi-lua ; peer | scgi-lua RSS kB | peer RSS kB |"
    echo "|---|---|---|---:|---:|---:|---:|---|---:|---:|"
    grep '^RATIO\|^P50' "$log" | awk '
        { sub(/^pin=/, "", $2) }
        $1 == "P50" { k = $3 "|" $4 "|" $2; a50[k] = $5; b50[k] = $6; a99[k] = $7; b99[k] = $8; next }
        { split($3, ab, "/"); s = $4; peer = ab[2]; k = s "|" peer "|" $2; order[++n] = k
          for (i = 5; i <= NF; i++) { split($i, kv, "="); v[k, kv[1]] = kv[2] } }
        END { for (i = 1; i <= n; i++) { k = order[i]; split(k, sp, "|")
            printf "| %s | %s | %s | %.2f | %.2f-%.2f | %s / %s | %s / %s | %s ; %s | %s | %s |\n", sp[1], sp[2],
                sp[3] == "1" ? "yes" : "no", v[k, "rps_ratio_median"],
                v[k, "rps_ratio_min"], v[k, "rps_ratio_max"], (k in a50) ? a50[k] : "-", v[k, "A_p99_median"],
                (k in b50) ? b50[k] : "-", v[k, "B_p99_median"], (k in a99) ? a99[k] : "-", (k in b99) ? b99[k] : "-",
                v[k, "A_rss_median"], v[k, "B_rss_median"] } }'
    if grep -q '^VRATIO\|^INSTR' "$log"; then
        echo
        echo "| routing (hello) | req/s vs plain prefix route (median of rounds) | user-space instructions per request (callgrind) |"
        echo "|---|---:|---:|"
        grep '^VRATIO\|^INSTR' "$log" | awk '
            $1 == "VRATIO" && $3 > 0 && $4 > 0 { r[$2] = r[$2] " " $3 / $4; seen[$2] = 1 }
            $1 == "INSTR" { ins[$2] = $3; seen[$2] = 1 }
            END { for (v in seen) {
                    med = "-"
                    if (v == "plain") med = "1 (reference)"
                    else if (r[v] != "") {
                        n = split(r[v], a, " ")
                        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
                        med = sprintf("%.3f", (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
                    }
                    printf "| %s | %s | %s |\n", v, med, (v in ins) ? ins[v] : "-" } }' | sort
    fi
    if [ -s "$tls" ]; then
        echo
        cat "$tls"
    fi
    echo
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs ($(uname -r)), ROUNDS=$ROUNDS, DURATION=${DURATION:-10s}, one worker each, pinned rows with PIN=1 (gateway on CPU 1, wrk and backend on CPU 0), ../shared/bench rig."
} >"$table"
cat "$table"
cp "$table" "$here/spec/bench/RESULTS.md"
if grep -q '<!-- bench:start -->' "$here/README.md"; then
    awk -v f="$table" '/<!-- bench:start -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
        /<!-- bench:end -->/ { skip = 0 } !skip { print }' "$here/README.md" >"$here/README.md.new" &&
        mv "$here/README.md.new" "$here/README.md"
fi
