#!/bin/sh
# options2man.sh - put the option table into spfguard.conf(5).
#
#	options2man.sh OPTIONS <TEMPLATE >PAGE
#
# OPTIONS is what `spfguardctl options` prints (conf_describe() in
# filter/conf.c: the loader's own table); TEMPLATE is the page with a line
# "@OPTIONS@" where the table goes. The table's text is plain, so it is
# escaped for roff here: backslashes, a leading dot or quote, and hyphens
# (written \- so that "-all" or "X-Spfguard-Tag" can be copied from the
# page). Its layout:
#
#	NAME (TYPE, default D)		an option: a tag line, then
#		MEANING			its meaning, indented by a tab
#	Some words:			a paragraph introducing...
#	  NAME (TYPE)			...keys of a rule, set, list or limit
#		MEANING			(indented in the page)
#
# Exit status: 0, or 1 when OPTIONS is missing or gives no option (a page
# without its table is an error, not a page).
set -u
[ $# -eq 1 ] && [ -s "$1" ] || {
	echo "usage: options2man.sh OPTIONS <TEMPLATE >PAGE (OPTIONS empty?)" >&2
	exit 1
}
exec awk -v optfile="$1" '
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	if (s ~ /^[.\047]/)
		s = "\\&" s
	return s
}
# tag - "name (type ...)" with the name in bold
function tag(s,    name, rest) {
	name = s; rest = ""
	if (match(s, / \(/)) {
		name = substr(s, 1, RSTART - 1)
		rest = substr(s, RSTART)
	}
	return "\\fB" esc(name) "\\fR" esc(rest)
}
function table(    n, i, l, para, nested) {
	n = 0
	while ((getline l < optfile) > 0)
		lines[++n] = l
	close(optfile)
	items = 0
	for (i = 1; i <= n; i++) {
		l = lines[i]
		if (l == "") {
			para = 0
		} else if (l ~ /^\t/) {
			sub(/^\t+/, "", l)
			print esc(l)
		} else if (l ~ /^  [^ ]/) {
			sub(/^ +/, "", l)
			if (!nested)
				print ".RS"
			nested = 1
			print ".TP"
			print tag(l)
			items++
		} else if (i < n && lines[i + 1] ~ /^\t/) {
			if (nested)
				print ".RE"
			nested = 0
			print ".TP"
			print tag(l)
			items++
		} else {
			if (nested)
				print ".RE"
			nested = 0
			if (!para)
				print ".PP"
			para = 1
			print esc(l)
		}
	}
	if (nested)
		print ".RE"
	return items
}
$0 == "@OPTIONS@" {
	if (table() == 0) {
		print "options2man.sh: no option in " optfile > "/dev/stderr"
		failed = 1
		exit 1
	}
	next
}
{ print }
END { if (failed) exit 1 }
'
