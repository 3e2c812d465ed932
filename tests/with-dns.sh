#!/bin/sh
# with-dns.sh - run a command next to a private test DNS server.
#
#	with-dns.sh ZONE.json COMMAND [ARG ...]
#
# Copies ZONE.json to a temporary directory, starts tests/dnsserver.py on a
# free port of 127.0.0.1, and runs COMMAND with DNS_PORT, DNS_ZONE (the live
# zone file: edit it to change answers) and DNS_QUERYLOG in the
# environment. The server is stopped by its pid afterwards, and lives at
# most 10 minutes in any case. Exits with COMMAND's status.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON3:-/usr/bin/python3}
zone=$1; shift

tmp=$(mktemp -d "${TMPDIR:-/tmp}/spfguard-dns.XXXXXX") || exit 99
cp "$zone" "$tmp/zone.json" || exit 99
"$py" "$here/dnsserver.py" --zone "$tmp/zone.json" --port 0 \
	--portfile "$tmp/port" --querylog "$tmp/query.log" --lifetime 600 \
	2>"$tmp/server.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

i=0
while [ ! -s "$tmp/port" ]; do
	i=$((i + 1))
	if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "Bail out! test DNS server did not start" >&2
		cat "$tmp/server.err" >&2
		exit 99
	fi
	sleep 0.1
done
DNS_PORT=$(cat "$tmp/port")
DNS_ZONE=$tmp/zone.json
DNS_QUERYLOG=$tmp/query.log
export DNS_PORT DNS_ZONE DNS_QUERYLOG
"$@"
