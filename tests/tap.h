/*
 * tap.h - a few lines of TAP for the C unit tests. Descriptions are kept
 * on one line: control characters print as '?', so that text under test
 * (folded headers, hostile input) cannot break the TAP stream.
 */
#ifndef SPFGUARD_TAP_H
#define SPFGUARD_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

static void __attribute__((format(printf, 2, 3)))
tap_line(int ok, const char *fmt, ...)
{
	char buf[2048], *p;
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (p = buf; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	(void)printf("%sok %d - %s\n", ok ? "" : "not ", ++tap_n, buf);
	if (!ok)
		tap_failed++;
}

#define TAP_OK(cond, ...) tap_line((cond) ? 1 : 0, __VA_ARGS__)

#define TAP_DONE()                                                             \
	do {                                                                   \
		(void)printf("1..%d\n", tap_n);                                \
		return tap_failed == 0 ? 0 : 1;                                \
	} while (0)

#endif
