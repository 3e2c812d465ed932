/*
 * log.h - the one logging facade: syslog or stderr.
 *
 * log_warn() appends strerror(errno); log_warnx() does not. fatal() and
 * fatalx() exit(1) and are for start-up only, never inside a callback.
 * Messages are plain text; callers escape untrusted data first.
 */
#ifndef SPFGUARD_LOG_H
#define SPFGUARD_LOG_H

#include <stdbool.h>

void log_init(const char *ident, bool to_stderr, bool debug);
/* "mail", "daemon", "local0".."local7"; -1 for an unknown name */
int log_facility(const char *name);
void log_set_facility(int facility);
/* Drop info messages (warnings still go out): for tools. */
void log_set_quiet(bool);
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
