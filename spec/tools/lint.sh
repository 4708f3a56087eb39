#!/bin/sh
# `make lint`: every static check, each reported in full, then one summary line
#   lint: N passed, M failed (format ok, luacheck ok, cycles FAILED, cppcheck ok)
# and exit status 1 if any failed. The checks:
#   format    spec/tools/format.sh --check: C files as .clang-format formats them
#   luacheck  luacheck with .luacheckrc over lua/, spec/ and examples/
#   cycles    spec/tools/cycles.sh: no include cycle among the core modules
#   cppcheck  cppcheck over core/*.c, severities error, warning and portability only (the
#             likely bugs: bounds, null, leaks, undefined behaviour, 32/64-bit); its style
#             class is left out, it is mostly false positives here (knownConditionTrueFalse)
# The tools come from `make lint` (LINT_PKGS); it is not part of `make test`.
set -u
cd "$(dirname "$0")/../.." || exit 2

passed=0 failed=0 summary=""
run() {
    name=$1
    shift
    echo "---- $name: $*"
    if "$@"; then
        passed=$((passed + 1))
        summary="$summary, $name ok"
    else
        failed=$((failed + 1))
        summary="$summary, $name FAILED"
    fi
}

run format sh spec/tools/format.sh --check
run luacheck luacheck --formatter plain --codes lua spec examples
run cycles sh spec/tools/cycles.sh core
run cppcheck cppcheck -q --std=c11 --enable=warning,portability --library=posix \
    --error-exitcode=1 --inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -I core \
    core/*.c

echo "lint: $passed passed, $failed failed (${summary#, })"
[ "$failed" = 0 ]
