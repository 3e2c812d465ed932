/*
 * conf.h - configuration: daemon settings and policy, loaded from one or
 * more libconfig files (@include), validated whole, kept as an immutable
 * reference-counted snapshot.
 *
 * conf_load() returns a snapshot or NULL; on NULL, every error found is in
 * the errors buffer, one "file:line: message" per line. Unknown keys are
 * errors. A snapshot is never changed after load: a reload builds a new
 * one and swaps it in; sessions keep the one they started with (conf_ref /
 * conf_unref).
 */
#ifndef SPFGUARD_CONF_H
#define SPFGUARD_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "policy.h"

#define CONF_DEFAULT_SOCKET "inet:8891@127.0.0.1"

struct conf {
	int refs;
	char *file;

	/* daemon */
	char *socket;  /* inet:PORT@HOST, inet6:PORT@HOST,
			  unix:PATH */
	char *pidfile; /* NULL: none */
	char *user;    /* NULL: stay */
	char *group;
	int socket_mode;    /* unix socket permissions; -1: umask */
	char *socket_group; /* NULL: the process's */
	char *decision_log; /* NULL: none */
	char *syslog_facility;
	unsigned workers; /* most SPF worker threads */

	/* dns */
	char **resolvers; /* none: /etc/resolv.conf */
	size_t nresolvers;
	unsigned dns_timeout_ms;

	/* spf */
	char *spf_engine;
	unsigned spf_deadline_ms;
	char *receiver; /* %{r}, Received-SPF receiver= */
	char *default_explanation;
	bool helo_check;

	/* headers */
	char *authserv_id;
	bool add_auth_results;
	bool add_received_spf;
	bool remove_forged_ar;
	char *tag_header;

	struct policy *policy;
};

struct conf *conf_load(const char *path, struct buf *errors);
struct conf *conf_ref(struct conf *);
void conf_unref(struct conf *);

/* The option table as text (name, type, default, meaning), one option a
 * paragraph: for --help, spfguardctl and the man page. */
void conf_describe(struct buf *);

#endif
