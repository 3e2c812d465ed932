#!/bin/sh
# rfc7208-diff.sh - the differential run: every RFC 7208 suite test under
# both engines; differences are reported as TAP comments, not failures
# (libspf2's are known and listed in tests/README).
exec "${PYTHON3:-/usr/bin/python3}" "${TESTS_SRCDIR:-.}/rfc7208.py" --diff builtin libspf2
