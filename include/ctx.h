/*
 * ctx.h - per-connection and per-message state, and the transaction
 * driver: what to start, decide and write at each SMTP stage.
 *
 * The milter glue (milter.c) calls one ctx_* function per callback with
 * the facts copied out of libmilter, and translates what comes back. No
 * libmilter here. A struct conn lives from connect to close (ctx_close()
 * tolerates NULL); the message part is reset at every MAIL, abort and end
 * of message, and its decisions are written to the decision log then.
 *
 * The struct runtime is the process-wide state the daemon owns: the
 * current configuration snapshot (swapped on reload), the DNS layer, the
 * workers, the decision log and the reputation store. A connection keeps
 * the snapshot it started with.
 */
#ifndef SPFGUARD_CTX_H
#define SPFGUARD_CTX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "declog.h"
#include "dns.h"
#include "jobs.h"
#include "metrics.h"
#include "policy.h"
#include "spf.h"
#include "store.h"

struct runtime {
	pthread_mutex_t mu;
	struct conf *conf; /* current snapshot; under mu */
	struct dns_ctx *dns;
	struct jobs *jobs;
	struct declog *declog;	      /* NULL: no decision log */
	struct store *store;	      /* NULL: none configured or opened */
	struct metrics *metrics;      /* NULL: not counted */
	unsigned long next_conn;      /* under mu */
	unsigned long sessions;	      /* in flight; under mu */
	unsigned long store_failures; /* under mu */
	time_t store_warned;	      /* last warning; under mu */
	/* called for every decision as it is logged (metrics, spfguardctl
	   test); NULL: none */
	void (*on_decision)(void *arg, const struct decision *);
	void *on_decision_arg;
};

struct conn;

/* What to answer at RCPT. */
struct ctx_reply {
	bool refuse; /* false: continue */
	int code;
	char xcode[16];
	char *text; /* owned by the connection, valid until the
		       next ctx_* call */
};

/* What to do at end of message. */
struct ctx_eom {
	const char *auth_results; /* insert at the top, or NULL */
	const char *received_spf; /* insert at the top, or NULL */
	const char *tag_name;	  /* add, or NULL */
	const char *tag_value;
	const size_t *remove_ar; /* 1-based indices among the
				    Authentication-Results fields */
	size_t nremove_ar;
	const char *quarantine; /* reason, or NULL */
};

struct conn *
ctx_connect(struct runtime *, const char *client_ip, const char *client_name);
void ctx_helo(struct conn *, const char *helo);
void ctx_mail(struct conn *, const char *sender, const char *auth_user,
    const char *queue_id);
void ctx_rcpt(struct conn *, const char *rcpt, struct ctx_reply *);
void ctx_queue_id(struct conn *, const char *queue_id);
void ctx_header(struct conn *, const char *name, const char *value);
void ctx_eom(struct conn *, struct ctx_eom *);
void ctx_eom_done(struct conn *); /* after the milter applied it */
void ctx_abort(struct conn *);
void ctx_close(struct conn *);

/* Address helpers, exposed for tests: strip <>, source routes; split. */
char *ctx_address(const char *arg);
void ctx_split(const char *addr, char **local, char **domain);

#endif
