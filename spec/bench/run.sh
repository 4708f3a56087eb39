#!/bin/sh
# make bench: scgi-lua against each installed peer (nginx, lighttpd; apache with
# PEERS="nginx lighttpd apache"), side by side with ../shared/bench/compare.sh, and a
# markdown table of median ratios. Not part of make test.
#   SCENARIOS="hello hello-c1 post64k big1m c1000"  ROUNDS=3  DURATION=10s
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
rig=${BENCH_RIG:-$here/../shared/bench}
[ -x "$rig/compare.sh" ] || { echo "bench rig not found at $rig (set BENCH_RIG)"; exit 1; }
SCENARIOS=${SCENARIOS:-"hello hello-c1 post64k big1m c1000"}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS:-"nginx lighttpd"}
export GATEWAY_NAME=scgi-lua
export GATEWAY_CMD="$here/spec/bench/gateway.sh {PORT} {BACKEND_PORT} {DATADIR} {RUNDIR} {WORKERS}"
log=$(mktemp)
for peer in $PEERS; do
    bin=$peer; [ "$peer" = apache ] && bin=apache2
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
        echo "skipping $peer: not installed (apt-get install $bin)"; continue
    fi
    for s in $SCENARIOS; do
        "$rig/compare.sh" custom "$peer" "$s" "$ROUNDS" 2>/dev/null | tee -a "$log" | grep '^RATIO' |
            sed "s|custom/|scgi-lua/|"
    done
done
echo
echo "| scenario | peer | scgi-lua/peer req/s (median) | min-max | scgi-lua p99 ms | peer p99 ms | scgi-lua RSS kB | peer RSS kB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
grep '^RATIO' "$log" | awk '{
    split($2, ab, "/"); s = $3; peer = ab[2]
    for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "| %s | %s | %.2f | %.2f-%.2f | %s | %s | %s | %s |\n", s, peer, v["rps_ratio_median"],
        v["rps_ratio_min"], v["rps_ratio_max"], v["A_p99_median"], v["B_p99_median"], v["A_rss_median"], v["B_rss_median"]
}'
rm -f "$log"
