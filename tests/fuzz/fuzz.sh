#!/bin/sh
# fuzz.sh - build the fuzz targets with clang and libFuzzer, and run them.
#
#	fuzz.sh fuzz|fuzz-smoke|fuzz-merge|fuzz-build|fuzz-cov [TARGET...]
#
# Run from tests/fuzz/Makefile (`make fuzz` etc.), which sets FUZZ_SRCDIR,
# FUZZ_TOP_SRCDIR, FUZZ_TOP_BUILDDIR (for autoconf.h), FUZZ_CFLAGS and
# FUZZ_LIBS. Everything is built and kept under $FUZZ_WORK (default
# ./work): the project's library sources compiled again with
# -fsanitize=fuzzer-no-link,address,undefined into obj/, one binary per
# target in bin/, and per target a working corpus (corpus/NAME, which
# grows from run to run), crash artifacts (crashes/NAME) and the last
# run's log (logs/NAME.log). The checked-in corpus/NAME and
# regressions/NAME are read, never written, except by fuzz-merge.
#
#	fuzz		each target for FUZZ_SECONDS (default 60)
#	fuzz-smoke	each target for FUZZ_SECONDS (default 5): what CI runs
#	fuzz-merge	add the working corpus's inputs that bring new coverage
#			to the checked-in corpus (libFuzzer -merge=1)
#	fuzz-build	only build
#	fuzz-cov	which lines of filter/ the working corpus, the seeds and
#			the regressions reach: the targets built again with
#			clang's source coverage (no sanitizer) into cov/, each
#			input run once, llvm-cov's report per file in
#			cov/report.txt (lines, branches, functions)
#
# FUZZ_TARGETS (or the arguments) picks targets; FUZZ_PARALLEL of them
# run at once (default: the number of CPUs). Each
# run prints "ok - NAME: ..." or "not ok - NAME: ..." (a crash, a leak, a
# timeout, a broken invariant: the artifact's path and the first lines of
# the report follow). Exit status 0 when every target passed, 1 if one
# failed, 77 when clang or libFuzzer is not installed.
set -u
mode=${1:-fuzz}
[ $# -gt 0 ] && shift
src=${FUZZ_SRCDIR:?}
top=${FUZZ_TOP_SRCDIR:?}
topb=${FUZZ_TOP_BUILDDIR:?}
work=${FUZZ_WORK:-$(pwd)/work}
clang=${CLANG:-clang}
ncpu=$(nproc 2>/dev/null || echo 2)
par=${FUZZ_PARALLEL:-$ncpu}
case $mode in
fuzz-smoke) secs=${FUZZ_SECONDS:-5} ;;
*) secs=${FUZZ_SECONDS:-60} ;;
esac

