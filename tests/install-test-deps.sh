#!/bin/sh
# install-test-deps.sh - install, as root and without questions, the Debian
# packages the end-to-end, miltertest and store tests need beyond the
# build (packaging/debian-test-deps): postfix, swaks, miltertest,
# python3-dnslib, python3-yaml, redis-server, ...; m4 makes the Sendmail
# test's .cf.  Sendmail itself is not installed (it conflicts with
# postfix): tests/e2e/sendmail.py downloads its packages (apt-get
# download, cached) and runs it unpacked.
#
# Idempotent: prints nothing and changes nothing when all are installed.
# Never leaves the system Postfix running or enabled: the tests run their own
# throwaway instances (postfix -c DIR) on loopback ports.  While installing,
# a policy-rc.d (if none exists) keeps the package from starting its
# service; afterwards, if this script installed postfix, its service is
# disabled, and if anything from it still runs (the default instance), it
# is stopped with `postfix stop`. The same holds for redis-server: the
# store test runs its own on a loopback port; the system one is disabled
# and, if running, stopped.
#
# Exit status: 0 when everything is installed, 1 when it cannot be (not
# root, apt-get failed).
set -u
here=$(cd "$(dirname "$0")" && pwd)
# another list may be given (tests/test_package.sh: packaging/debian-package-deps)
list=${1:-$here/../packaging/debian-test-deps}

missing=""
for p in $(grep -v '^[[:space:]]*#' "$list"); do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-test-deps.sh: run as root, or install:$missing" >&2
	exit 1
fi
echo "== installing test dependencies:$missing"

new_postfix=no
case " $missing " in *" postfix "*) new_postfix=yes ;; esac
new_redis=no
case " $missing " in *" redis-server "*) new_redis=yes ;; esac

# 1. no question from postfix's debconf, and no main.cf written
echo "postfix postfix/main_mailer_type select No configuration" |
	debconf-set-selections || exit 1

# 2. keep invoke-rc.d from starting services during the install
rcd=/usr/sbin/policy-rc.d
own_rcd=no
if [ ! -e "$rcd" ]; then
	printf '#!/bin/sh\n# install-test-deps.sh: no service starts during install\nexit 101\n' >"$rcd" &&
		chmod 755 "$rcd" && own_rcd=yes
fi
cleanup() { [ "$own_rcd" = yes ] && rm -f "$rcd"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp "${TMPDIR:-/tmp}/install-test-deps.XXXXXX") || exit 1
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	$missing; } >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	echo "install-test-deps.sh: apt-get install failed" >&2
	exit 1
fi
rm -f "$log"

# 3. the system Postfix stays off: not enabled at boot, not running
if [ "$new_postfix" = yes ]; then
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable postfix.service >/dev/null 2>&1 || :
		[ -d /run/systemd/system ] && systemctl stop postfix.service >/dev/null 2>&1
	fi
	command -v update-rc.d >/dev/null 2>&1 &&
		update-rc.d postfix disable >/dev/null 2>&1
	if /usr/sbin/postfix status >/dev/null 2>&1; then
		/usr/sbin/postfix stop >/dev/null 2>&1 || :
	fi
fi
# 4. the system redis-server too
if [ "$new_redis" = yes ]; then
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable redis-server.service >/dev/null 2>&1 || :
		[ -d /run/systemd/system ] && systemctl stop redis-server.service >/dev/null 2>&1
	fi
	command -v update-rc.d >/dev/null 2>&1 &&
		update-rc.d redis-server disable >/dev/null 2>&1
	pidfile=/run/redis/redis-server.pid
	if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		kill "$(cat "$pidfile")" 2>/dev/null || :
	fi
fi
if command -v ss >/dev/null 2>&1 && ss -Hltn 'sport = :25' 2>/dev/null | grep -q .; then
	echo "install-test-deps.sh: warning: something listens on port 25" >&2
fi
exit 0
