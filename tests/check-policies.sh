#!/bin/sh
# check-policies.sh - every file in policies/ passes `spfguard -n` and
# `spfguardctl check` (TAP), and a broken file fails both with file:line.
top=${TESTS_SRCDIR:-.}/..
bin=${SPFGUARD_BIN:-../filter}
n=0 bad=0
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; bad=$((bad + 1)); fi
}
for f in "$top"/policies/*.conf; do
	out=$("$bin/spfguard" -n -c "$f" 2>&1)
	[ "$out" = "configuration OK" ]; ok $? "spfguard -n $(basename "$f"): $out"
	out=$("$bin/spfguardctl" check -c "$f" 2>&1)
	[ "$out" = "configuration OK" ]; ok $? "spfguardctl check $(basename "$f"): $out"
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spfguard-policy.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
printf 'socket = "inet:8891@127.0.0.1";\nrules = (\n  { name = "x"; action = "explode"; },\n  { name = "y"; match = { spf = "maybe"; }; action = "accept"; }\n);\n' >"$tmp/broken.conf"
out=$("$bin/spfguard" -n -c "$tmp/broken.conf" 2>&1); rc=$?
[ "$rc" -eq 1 ] && echo "$out" | grep -q "broken.conf:3:" && echo "$out" | grep -q "broken.conf:4:"
ok $? "spfguard -n on a broken file: exit $rc, both errors with file:line"
out=$("$bin/spfguardctl" check -c "$tmp/broken.conf" 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(echo "$out" | grep -c 'broken.conf:[34]:')" -eq 2 ]
ok $? "spfguardctl check on a broken file: exit $rc"
"$bin/spfguard" -f -c "$tmp/broken.conf" >/dev/null 2>&1; rc=$?
[ "$rc" -eq 1 ]; ok $? "a broken file never starts a daemon (exit $rc)"
out=$("$bin/spfguardctl" options 2>&1); rc=$?
missing=""
for key in socket decision_log dns.timeout_ms spf.deadline_ms headers.authserv_id rules policy_sets; do
	echo "$out" | grep -q "^$key " || missing="$missing $key"
done
[ "$rc" -eq 0 ] && [ -z "$missing" ]; ok $? "spfguardctl options describes every option from the loader's table${missing:+ (missing:$missing)}"
echo "1..$n"
[ "$bad" -eq 0 ]
