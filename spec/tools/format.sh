#!/bin/sh
# Formats the project's C files with clang-format and the repository's .clang-format.
#   spec/tools/format.sh [--check] [FILE...]
# Without FILE: core/*.{c,h}, spec/c/*.{c,h}, spec/fuzz/*.{c,h}. With --check nothing is
# written: each file clang-format would change is listed with the number of its lines that
# would change, and the exit status is 1 if there is any. CLANG_FORMAT names the binary
# (default clang-format-14 if installed, else clang-format): the style was measured with
# clang-format 14, and other versions format a few constructs differently, so another
# version is named in a warning.
set -u
cd "$(dirname "$0")/../.." || exit 2

check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
if [ -z "${CLANG_FORMAT:-}" ]; then
    CLANG_FORMAT=clang-format
    command -v clang-format-14 >/dev/null 2>&1 && CLANG_FORMAT=clang-format-14
fi
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
    echo "format.sh: $CLANG_FORMAT not found (Debian package clang-format; make lint installs it)" >&2
    exit 2
fi
case $("$CLANG_FORMAT" --version) in
*" version 14."*) ;;
*) echo "format.sh: warning: $("$CLANG_FORMAT" --version) is not clang-format 14" >&2 ;;
esac
[ $# -gt 0 ] || set -- core/*.c core/*.h spec/c/*.c spec/c/*.h spec/fuzz/*.c spec/fuzz/*.h

if [ $check = 0 ]; then
    exec "$CLANG_FORMAT" -i --style=file "$@"
fi

tmp=$(mktemp) || exit 2
trap 'rm -f "$tmp"' EXIT
files=0 bad=0 lines=0
for f in "$@"; do
    files=$((files + 1))
    if ! "$CLANG_FORMAT" --style=file "$f" >"$tmp"; then
        echo "format.sh: clang-format failed on $f" >&2
        exit 2
    fi
    cmp -s "$f" "$tmp" && continue
    # lines of the file that formatting would replace or remove (1 if it only adds lines)
    n=$(diff --changed-group-format='%<' --unchanged-group-format='' "$f" "$tmp" | wc -l)
    [ "$n" -gt 0 ] || n=1
    echo "$f: $n line(s) to reformat"
    bad=$((bad + 1))
    lines=$((lines + n))
done
if [ $bad -gt 0 ]; then
    echo "format: $bad of $files files need formatting ($lines lines); run spec/tools/format.sh"
    exit 1
fi
echo "format: $files files formatted"
