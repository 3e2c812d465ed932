#!/bin/sh
# demo.sh - spfguardctl spf on an example zone served by a private test DNS
# server on 127.0.0.1 (the README's quick start).
here=$(cd "$(dirname "$0")" && pwd)
ctl=${SPFGUARDCTL:-$here/../filter/spfguardctl}
exec sh "$here/with-dns.sh" "$here/zones/demo.json" sh -c '
set -e
ctl=$1
run() { echo "\$ spfguardctl spf $*"; "$ctl" spf --dns "127.0.0.1:$DNS_PORT" "$@"; echo; }
run --ip 198.51.100.25 --helo mx.example.org --from alice@example.org
run --ip 192.0.2.99 --helo spoof.example.com --from alice@example.org
run --ip 203.0.113.7 --helo mail.example.net --from "" --json
' demo "$ctl"
