#!/bin/sh
# test_dns.sh - test_dns against a private test DNS server
exec sh "${TESTS_SRCDIR:-.}/with-dns.sh" "${TESTS_SRCDIR:-.}/zones/empty.json" ./test_dns
