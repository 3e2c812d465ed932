#!/bin/sh
# test_package.sh - the Debian package: built, installed, run, purged (TAP).
#
# From `make distdir` of this build (the contents of `make dist`), in a
# temporary directory, packaging/build-deb.sh builds the .deb with
# dpkg-buildpackage; the test then installs it with `dpkg -i` and checks
# the files, the conffiles and the system user; `spfguard -n` on the
# installed configuration; `systemd-analyze verify` of the installed unit;
# `logrotate -d` of the installed script; the manual pages through
# `man --warnings -l` (no groff warning) and spfguard.conf(5) against the
# installed `spfguardctl options`. Then it runs the installed daemon on a
# free loopback port twice: started by hand as root (it drops to the user
# spfguard itself), with a milter session through miltertest, the decision
# log rotated by the installed logrotate script (SIGUSR1 through the pid
# file) and another session; and as the unit starts it (systemd is not
# PID 1 here): ExecStartPre, then ExecStart as spfguard from the start
# without capabilities or new privileges (setpriv), a session, ExecReload
# and one more. Each time SIGTERM stops it. Last, it purges the package: no
# file, directory, user (if the package made it), systemd link or process
# is left. TEST_PACKAGE_DEB=FILE tests that .deb instead of building one.
#
# It needs root, and the packages of packaging/debian-package-deps
# (debhelper, logrotate, systemd, man-db, miltertest) besides the build
# dependencies; with CI=true it installs them (tests/install-test-deps.sh),
# elsewhere it skips, saying which are missing. It also skips when spfguard
# is installed on this machine, or when /etc/spfguard, /run/spfguard,
# /var/lib/spfguard or /var/log/spfguard exist (the purge would remove
# them). Whatever happens, the machine is left as it was found (a trap
# stops the daemon and purges the package). One run at a time (flock).
# Takes under a minute on 2 CPUs, half of it building the package.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

n=0
failed=0
skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}
ok() { # ok COND-STATUS TEXT [DIAGNOSTIC]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
	return 0
}
diag() { printf '%s\n' "$*" | sed 's/^/# /'; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root (dpkg -i, a system user)"

# 1. what the test needs
deplist=$top/packaging/debian-package-deps
missing=""
for p in $(grep -v '^[[:space:]]*#' "$deplist"); do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "${CI:-}" = true ] || skip_all "missing packages:$missing (sh tests/install-test-deps.sh packaging/debian-package-deps)"
	sh "$here/install-test-deps.sh" "$deplist" >&2 || skip_all "could not install:$missing"
fi
B=${ABS_TOP_BUILDDIR:-}
if [ -z "$B" ]; then
	[ -f "$top/Makefile" ] || skip_all "run it from make check (or set ABS_TOP_BUILDDIR to a configured build)"
	B=$top
fi
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$B/Makefile")
[ -n "$version" ] || skip_all "no PACKAGE_VERSION in $B/Makefile"

exec 9>/run/lock/spfguard-test-package.lock
flock -w 900 9 || skip_all "another test_package.sh holds /run/lock/spfguard-test-package.lock"

# pkg_state - dpkg's state of the spfguard package: installed,
# config-files, unpacked... or not-installed (also when dpkg never saw it)
pkg_state() {
	st=$(dpkg-query -W -f='${db:Status-Status}' spfguard 2>/dev/null)
	echo "${st:-not-installed}"
}
[ "$(pkg_state)" = not-installed ] ||
	skip_all "the spfguard package is on this machine already ($(pkg_state))"
for d in /etc/spfguard /run/spfguard /var/lib/spfguard /var/log/spfguard; do
	[ -e "$d" ] && skip_all "$d exists (a purge would remove it)"
done
user_existed=no
getent passwd spfguard >/dev/null && user_existed=yes

