#!/bin/sh
# run-all.sh - the whole test suite, as CI runs it, from a clean checkout.
#
# Installs the Debian packages the build and the tests need (when missing:
# packaging/debian-build-deps, then packaging/debian-test-deps and
# tests/fuzz/debian-fuzz-deps), then builds and runs `make check` twice in
# separate build directories: once plain with warnings as errors, once
# under AddressSanitizer and UndefinedBehaviorSanitizer; then each fuzz
# target for 5 s (`make fuzz-smoke`, clang, counted one case per target);
# then the benchmarks' smoke run (`make -C bench smoke`, one case); then
# `make distcheck`. Prints a final line "N passed, N failed, N
# skipped" counted over every TAP case, and exits non-zero if anything
# failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
jobs=$(nproc 2>/dev/null || echo 2)

# 1. dependencies
missing=""
for p in $(cat packaging/debian-build-deps); do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "== installing:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "run as root, or install:$missing" >&2
		exit 1
	fi
	apt-get update -qq >/dev/null &&
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
		{ echo "apt-get install failed" >&2; exit 1; }
fi

# the end-to-end tests' packages (Postfix, swaks, miltertest), without
# questions and without starting the system Postfix
sh tests/install-test-deps.sh || { echo "test dependencies missing" >&2; exit 1; }
# clang and libFuzzer for the fuzz targets' smoke run
sh tests/install-test-deps.sh tests/fuzz/debian-fuzz-deps ||
	{ echo "fuzzing dependencies missing" >&2; exit 1; }

# 2. generate the build system
./autogen.sh >/dev/null 2>&1 || { ./autogen.sh; echo "autogen.sh failed" >&2; exit 1; }

passed=0 failed=0 skipped=0

# count - add the `make check` summaries (tests/test-suite.log, and
# tests/fuzz/test-suite.log: the fuzz regressions and seeds replayed) to
# the totals
count() {
	count_log "$1/tests/test-suite.log"
	# tests/fuzz runs after tests: missing when tests failed (counted)
	[ -f "$1/tests/test-suite.log" ] && count_log "$1/tests/fuzz/test-suite.log"
}

count_log() {
	log=$1
	if [ ! -f "$log" ]; then
		failed=$((failed + 1))
		return
	fi
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -n1)
	f=$(sed -n 's/^# FAIL: *//p' "$log" | head -n1)
	e=$(sed -n 's/^# ERROR: *//p' "$log" | head -n1)
	x=$(sed -n 's/^# XPASS: *//p' "$log" | head -n1)
	s=$(sed -n 's/^# SKIP: *//p' "$log" | head -n1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0} + ${x:-0}))
	skipped=$((skipped + ${s:-0}))
}

# build - configure in a fresh directory, build, make check
build() {
	dir=$1; shift
	echo "== $dir: configure $*"
	rm -rf "$dir" && mkdir -p "$dir" || return 1
	(cd "$dir" && "$top/configure" -q "$@" >configure.out 2>&1) ||
		{ cat "$dir/configure.out"; failed=$((failed + 1)); return 1; }
	(cd "$dir" && make -j"$jobs" >make.out 2>&1) ||
		{ tail -n 40 "$dir/make.out"; failed=$((failed + 1)); return 1; }
	(cd "$dir" && make -j"$jobs" check >check.out 2>&1)
	grep -E '^(FAIL|ERROR|XPASS)' "$dir/check.out" | head -n 40
	sed -n '/^# TOTAL/,/^# ERROR/p' "$dir/check.out"
	count "$dir"
}

build _build --enable-werror
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	build _build-asan --enable-werror --enable-sanitizers

# every fuzz target built with clang and libFuzzer, run 5 s each: one
# "ok - fuzz_NAME" or "not ok - fuzz_NAME" line per target (tests/fuzz)
echo "== fuzz-smoke"
(cd _build && make fuzz-smoke >fuzz-smoke.out 2>&1)
grep -E '^(not )?ok - fuzz_|^#   ' _build/fuzz-smoke.out
fp=$(grep -c '^ok - fuzz_' _build/fuzz-smoke.out)
ff=$(grep -c '^not ok - fuzz_' _build/fuzz-smoke.out)
passed=$((passed + fp))
failed=$((failed + ff))
if [ "$fp" -eq 0 ] && [ "$ff" -eq 0 ]; then
	tail -n 20 _build/fuzz-smoke.out
	failed=$((failed + 1))
	echo "fuzz-smoke: FAILED"
fi

# the benchmarks, seconds each and no thresholds, so that they keep
# building and running (bench/README.md): one case
echo "== bench-smoke"
if (cd _build && make -C bench smoke >bench-smoke.out 2>&1); then
	passed=$((passed + 1))
	echo "bench-smoke: ok"
else
	tail -n 30 _build/bench-smoke.out
	failed=$((failed + 1))
	echo "bench-smoke: FAILED"
fi

echo "== distcheck"
if (cd _build && make -j"$jobs" distcheck >distcheck.out 2>&1); then
	passed=$((passed + 1))
	echo "distcheck: ok"
else
	tail -n 40 _build/distcheck.out
	failed=$((failed + 1))
	echo "distcheck: FAILED"
fi

if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
