/*
 * tap.h - a few lines of TAP for the C unit tests.
 */
#ifndef SPFGUARD_TAP_H
#define SPFGUARD_TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

#define TAP_OK(cond, ...)                                                      \
	do {                                                                   \
		tap_n++;                                                       \
		if (!(cond))                                                   \
			tap_failed++;                                          \
		(void)printf("%sok %d - ", (cond) ? "" : "not ", tap_n);       \
		(void)printf(__VA_ARGS__);                                     \
		(void)printf("\n");                                            \
	} while (0)

#define TAP_DONE()                                                             \
	do {                                                                   \
		(void)printf("1..%d\n", tap_n);                                \
		return tap_failed == 0 ? 0 : 1;                                \
	} while (0)

#endif
