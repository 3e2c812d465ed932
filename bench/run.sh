#!/bin/sh
# run.sh - run the SPF benchmark against a private test DNS server.
#	run.sh SECONDS
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-5}
exec sh "$here/../tests/with-dns.sh" "$here/zone.json" sh -c '
	./spfbench --dns "127.0.0.1:$DNS_PORT" --seconds "$1" --threads 1 &&
	./spfbench --dns "127.0.0.1:$DNS_PORT" --seconds "$1" --threads 2
' run "$secs"