targets="record macro spf ctx conf headers dns dnsbl logread cache"
libspf2=no
grep -q '^#define HAVE_LIBSPF2 1' "$topb/autoconf.h" 2>/dev/null && libspf2=yes
[ $libspf2 = yes ] && targets="$targets spf_libspf2"
[ -n "${FUZZ_TARGETS:-}" ] && targets=$FUZZ_TARGETS
[ $# -gt 0 ] && targets="$*"

san="-fsanitize=address,undefined -fno-sanitize-recover=all"
# a leak inside libconfig's scanner is libconfig's (lsan.supp)
LSAN_OPTIONS="suppressions=$src/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS UBSAN_OPTIONS
cflags="-g -O1 -fno-omit-frame-pointer $san -pthread -Wall -Wno-unused-parameter"
incs="-I$topb -I$top/include -I$top/filter ${FUZZ_CFLAGS:-}"

# build [DIR FLAGS] - the library once, then every target, into DIR/obj and
# DIR/bin (default $work) compiled with FLAGS (default $cflags)
build() {
	dir=${1:-$work}
	flags=${2:-$cflags}
	if ! command -v "$clang" >/dev/null 2>&1; then
		echo "fuzz: $clang not installed (apt-get install clang libclang-rt-14-dev)"
		exit 77
	fi
	mkdir -p "$dir/obj" "$dir/bin" || exit 1
	probe="$dir/obj/probe"
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe.c"
	if ! "$clang" -fsanitize=fuzzer "$probe.c" -o "$probe" >/dev/null 2>&1; then
		echo "fuzz: $clang cannot link libFuzzer (apt-get install libclang-rt-14-dev)"
		exit 77
	fi
	# the library: every module of filter/ but the programs' own files
	newest=$(ls -t "$top"/include/*.h "$top"/filter/*.h "$topb/autoconf.h" | head -n1)
	for c in "$top"/filter/*.c; do
		b=$(basename "$c" .c)
		case $b in
		main | milter | metrics_http | spfguardctl | ctl_*) continue ;;
		spf_libspf2) [ $libspf2 = yes ] || continue ;;
		esac
		o="$dir/obj/$b.o"
		[ -f "$o" ] && [ "$o" -nt "$c" ] && [ "$o" -nt "$newest" ] && continue
		echo "$c $o"
	done | xargs -r -n 2 -P "$par" sh -c \
		"$clang $flags -fsanitize=fuzzer-no-link $incs -c \"\$0\" -o \"\$1\" || exit 255" ||
		{ echo "fuzz: building the library failed"; exit 1; }
	rm -f "$dir/obj/libfuzz.a"
	ar rcs "$dir/obj/libfuzz.a" $(ls "$dir"/obj/*.o) || exit 1
	for t in $targets; do
		case $t in
		spf_libspf2) srcf=fuzz_spf.c def="-DFUZZ_ENGINE=\"libspf2\"" ;;
		*) srcf=fuzz_$t.c def= ;;
		esac
		echo "  CCLD     fuzz_$t"
		# shellcheck disable=SC2086
		"$clang" $flags -fsanitize=fuzzer $incs $def \
			"$src/$srcf" "$src/fuzz_util.c" "$dir/obj/libfuzz.a" \
			${FUZZ_LIBS:-} -o "$dir/bin/fuzz_$t" ||
			{ echo "fuzz: building fuzz_$t failed"; exit 1; }
	done
}

# dict_of - the dictionary a target uses, if any
dict_of() {
	case $1 in
	record | macro | spf | spf_libspf2) d=spf ;;
	*) d=$1 ;;
	esac
	[ -f "$src/dict/$d.dict" ] && echo "-dict=$src/dict/$d.dict"
}

# seeds_of - the checked-in corpus a target starts from
seeds_of() {
	case $1 in
	spf_libspf2) echo spf ;;
	*) echo "$1" ;;
	esac
}

# run_one - one target for $secs seconds; result line on stdout
run_one() {
	t=$1
	log="$work/logs/$t.log"
	mkdir -p "$work/corpus/$t" "$work/crashes/$t" "$work/logs"
	seeds="$src/corpus/$(seeds_of "$t")"
	regr=""
	[ -d "$src/regressions/$t" ] && regr="$src/regressions/$t"
	# shellcheck disable=SC2046
	"$work/bin/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 $(dict_of "$t") \
		-artifact_prefix="$work/crashes/$t/" \
		"$work/corpus/$t" "$seeds" $regr >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	took=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
	if [ $rc -eq 0 ]; then
		echo "ok - fuzz_$t: ${runs:-?} runs in ${secs} s (${took:-?}/s), corpus $(ls "$work/corpus/$t" | wc -l) + $(ls "$seeds" | wc -l) seeds"
	else
		echo "not ok - fuzz_$t: exit $rc, see $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz invariant|artifact_prefix|Test unit written|.*runtime error)' "$log" | head -n 8 | sed 's/^/#   /'
	fi
}

run_all() {
	out="$work/results.$$"
	: >"$out"
	n=0
	for t in $targets; do
		run_one "$t" >>"$out" &
		n=$((n + 1))
		if [ $n -ge "$par" ]; then
			wait
			n=0
		fi
	done
	wait
	cat "$out"
	rm -f "$out"
}

# coverage - run every input of each target once through a build with
# source coverage; llvm-cov's per-file report of filter/ in cov/report.txt
coverage() {
	llvm=$(dirname "$(readlink -f "$(command -v "$clang")")")
	for tool in llvm-profdata llvm-cov; do
		[ -x "$llvm/$tool" ] || { echo "fuzz: $llvm/$tool not found (apt-get install llvm)"; exit 77; }
	done
	cov="$work/cov"
	build "$cov" "-g -O1 -pthread -Wall -Wno-unused-parameter -fprofile-instr-generate -fcoverage-mapping"
	rm -rf "$cov/prof"
	mkdir -p "$cov/prof" "$cov/logs"
	objs=""
	for t in $targets; do
		mkdir -p "$work/corpus/$t"
		regr=""
		[ -d "$src/regressions/$t" ] && regr="$src/regressions/$t"
		# every input once (-runs=0); a crash here is reported by fuzz, not here
		LLVM_PROFILE_FILE="$cov/prof/$t.profraw" "$cov/bin/fuzz_$t" -runs=0 \
			-rss_limit_mb=2048 -timeout=10 "$work/corpus/$t" \
			"$src/corpus/$(seeds_of "$t")" $regr >"$cov/logs/$t.log" 2>&1
		rc=$?
		echo "  RUN      fuzz_$t: $(ls "$work/corpus/$t" | wc -l) + $(ls "$src/corpus/$(seeds_of "$t")" | wc -l) inputs (exit $rc)"
		# llvm-cov: the first binary, then -object for each other one
		objs="$objs${objs:+ -object} $cov/bin/fuzz_$t"
	done
	"$llvm/llvm-profdata" merge -sparse "$cov"/prof/*.profraw -o "$cov/all.profdata" || exit 1
	# shellcheck disable=SC2086
	"$llvm/llvm-cov" report -instr-profile="$cov/all.profdata" $objs \
		"$top"/filter/*.c >"$cov/report.txt" || exit 1
	cat "$cov/report.txt"
}

case $mode in
fuzz-cov)
	coverage
	;;
fuzz-build)
	build
	;;
fuzz | fuzz-smoke)
	build
	res=$(run_all)
	echo "$res"
	echo "$res" | grep -q '^not ok' && exit 1
	exit 0
	;;
fuzz-merge)
	build
	for t in $targets; do
		mkdir -p "$work/corpus/$t"
		"$work/bin/fuzz_$t" -merge=1 -rss_limit_mb=2048 -timeout=10 \
			"$src/corpus/$(seeds_of "$t")" "$work/corpus/$t" >"$work/logs/$t.merge.log" 2>&1 ||
			{ echo "not ok - fuzz_$t: merge failed, see $work/logs/$t.merge.log"; continue; }
		echo "ok - fuzz_$t: corpus/$(seeds_of "$t") has $(ls "$src/corpus/$(seeds_of "$t")" | wc -l) files"
	done
	;;
*)
	echo "usage: fuzz.sh fuzz|fuzz-smoke|fuzz-merge|fuzz-build|fuzz-cov [TARGET...]" >&2
	exit 2
	;;
esac
