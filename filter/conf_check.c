/*
 * conf_check.c - the checkers of single option values: 0 when the value
 * is acceptable, or -1 with the reason in err. Pure string checks, no
 * libconfig; conf.c's option table points at them.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_check.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "spf.h"
#include "spf_macro.h"

#define LETTERS	   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define NAME_CHARS LETTERS "0123456789-_."

static int
fail(char *err, size_t len, const char *why)
{
	(void)snprintf(err, len, "%s", why);
	return -1;
}

/* host_ok - a plausible host name: letters, digits, '-', '_', '.' */
static bool
host_ok(const char *v)
{
	size_t n = strlen(v);

	return n > 0 && n <= 253 && strspn(v, NAME_CHARS) == n && v[0] != '.' &&
	    v[0] != '-';
}

int
conf_check_socket(const char *v, char *err, size_t len)
{
	const char *p, *at;
	unsigned char tmp[16];
	int family;
	long port;
	char *end;

	if (strncmp(v, "unix:", 5) == 0) {
		if (v[5] != '/')
			return fail(err, len,
			    "unix:PATH needs an absolute path");
		if (strlen(v + 5) >=
		    sizeof(((struct sockaddr_un *)0)->sun_path))
			return fail(err, len, "socket path too long");
		return 0;
	}
	if (strncmp(v, "inet:", 5) == 0) {
		family = AF_INET;
		p = v + 5;
	} else if (strncmp(v, "inet6:", 6) == 0) {
		family = AF_INET6;
		p = v + 6;
	} else
		return fail(err, len,
		    "expected inet:PORT@HOST, inet6:PORT@HOST or unix:PATH");
	errno = 0;
	port = strtol(p, &end, 10);
	if (end == p || (*end != '@' && *end != '\0') || errno != 0 ||
	    port < 1 || port > 65535) {
		(void)snprintf(err, len,
		    "expected a port 1..65535 after \"inet%s:\"",
		    family == AF_INET ? "" : "6");
		return -1;
	}
	if ((at = end)[0] == '\0' || at[1] == '\0') {
		(void)snprintf(err, len,
		    "no @HOST (@%s listens on every address)",
		    family == AF_INET ? "0.0.0.0" : "::");
		return -1;
	}
	/* a name has a letter: "127.0.0.1" after inet6: is a mistake */
	if (inet_pton(family, at + 1, tmp) != 1 &&
	    (!host_ok(at + 1) || strpbrk(at + 1, LETTERS) == NULL)) {
		(void)snprintf(err, len,
		    "\"%.64s\" is not an IPv%d address or a host name", at + 1,
		    family == AF_INET ? 4 : 6);
		return -1;
	}
	return 0;
}

int
conf_check_path(const char *v, char *err, size_t len)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	if (v[0] != '/' || *p != '\0' || strlen(v) >= PATH_MAX)
		return fail(err, len, "expected an absolute path");
	return 0;
}

int
conf_check_account(const char *v, char *err, size_t len)
{
	size_t n = strlen(v);

	if (n == 0 || n > 32 || v[0] == '-' || strspn(v, NAME_CHARS) != n)
		return fail(err, len, "not a user or group name");
	return 0;
}

int
conf_check_facility(const char *v, char *err, size_t len)
{
	if (log_facility(v) >= 0)
		return 0;
	return fail(err, len, "expected mail, daemon or local0..local7");
}

/* conf_check_resolver - the forms the DNS layer takes */
int
conf_check_resolver(const char *v, char *err, size_t len)
{
	char addr[80];

	return dns_resolver_parse(v, addr, sizeof(addr), err, len);
}

int
conf_check_engine(const char *v, char *err, size_t len)
{
	if (spf_engine_find(v) != NULL)
		return 0;
	(void)snprintf(err, len, "unknown engine (this build has: %s)",
	    spf_engine_names());
	return -1;
}

int
conf_check_hostname(const char *v, char *err, size_t len)
{
	if (host_ok(v))
		return 0;
	return fail(err, len, "not a host name");
}

int
conf_check_explanation(const char *v, char *err, size_t len)
{
	char why[160];

	if (spf_macro_check(v, strlen(v), true, why, sizeof(why)) == 0)
		return 0;
	(void)snprintf(err, len, "not an SPF macro-string: %s", why);
	return -1;
}

/* check_token - an RFC 2045 token, as RFC 8601 wants an authserv-id */
int
conf_check_token(const char *v, char *err, size_t len)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?=", *p) != NULL)
			break;
	if (p == v || *p != '\0' || p - v > 255) {
		(void)snprintf(err, len,
		    "not a token (no spaces, controls or ()<>@,;:\\\"/[]?=)");
		return -1;
	}
	return 0;
}

/* check_header_name - RFC 5322 field name: printable, no ':' */
int
conf_check_header_name(const char *v, char *err, size_t len)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == ':')
			break;
	if (p == v || *p != '\0' || p - v > 76)
		return fail(err, len, "not a header field name");
	return 0;
}

int
conf_check_store_backend(const char *v, char *err, size_t len)
{
	if (strcmp(v, "lmdb") == 0 || strcmp(v, "redis") == 0)
		return 0;
	return fail(err, len, "expected lmdb or redis");
}

int
conf_check_on_error(const char *v, char *err, size_t len)
{
	if (strcmp(v, "accept") == 0 || strcmp(v, "tempfail") == 0)
		return 0;
	return fail(err, len,
	    "expected accept (fail open) or tempfail (fail closed)");
}

/* conf_check_redis_host - a host name, an address or unix:/PATH */
int
conf_check_redis_host(const char *v, char *err, size_t len)
{
	struct in6_addr a;

	if (strncmp(v, "unix:", 5) == 0)
		return conf_check_path(v + 5, err, len);
	if (host_ok(v) || inet_pton(AF_INET6, v, &a) == 1)
		return 0;
	return fail(err, len, "expected a host name, an address or unix:/PATH");
}

/* conf_check_key_prefix - printable, no spaces, short */
int
conf_check_key_prefix(const char *v, char *err, size_t len)
{
	const char *p;

	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			break;
	if (*p != '\0' || p - v > 32)
		return fail(err, len,
		    "expected at most 32 printable characters, no spaces");
	return 0;
}

int
conf_check_metrics_listen(const char *v, char *err, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	return metrics_listen_parse(v, &ss, &sl, err, len);
}
