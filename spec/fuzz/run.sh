#!/bin/sh
# run.sh [SECONDS] [TARGET...]: builds the libFuzzer harnesses in spec/fuzz with clang
# (ASan + UBSan) into build/fuzz/, replays every saved crasher in spec/fuzz/crashers/<target>/,
# then fuzzes each target for SECONDS (default 60; 0: replay only) from a temporary copy of
# its seed corpus, so the committed corpus never changes. A new crash is copied to
# crashers/<target>/ under the name of the property (or sanitizer report) that failed.
# Prints one line per target and "fuzz: N targets, M crashes"; exits 1 if anything crashed,
# 2 if the toolchain is missing.
set -u

cd "$(dirname "$0")/../.." || exit 2
SECS=${1:-60}
[ $# -gt 0 ] && shift
case $SECS in
'' | *[!0-9]*)
    echo "usage: spec/fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

FUZZ=spec/fuzz
OUT=build/fuzz
CC_FUZZ=${CC_FUZZ:-clang}
CFLAGS_FUZZ="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -I core -I/usr/include/luajit-2.1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

# target: the core files it links, the libraries, and its dictionary. The parser targets link
# only their parser; fuzz_conn is the whole gateway (every core file but main.c).
sources() {
    case $1 in
    fuzz_http) echo core/http.c core/buf.c core/util.c ;;
    fuzz_chunked) echo core/http.c core/buf.c core/util.c ;;
    fuzz_cgi_head) echo core/scgi.c core/buf.c core/util.c ;;
    fuzz_range) echo core/sendfile.c core/scgi.c core/http.c core/buf.c core/util.c ;;
    fuzz_conn) ls core/*.c | grep -v '^core/main\.c$' ;;
    *) return 1 ;;
    esac
}
libs() {
    case $1 in
    fuzz_conn) echo -Wl,-E -lev -lhttp_parser -lssl -lcrypto -lluajit-5.1 -lm ;; # -E: the FFI finds sg_ffi_*
    *) echo -lhttp_parser ;;
    esac
}
dict() {
    case $1 in
    fuzz_chunked) echo $FUZZ/fuzz_http.dict ;;
    *) echo "$FUZZ/$1.dict" ;;
    esac
}
TARGETS=${*:-fuzz_http fuzz_cgi_head fuzz_chunked fuzz_range fuzz_conn}

# ---- toolchain ----
mkdir -p $OUT || exit 2
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sg-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT INT TERM
if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
    echo "fuzz: $CC_FUZZ not found (apt-get install clang)" >&2
    exit 2
fi
cat >"$TMP/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
EOF
if ! $CC_FUZZ -fsanitize=fuzzer,address,undefined -o "$TMP/probe" "$TMP/probe.c" \
    >"$TMP/probe.log" 2>&1; then
    cat "$TMP/probe.log" >&2
    echo "fuzz: clang cannot link libFuzzer (apt-get install libclang-rt-14-dev)" >&2
    exit 2
fi

# Names a crash after what failed: the harness's property tag, else the sanitizer report and
# the first project frame ("query-outside-uri", "asan-heap-buffer-overflow-sg_cgi_parse").
crash_tag() { # LOG ARTIFACT
    tag=$(grep -ao 'fuzz check failed \[[a-z0-9-]*\]' "$1" | head -n 1 | sed 's/.*\[\(.*\)\]/\1/')
    if [ -z "$tag" ]; then
        kind=$(grep -aoE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+' "$1" |
            head -n 1 | sed -E 's/ERROR: ([A-Za-z]+): /\1-/; s/AddressSanitizer/asan/' |
            sed 's/LeakSanitizer-detected/leak/; s/libFuzzer-deadly-signal/signal/' |
            sed 's/libFuzzer/fuzzer/')
        grep -aq 'runtime error:' "$1" && kind=ubsan
        [ -z "$kind" ] && kind=$(basename "$2" | sed 's/-.*//')
        frame=$(grep -aE '#[0-9]+ 0x[0-9a-f]+ in [A-Za-z_][A-Za-z0-9_]* .*(core|spec/fuzz)/' "$1" |
            grep -av 'LLVMFuzzerTestOneInput' | head -n 1 | sed -E 's/.* in ([A-Za-z0-9_]+) .*/\1/')
        tag=$kind${frame:+-$frame}
    fi
    echo "$tag"
}