tmp=$(mktemp -d "${TMPDIR:-/tmp}/spfguard-pkg.XXXXXX") || exit 1
chmod 755 "$tmp"
daemon=""
cleanup() {
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		kill -TERM "$daemon" 2>/dev/null
		i=0
		while kill -0 "$daemon" 2>/dev/null && [ $i -lt 150 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$daemon" 2>/dev/null
	fi
	[ "$(pkg_state)" = not-installed ] || dpkg --purge spfguard >/dev/null 2>&1 || :
	# a user left by a failed purge, if the package made it (postinst's GECOS)
	if [ "$user_existed" = no ] &&
		[ "$(getent passwd spfguard | cut -d: -f5 | cut -d, -f1)" = "spfguard milter" ]; then
		userdel spfguard 2>/dev/null || :
		getent group spfguard >/dev/null && groupdel spfguard 2>/dev/null
	fi
	rm -rf /run/spfguard /var/log/spfguard /var/lib/spfguard /etc/spfguard
	[ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 2. build (TEST_PACKAGE_DEB=FILE tests that .deb instead)
absent=""
for p in $(grep -v '^[[:space:]]*#' "$top/packaging/debian-build-deps" | grep -e '-dev$'); do
	grep -q "^ *\(Build-Depends: *\)\?$p\( \|,\|$\)" "$top/packaging/debian/control" ||
		absent="$absent $p"
done
ok "$([ -z "$absent" ]; echo $?)" "every -dev package of debian-build-deps is in debian/control" \
	"missing from Build-Depends:$absent"

deb=${TEST_PACKAGE_DEB:-}
if [ -z "$deb" ]; then
	mkdir -p "$tmp/src" "$tmp/out"
	src=$tmp/src/spfguard-$version
	start=$(date +%s)
	# (automake takes distdir relative to the top build directory)
	if make -s -C "$B" distdir distdir="$(realpath -m --relative-to="$B" "$src")" \
		>"$tmp/distdir.log" 2>&1; then
		ok 0 "make distdir of the build"
	else
		ok 1 "make distdir of the build" "$(tail -n 20 "$tmp/distdir.log")"
	fi
	deb=$(sh "$top/packaging/build-deb.sh" "$src" "$tmp/out" 2>"$tmp/build.err" |
		grep '/spfguard_[^/]*\.deb$')
	ok "$([ -n "$deb" ] && [ -f "$deb" ]; echo $?)" \
		"dpkg-buildpackage builds the package ($(($(date +%s) - start)) s)" \
		"$(cat "$tmp/build.err")"
	if [ -z "$deb" ]; then
		echo "1..$n"
		exit 1
	fi
else
	diag "testing $deb (TEST_PACKAGE_DEB), not building one"
fi
diag "$(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"

# 3. install
if dpkg -i "$deb" >"$tmp/dpkg-i.log" 2>&1; then
	ok 0 "dpkg -i installs it"
else
	ok 1 "dpkg -i installs it" "$(cat "$tmp/dpkg-i.log")"
fi
[ "$(pkg_state)" = installed ]
ok $? "dpkg says spfguard is installed" "$(pkg_state)"

absent=""
for f in /usr/sbin/spfguard /usr/bin/spfguardctl /lib/systemd/system/spfguard.service \
	/etc/logrotate.d/spfguard /etc/spfguard/spfguard.conf \
	/usr/share/man/man8/spfguard.8.gz /usr/share/man/man5/spfguard.conf.5.gz \
	/usr/share/man/man1/spfguardctl.1.gz /usr/share/spfguard/policies/default.conf \
	/usr/share/spfguard/policies/reputation.conf; do
	[ -f "$f" ] || absent="$absent $f"
done
ok "$([ -z "$absent" ]; echo $?)" "binaries, unit, logrotate script, manual pages, policies and configuration in place" \
	"missing:$absent"
cmp -s /etc/spfguard/spfguard.conf /usr/share/spfguard/policies/default.conf
ok $? "the configuration is policies/default.conf"

conffiles=$(dpkg-query -W -f='${Conffiles}\n' spfguard)
echo "$conffiles" | grep -q '^ */etc/spfguard/spfguard.conf ' &&
	echo "$conffiles" | grep -q '^ */etc/logrotate.d/spfguard '
ok $? "the configuration and the logrotate script are conffiles" "$conffiles"

pw=$(getent passwd spfguard)
uid=$(echo "$pw" | cut -d: -f3)
shell=$(echo "$pw" | cut -d: -f7)
[ -n "$pw" ] && [ "$uid" -lt 1000 ] && case $shell in */nologin | */false) true ;; *) false ;; esac
ok $? "the system user spfguard exists, without a login shell" "$pw"

if [ -d /run/systemd/system ]; then
	systemctl is-active --quiet spfguard.service
	ok $? "systemd started spfguard.service" "$(systemctl status spfguard.service 2>&1 | tail -n 20)"
else
	diag "systemd is not PID 1 here: dpkg -i started no service (deb-systemd-invoke)"
fi

# 4. the installed files
out=$(/usr/sbin/spfguard -n -c /etc/spfguard/spfguard.conf 2>&1)
[ "$out" = "configuration OK" ]
ok $? "spfguard -n passes the installed configuration" "$out"
out=$(/usr/bin/spfguardctl check 2>&1)
[ "$out" = "configuration OK" ]
ok $? "spfguardctl check (default path) passes it" "$out"

out=$(systemd-analyze verify /lib/systemd/system/spfguard.service 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -z "$out" ]
ok $? "systemd-analyze verify of the installed unit says nothing" "exit $rc: $out"
grep -q '^NoNewPrivileges=yes' /lib/systemd/system/spfguard.service &&
	grep -q '^ProtectSystem=strict' /lib/systemd/system/spfguard.service &&
	grep -q '^User=spfguard' /lib/systemd/system/spfguard.service &&
	grep -q '^ExecStart=/usr/sbin/spfguard -f -c /etc/spfguard/spfguard.conf$' /lib/systemd/system/spfguard.service
ok $? "the unit runs /usr/sbin/spfguard as spfguard, NoNewPrivileges, ProtectSystem=strict"
[ -L /etc/systemd/system/multi-user.target.wants/spfguard.service ]
ok $? "the unit is enabled (multi-user.target.wants)"

out=$(logrotate -d /etc/logrotate.d/spfguard 2>&1)
rc=$?
! echo "$out" | grep -qi '^error' && [ $rc -eq 0 ]
ok $? "logrotate -d parses the installed script" "exit $rc: $(echo "$out" | grep -i error | head -n 5)"

for page in /usr/share/man/man8/spfguard.8.gz /usr/share/man/man5/spfguard.conf.5.gz \
	/usr/share/man/man1/spfguardctl.1.gz; do
	warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$warn" ] && MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q .
	ok $? "man -l $(basename "$page" .gz): rendered, no warning" "$warn"
done
page=$(MANWIDTH=200 man -l /usr/share/man/man5/spfguard.conf.5.gz 2>/dev/null)
absent=""
for o in $(/usr/bin/spfguardctl options | sed -n 's/^\([a-z_.0-9]*\) (.*/\1/p'); do
	echo "$page" | grep -q "^ *$o (" || absent="$absent $o"
done
count=$(/usr/bin/spfguardctl options | grep -c '^[a-z_.0-9]* (')
[ -z "$absent" ] && [ "$count" -gt 20 ]
ok $? "spfguard.conf(5) lists all $count options of spfguardctl options" "missing:$absent"

# 5. the installed daemon answers milter sessions, started by hand as root
# (it drops to spfguard itself), and started as the unit starts it
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hexport=$(printf '%04X' "$port")
log=/var/log/spfguard/decisions.log
unit=/lib/systemd/system/spfguard.service
listening() { grep -q "^ *[0-9]*: 0100007F:$hexport 00000000:0000 0A" /proc/net/tcp; }
start_daemon() { # start_daemon COMMAND...: in the background, $daemon its pid
	"$@" -p "inet:$port@127.0.0.1" >"$tmp/daemon.log" 2>&1 </dev/null &
	daemon=$!
	i=0
	while [ $i -lt 100 ] && kill -0 "$daemon" 2>/dev/null && ! listening; do
		sleep 0.1
		i=$((i + 1))
	done
	listening
}
stop_daemon() { # stop_daemon: SIGTERM (15 s, then SIGKILL); its exit status
	kill -TERM "$daemon"
	i=0
	while kill -0 "$daemon" 2>/dev/null && [ $i -lt 150 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$daemon" 2>/dev/null
	wait "$daemon"
	rc=$?
	daemon=""
	return $rc
}
cat >"$tmp/session.lua" <<'LUA'
-- one transaction from a trusted client (default.conf: accepted, no DNS)
dofile(dir .. "/common.lua")
run(function()
	local conn = open_conn()
	envelope(conn, "localhost", "127.0.0.1", "localhost", from,
	    {"postmaster@example.net"})
	message(conn, std_headers(from))
	mt.disconnect(conn)
end)
LUA
session() { # session SENDER
	miltertest -D "sock=inet:$port@127.0.0.1" -D "dir=$here/miltertest" \
		-D "from=$1" -s "$tmp/session.lua" >"$tmp/mt.out" 2>&1
}
decided() { # decided FILE SENDER: the file has its trusted-client decision
	grep "\"sender\":\"$2\"" "$1" 2>/dev/null | grep -q '"rule":"trusted-client"'
}
logged() { # logged SENDER: its decision reached decisions.log (5 s at most)
	i=0
	while ! decided $log "$1" && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	decided $log "$1"
}

start_daemon /usr/sbin/spfguard -f -c /etc/spfguard/spfguard.conf
ok $? "started as root, the installed daemon listens on 127.0.0.1:$port" "$(cat "$tmp/daemon.log")"
# the socket listens before the pid file is written: wait for it (5 s)
i=0
while [ "$(cat /run/spfguard/spfguard.pid 2>/dev/null)" != "$daemon" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ "$(cat /run/spfguard/spfguard.pid 2>/dev/null)" = "$daemon" ]
ok $? "it wrote its pid to /run/spfguard/spfguard.pid"
[ "$(ps -o user= -p "$daemon" | tr -d ' ')" = spfguard ]
ok $? "it runs as spfguard" "$(ps -o user=,group=,args= -p "$daemon")"
session pkg-one@example.org
ok $? "a miltertest session through it is answered" "$(cat "$tmp/mt.out")"
logged pkg-one@example.org && [ "$(stat -c %U $log)" = spfguard ]
ok $? "its decision is logged in $log (rule trusted-client), owned by spfguard" \
	"$(ls -l $log 2>&1; tail -n 2 $log 2>&1)"

if logrotate -f -s "$tmp/logrotate.state" /etc/logrotate.d/spfguard >"$tmp/logrotate.log" 2>&1; then
	ok 0 "logrotate -f with the installed script"
else
	ok 1 "logrotate -f with the installed script" "$(cat "$tmp/logrotate.log")"
fi
sleep 1
session pkg-two@example.org
ok $? "a second session after the rotation is answered" "$(cat "$tmp/mt.out")"
logged pkg-two@example.org && decided $log.1 pkg-one@example.org &&
	! decided $log pkg-one@example.org
ok $? "SIGUSR1 from the logrotate script: the old decision in decisions.log.1, the new one in a new decisions.log" \
	"$(ls -l /var/log/spfguard/ 2>&1)"
stop_daemon
rc=$?
[ $rc -eq 0 ] && [ ! -e /run/spfguard/spfguard.pid ]
ok $? "SIGTERM stops it: exit 0, pid file removed" "exit $rc; $(cat "$tmp/daemon.log")"

# As the unit runs it: the directories made as systemd makes them, then
# ExecStartPre and ExecStart as spfguard from the start, without
# capabilities or new privileges (setpriv; the namespaces and the system
# call filter need systemd as PID 1), then ExecReload.
as_unit() {
	umask 0027
	exec setpriv --reuid=spfguard --regid=spfguard --init-groups --no-new-privs \
		--inh-caps=-all --bounding-set=-all -- "$@"
}
rm -rf /run/spfguard
install -d -m 0750 -o spfguard -g spfguard /run/spfguard /var/lib/spfguard /var/log/spfguard
out=$( (as_unit $(sed -n 's/^ExecStartPre=//p' $unit)) 2>&1)
[ "$out" = "configuration OK" ]
ok $? "as the unit runs it: ExecStartPre passes" "$out"
start_daemon as_unit $(sed -n 's/^ExecStart=//p' $unit)
ok $? "ExecStart (as spfguard, no capabilities) listens on 127.0.0.1:$port" "$(cat "$tmp/daemon.log")"
[ "$(ps -o user= -p "$daemon" | tr -d ' ')" = spfguard ] &&
	grep -q 'CapEff:[[:space:]]*0*$' "/proc/$daemon/status"
ok $? "it runs as spfguard without capabilities" "$(ps -o user=,args= -p "$daemon"; grep Cap "/proc/$daemon/status")"
session pkg-three@example.org && logged pkg-three@example.org
ok $? "a session through it is answered and logged" "$(cat "$tmp/mt.out"; ls -l /var/log/spfguard/)"
out=$( (as_unit $(sed -n 's/^ExecReload=\(.*spfguard -n .*\)/\1/p' $unit)) 2>&1) &&
	kill -HUP "$daemon"
ok $? "ExecReload: the check passes, SIGHUP sent" "$out"
i=0
while ! grep -q "configuration reloaded" "$tmp/daemon.log" && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
grep -q "configuration reloaded" "$tmp/daemon.log" && session pkg-four@example.org &&
	logged pkg-four@example.org
ok $? "it reloads and answers the next session" "$(cat "$tmp/daemon.log" "$tmp/mt.out")"
stop_daemon
rc=$?
[ $rc -eq 0 ] && [ ! -e /run/spfguard/spfguard.pid ]
ok $? "SIGTERM stops it: exit 0, pid file removed" "exit $rc; $(cat "$tmp/daemon.log")"
diag "what it logged: $(cat "$tmp/daemon.log")"

# 6. purge
if dpkg --purge spfguard >"$tmp/purge.log" 2>&1; then
	ok 0 "dpkg --purge removes it"
else
	ok 1 "dpkg --purge removes it" "$(cat "$tmp/purge.log")"
fi
[ "$(pkg_state)" = not-installed ]
ok $? "dpkg knows nothing of spfguard any more" "$(pkg_state)"
left=""
for f in /usr/sbin/spfguard /usr/bin/spfguardctl /lib/systemd/system/spfguard.service \
	/etc/logrotate.d/spfguard /etc/spfguard /usr/share/spfguard /usr/share/doc/spfguard \
	/run/spfguard /var/lib/spfguard /var/log/spfguard \
	/usr/share/man/man8/spfguard.8.gz /etc/systemd/system/multi-user.target.wants/spfguard.service; do
	[ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
left="$left $(find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled \
	/var/lib/systemd/deb-systemd-user-helper-enabled -name '*spfguard*' 2>/dev/null | tr '\n' ' ')"
left=$(echo "$left" | tr -s ' ')
[ -z "${left# }" ]
ok $? "no file, directory or systemd link of it is left" "left:$left"
if [ "$user_existed" = no ]; then
	! getent passwd spfguard >/dev/null && ! getent group spfguard >/dev/null
	ok $? "the user and group spfguard it made are removed" "$(getent passwd spfguard; getent group spfguard)"
else
	getent passwd spfguard >/dev/null
	ok $? "the user spfguard, which it did not make, is kept"
fi
procs=""
for p in $(pgrep -x spfguard); do
	readlink "/proc/$p/exe" 2>/dev/null | grep -q '^/usr/sbin/spfguard' && procs="$procs $p"
done
[ -z "$procs" ]
ok $? "no /usr/sbin/spfguard process is left" "pids:$procs"

echo "1..$n"
[ "$failed" -eq 0 ]
