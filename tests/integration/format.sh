#!/bin/bash
# Every C source and header is formatted with the repo's .clang-format.
cd "$(dirname "$0")/../.."
source tests/lib.sh
if ! command -v clang-format >/dev/null; then
    skip "sources are clang-formatted" "clang-format is not installed"
    exit 0
fi
bad=()
while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find src include agent tests -name '*.[ch]')
if [ ${#bad[@]} -eq 0 ]; then
    ok "sources are clang-formatted"
else
    not_ok "sources are clang-formatted"
    diag "run 'make format'; not formatted: ${bad[*]}"
fi
done_testing
