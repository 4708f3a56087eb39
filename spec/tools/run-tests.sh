#!/bin/sh
# Runs every suite (C unit tests given as arguments, busted unit specs, busted black-box
# specs) and ends with one line "N passed, M failed[, K skipped]"; exits 1 on any failure.
cd "$(dirname "$0")/../.." || exit 2
passed=0 failed=0 skipped=0 broken=""
count() { # suite-name, output file
    p=$(grep -Eo '^[0-9]+ passed, [0-9]+ failed' "$2" | tail -1)
    b=$(grep -Eo '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$2" | tail -1)
    if [ -n "$b" ]; then
        set -- "$1" $(echo "$b" | tr -cs '0-9' ' ')
        passed=$((passed + $2)); failed=$((failed + $3 + $4)); skipped=$((skipped + $5))
        [ $(($3 + $4)) -eq 0 ] || broken="$broken $1"
    elif [ -n "$p" ]; then
        set -- "$1" $(echo "$p" | tr -cs '0-9' ' ')
        passed=$((passed + $2)); failed=$((failed + $3))
        [ "$3" -eq 0 ] || broken="$broken $1"
    else
        failed=$((failed + 1)); broken="$broken $1(no-summary)"
    fi
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# under SANITIZE=1 every gateway the specs start writes its reports here, checked at the end
mkdir -p "$out/san"
export ASAN_OPTIONS="log_path=$out/san/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$out/san/ubsan:print_stacktrace=1:halt_on_error=1"
for t in "$@"; do
    name=$(basename "$t" .bin)
    ./"$t" >"$out/$name" 2>&1; cat "$out/$name"; count "$name" "$out/$name"
done
luajit /usr/bin/busted -o plainTerminal >"$out/unit" 2>&1; cat "$out/unit"; count unit "$out/unit"
luajit /usr/bin/busted -o plainTerminal --run=integration >"$out/integration" 2>&1
cat "$out/integration"; count integration "$out/integration"
if [ -n "$(ls "$out/san" 2>/dev/null)" ]; then
    echo "sanitizer reports:"
    cat "$out"/san/*
    failed=$((failed + 1)); broken="$broken sanitizers"
fi
[ -z "$broken" ] || echo "failing suites:$broken"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
