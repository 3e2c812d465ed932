#!/bin/sh
# build-deb.sh - build the spfguard Debian package from released sources.
#
#	build-deb.sh SOURCE OUTDIR
#
# SOURCE is a `make dist` tarball (spfguard-VERSION.tar.gz) or the
# directory `make distdir` made. It is unpacked (or copied) into a
# temporary directory, its packaging/debian becomes debian/, and
# `dpkg-buildpackage -us -uc -b` runs there, so the build never writes into
# a checkout or a build tree. The .deb files are copied to OUTDIR and their
# paths printed, one a line; the build's output goes to OUTDIR/build-deb.log.
# Needs debhelper and the build dependencies (packaging/debian-build-deps,
# packaging/debian-package-deps); dpkg-buildpackage checks them.
#
# Exit status: 0 with the packages built, 1 otherwise (the end of the log is
# printed). Set KEEP_BUILD=1 to keep the temporary directory.
set -u
[ $# -eq 2 ] || { echo "usage: build-deb.sh SOURCE OUTDIR" >&2; exit 2; }
src=$1
out=$(cd "$2" && pwd) || exit 1
log=$out/build-deb.log

# a make, a make check or a distcheck around us must not leak into the build
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES DESTDIR CFLAGS CPPFLAGS LDFLAGS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/spfguard-deb.XXXXXX") || exit 1
cleanup() { [ "${KEEP_BUILD:-0}" = 1 ] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -d "$src" ]; then
	name=$(basename "$src")
	cp -a "$src" "$tmp/$name" || exit 1
else
	tar -C "$tmp" -xzf "$src" || exit 1
	name=$(basename "$src" .tar.gz)
	# the orig tarball a source build would want (not needed with -b)
	cp "$src" "$tmp/$(echo "$name" | sed 's/-\([^-]*\)$/_\1/').orig.tar.gz"
fi
dir=$tmp/$name
[ -d "$dir/packaging/debian" ] || {
	echo "build-deb.sh: $dir/packaging/debian is missing" >&2
	exit 1
}
cp -a "$dir/packaging/debian" "$dir/debian" || exit 1

# the changelog must name this release, or dpkg would call it another one
want=${name#spfguard-}
have=$(cd "$dir" && dpkg-parsechangelog -S Version) || exit 1
if [ "${have%-*}" != "$want" ]; then
	echo "build-deb.sh: packaging/debian/changelog is for $have, the sources are $want: add an entry" >&2
	exit 1
fi

jobs=$(nproc 2>/dev/null || echo 2)
if ! (cd "$dir" && nice -n 10 dpkg-buildpackage -us -uc -b -J"$jobs") >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	echo "build-deb.sh: dpkg-buildpackage failed (whole log: $log)" >&2
	exit 1
fi
found=no
for deb in "$tmp"/*.deb; do
	[ -f "$deb" ] || continue
	cp "$deb" "$out/" || exit 1
	echo "$out/$(basename "$deb")"
	found=yes
done
[ "$found" = yes ] || { echo "build-deb.sh: no .deb made" >&2; exit 1; }
exit 0
