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
#include "dnsbl.h"
#include "policy.h"
#include "reputation.h"
#include "store.h"

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

	char *metrics_listen; /* NULL: no metrics page */

	/* store (reputation state) */
	char *store_backend; /* "lmdb" or "redis" */
	char *store_path;
	unsigned store_map_size_mb;
	char *redis_host;
	unsigned redis_port;
	char *redis_password;
	unsigned redis_db;
	unsigned redis_pool;
	unsigned store_timeout_ms;
	char *store_prefix;
	char *store_on_error; /* "accept" or "tempfail" */

	/* reputation */
	unsigned v4_prefix, v6_prefix; /* a client's network */
	bool history;
	unsigned hist_established_messages;
	unsigned hist_established_hours;
	unsigned hist_bad_refusals;
	unsigned hist_bad_percent;
	unsigned hist_expiry_days;
	unsigned grey_delay;
	unsigned grey_window;
	unsigned grey_expiry_days;
	struct rep_history_opts hist;  /* from the hist_ settings */
	struct rep_greylist_opts grey; /* from the grey_ settings */
	struct dnsbl_list *dnsbls;     /* DNSBLs, then RHSBLs */
	size_t ndnsbls;
	struct rate_limit *limits;
	size_t nlimits;
	bool uses_greylist; /* a rule greylists */

	struct policy *policy;
};

struct conf *conf_load(const char *path, struct buf *errors);

/* Does the configuration keep state in the store? */
bool conf_uses_store(const struct conf *);

/* The store settings, borrowed from the snapshot. */
void conf_store_opts(const struct conf *, struct store_opts *);

/* Do two snapshots open the same store? */
bool conf_same_store(const struct conf *, const struct conf *);

/* Fail closed (tempfail) when the store fails? */
bool conf_store_fail_closed(const struct conf *);
struct conf *conf_ref(struct conf *);
void conf_unref(struct conf *);

/* The option table as text (name, type, default, meaning), one option a
 * paragraph: for --help, spfguardctl and the man page. */
void conf_describe(struct buf *);

#endif
