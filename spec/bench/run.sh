#!/bin/sh
# make bench: scgi-lua against each installed peer (nginx, lighttpd; PEERS can add apache)
# with ../shared/bench/compare.sh, then the cost of Lua routing and balancing against plain
# prefix routing (alternating runs of the same rig). Prints a markdown table, writes it to
# spec/bench/RESULTS.md and into README.md between the bench markers. Not part of make test.
#   SCENARIOS="hello hello-c1 post64k big1m sendfile100m c1000"  ROUNDS=3  DURATION=10s
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
rig=${BENCH_RIG:-$here/../shared/bench}
[ -x "$rig/compare.sh" ] || { echo "bench rig not found at $rig (set BENCH_RIG)"; exit 1; }
SCENARIOS=${SCENARIOS:-"hello hello-c1 post64k big1m sendfile100m c1000"}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS:-"nginx lighttpd"}
VARIANTS=${VARIANTS:-"lua-match balancer lua-balancer"}
export GATEWAY_NAME=scgi-lua
export GATEWAY_CMD="$here/spec/bench/gateway.sh {PORT} {BACKEND_PORT} {DATADIR} {RUNDIR} {WORKERS}"
log=$(mktemp)
table=$(mktemp)
one=$(mktemp)
trap 'rm -f "$log" "$table" "$one"' EXIT

for peer in $PEERS; do
    bin=$peer; [ "$peer" = apache ] && bin=apache2
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
        echo "skipping $peer: not installed (apt-get install $bin)"; continue
    fi
    for s in $SCENARIOS; do
        hdr=X-Sendfile; [ "$peer" = nginx ] && hdr=X-Accel-Redirect
        [ "$s" = sendfile100m ] && [ "$peer" = nginx ] && echo "(nginx serves sendfile100m through X-Accel-Redirect)"
        "$rig/compare.sh" custom "$peer" "$s" "$ROUNDS" 2>/dev/null >"$one"
        cat "$one" >>"$log"
        grep '^RATIO' "$one"
        # compare.sh reports p99 medians; the p50 ones (hello-c1's target) come from its rounds
        awk -v s="$s" -v peer="$peer" '
            function med(list,   n, a, i, j, t) { n = split(list, a, " ")
                for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] + 0 < a[j-1] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
                return n ? ((n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : "-" }
            /^round [0-9]+ [AB]:/ && / rps=/ { for (i = 1; i <= NF; i++) if ($i ~ /^p50_ms=/) { split($i, kv, "="); p[$3] = p[$3] " " kv[2] } }
            END { printf "P50 %s %s %s %s\n", s, peer, med(p["A:"]), med(p["B:"]) }' "$one" >>"$log"
    done
done

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

{
    echo "| scenario | peer | scgi-lua / peer req/s (median) | min-max | scgi-lua p50 / p99 ms | peer p50 / p99 ms | scgi-lua RSS kB | peer RSS kB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    grep '^RATIO\|^P50' "$log" | awk '
        $1 == "P50" { a50[$2 "|" $3] = $4; b50[$2 "|" $3] = $5; next }
        { split($2, ab, "/"); s = $3; peer = ab[2]; k = s "|" peer; order[++n] = k
          for (i = 4; i <= NF; i++) { split($i, kv, "="); v[k, kv[1]] = kv[2] } }
        END { for (i = 1; i <= n; i++) { k = order[i]; split(k, sp, "|")
            printf "| %s | %s | %.2f | %.2f-%.2f | %s / %s | %s / %s | %s | %s |\n", sp[1], sp[2], v[k, "rps_ratio_median"],
                v[k, "rps_ratio_min"], v[k, "rps_ratio_max"], (k in a50) ? a50[k] : "-", v[k, "A_p99_median"],
                (k in b50) ? b50[k] : "-", v[k, "B_p99_median"], v[k, "A_rss_median"], v[k, "B_rss_median"] } }'
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
    echo
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs ($(uname -r)), ROUNDS=$ROUNDS, DURATION=${DURATION:-10s}, one worker each, ../shared/bench rig."
} >"$table"
cat "$table"
cp "$table" "$here/spec/bench/RESULTS.md"
if grep -q '<!-- bench:start -->' "$here/README.md"; then
    awk -v f="$table" '/<!-- bench:start -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
        /<!-- bench:end -->/ { skip = 0 } !skip { print }' "$here/README.md" >"$here/README.md.new" &&
        mv "$here/README.md.new" "$here/README.md"
fi