ntargets=0
crashes=0
for t in $TARGETS; do
    if ! src=$(sources "$t"); then
        echo "fuzz: unknown target $t" >&2
        exit 2
    fi
    ntargets=$((ntargets + 1))
    bin=$OUT/$t
    # rebuild when the harness, a linked core file or a header changed
    # shellcheck disable=SC2086 # $src is a list
    changed=$(find "$FUZZ/$t.c" $FUZZ/fuzz_common.h $src core/*.h -newer "$bin" 2>/dev/null)
    if [ ! -x "$bin" ] || [ -n "$changed" ]; then
        # shellcheck disable=SC2086
        if ! $CC_FUZZ $CFLAGS_FUZZ -o "$bin" $FUZZ/$t.c $src $(libs "$t") 2>"$TMP/$t.build"; then
            cat "$TMP/$t.build" >&2
            echo "fuzz: building $t failed" >&2
            exit 2
        fi
    fi

    # 1. regression: every saved crasher, one at a time, with every property enforced
    reg_total=0
    reg_fail=0
    known=
    for f in "$FUZZ/crashers/$t"/*; do
        [ -f "$f" ] || continue
        reg_total=$((reg_total + 1))
        if ! env -u SG_FUZZ_IGNORE "$bin" "$f" >"$TMP/$t.reg" 2>&1; then
            reg_fail=$((reg_fail + 1))
            tag=$(crash_tag "$TMP/$t.reg" "$f")
            case ,$known, in *,"$tag",*) ;; *) known=${known:+$known,}$tag ;; esac
            echo "  $t: still crashes: $f [$tag]"
        fi
    done
    crashes=$((crashes + reg_fail))

    if [ "$SECS" -eq 0 ]; then # replay only
        echo "$t: $reg_fail of $reg_total saved crashers still crash (no fuzzing: 0 seconds)"
        continue
    fi

    # 2. fuzz from a copy of the corpus; properties with a saved crasher are skipped, so the
    #    session looks for new bugs instead of finding the known ones again in a second
    #    (only harness properties can be skipped; a sanitizer report always stops the session)
    mkdir -p "$TMP/$t/corpus" "$TMP/$t/artifacts"
    [ -d "$FUZZ/corpus/$t" ] && cp "$FUZZ/corpus/$t"/* "$TMP/$t/corpus/" 2>/dev/null
    dictarg=
    [ -f "$(dict "$t")" ] && dictarg=-dict=$(dict "$t")
    ignore=${SG_FUZZ_IGNORE:-}${SG_FUZZ_IGNORE:+${known:+,}}$known
    # shellcheck disable=SC2086 # $dictarg is empty or one word
    SG_FUZZ_IGNORE=$ignore "$bin" -max_total_time="$SECS" -print_final_stats=1 -timeout=10 \
        -artifact_prefix="$TMP/$t/artifacts/" $dictarg "$TMP/$t/corpus" >"$TMP/$t.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/$t.log" | tail -n 1)
    units=$(sed -n 's/^stat::new_units_added: *//p' "$TMP/$t.log" | tail -n 1)
    new=0
    seen=0
    for a in "$TMP/$t/artifacts"/*; do
        [ -f "$a" ] || continue
        case $(basename "$a") in crash-* | leak-* | timeout-* | oom-*) ;; *) continue ;; esac
        seen=1
        tag=$(crash_tag "$TMP/$t.log" "$a")
        sum=$(sha1sum "$a" | cut -c1-8)
        if case ,$known, in *,$tag,*) true ;; *) false ;; esac; then
            echo "  $t: found the known crash [$tag] again (counted above if it still crashes)"
            continue
        fi
        mkdir -p "$FUZZ/crashers/$t"
        cp "$a" "$FUZZ/crashers/$t/$tag-$sum"
        new=$((new + 1))
        echo "  $t: NEW crash [$tag] saved as $FUZZ/crashers/$t/$tag-$sum"
        grep -aE 'fuzz check failed|ERROR: |runtime error:|SUMMARY:' "$TMP/$t.log" |
            head -n 3 | sed 's/^/    /'
    done
    if [ "$rc" -ne 0 ] && [ "$seen" -eq 0 ]; then
        new=1 # died without an artifact: show why
        echo "  $t: fuzzer exited with $rc and left no crash input:"
        tail -n 20 "$TMP/$t.log" | sed 's/^/    /'
    fi
    crashes=$((crashes + new))
    stopped=
    [ "$rc" -ne 0 ] && stopped=" (the session stopped at a crash)"
    echo "$t: ${execs:-0} executions in ${SECS}s$stopped, ${units:-0} new corpus units," \
        "$new new crashes, $reg_fail of $reg_total saved crashers still crash"
    [ -n "$ignore" ] && echo "  $t: properties skipped in the session: $ignore"
done
echo "fuzz: $ntargets targets, $crashes crashes"
[ "$crashes" -eq 0 ]
