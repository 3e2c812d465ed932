#!/bin/sh
# check-style.sh - every C file is as the checked-in .clang-format writes it
# (TAP: one line per file). Skips where clang-format is not installed.
# the tree: from TESTS_SRCDIR (make check), else from where this file is
top=${TESTS_SRCDIR:-$(dirname "$0")}/..
if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format not installed"
	exit 0
fi
cd "$top" || exit 1
[ -f filter/main.c ] || { echo "Bail out! not the source tree: $(pwd)"; exit 1; }
n=0 bad=0
for f in filter/*.c filter/*.h include/*.h tests/*.c tests/*.h tests/fuzz/*.c \
	tests/fuzz/*.h bench/*.c; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	if clang-format --style=file "$f" | cmp -s - "$f"; then
		echo "ok $n - $f"
	else
		echo "not ok $n - $f (run: clang-format -i $f)"
		bad=$((bad + 1))
	fi
done
echo "1..$n"
[ "$bad" -eq 0 ]
