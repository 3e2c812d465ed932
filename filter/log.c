/*
 * log.c - the logging facade: syslog by default, stderr in the foreground.
 *
 * Callers pass text that is already safe to print; this module does not
 * escape. Debug messages are dropped unless debug was asked for.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

static bool log_stderr = true;
static bool log_verbose;
static bool log_quiet; /* no info messages (tools) */
static const char *log_ident = "spfguard";
static int log_fac = LOG_MAIL;

int
log_facility(const char *name)
{
	static const struct {
		const char *name;
		int fac;
	} names[] = {
	    {"mail", LOG_MAIL},
	    {"daemon", LOG_DAEMON},
	    {"local0", LOG_LOCAL0},
	    {"local1", LOG_LOCAL1},
	    {"local2", LOG_LOCAL2},
	    {"local3", LOG_LOCAL3},
	    {"local4", LOG_LOCAL4},
	    {"local5", LOG_LOCAL5},
	    {"local6", LOG_LOCAL6},
	    {"local7", LOG_LOCAL7},
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, name) == 0)
			return names[i].fac;
	return -1;
}

/* log_set_facility - used by the next log_init() to syslog */
void
log_set_facility(int facility)
{
	if (facility >= 0)
		log_fac = facility;
}

void
log_set_quiet(bool quiet)
{
	log_quiet = quiet;
}

void
log_init(const char *ident, bool to_stderr, bool debug)
{
	log_ident = ident;
	log_stderr = to_stderr;
	log_verbose = debug;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, log_fac);
}

/* vlog - write one message at a priority, with an optional errno text */
static void
vlog(int pri, int errnum, const char *fmt, va_list ap)
{
	char msg[2048];

	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_stderr) {
		if (errnum != 0)
			(void)fprintf(stderr, "%s: %s: %s\n", log_ident, msg,
			    strerror(errnum));
		else
			(void)fprintf(stderr, "%s: %s\n", log_ident, msg);
		return;
	}
	if (errnum != 0)
		syslog(pri, "%s: %s", msg, strerror(errnum));
	else
		syslog(pri, "%s", msg);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_quiet)
		return;
	va_start(ap, fmt);
	vlog(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_WARNING, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vlog(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
