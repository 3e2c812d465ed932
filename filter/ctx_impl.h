/*
 * ctx_impl.h - the transaction driver's state, shared by ctx.c (SMTP
 * stages, SPF, decisions, headers, the decision log) and ctx_rep.c
 * (blocklists and reputation). Private to filter/: the public API is
 * include/ctx.h.
 */
#ifndef SPFGUARD_CTX_IMPL_H
#define SPFGUARD_CTX_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "ctx.h"
#include "dnsbl.h"
#include "jobs.h"
#include "policy.h"
#include "reputation.h"

#define WAIT_GRACE_MS 1000 /* beyond the deadline, for a busy pool */

/* A blocklist lookup of one list for one subject. */
struct bl {
	const struct dnsbl_list *list;
	char *subject;
	struct job *job;
	struct dnsbl_result late; /* it did not finish in time */
	const struct dnsbl_result *r;
};

struct bls {
	struct bl *v;
	size_t n;
};

struct rcpt {
	char *addr;
	char *domain;
	struct policy_verdict v;
	long elapsed_ms;
	bool logged;
};

struct msg {
	bool active;
	char *sender; /* "" for the null sender */
	char *local, *domain;
	char *auth_user;
	char *queue_id;
	struct job *mfrom_job;
	bool mfrom_is_helo; /* null sender: the HELO result serves */
	bool collected;
	const struct spf_response *helo_r, *mfrom_r;
	struct spf_response late_helo, late_mfrom; /* did not finish */
	struct policy_facts facts;
	struct rcpt *rcpts;
	size_t nrcpts;
	size_t ar_seen;
	size_t *remove;
	size_t nremove;
	struct timespec started;
	char *ar_hdr, *rspf_hdr, *tag_value;

	/* reputation */
	struct bls from_bl;
	const char **names; /* the facts' name lists, one array */
	const struct dnsbl_result **results;
	size_t nresults;
	char net[64]; /* the client's network, or "" */
	struct rep_history hist, net_hist;
	struct rep_rate_state *rates;
	const char **over;
	char *store_error;
	struct rep_facts rep;
};

struct conn {
	struct runtime *rt;
	struct conf *conf;
	char conn_id[40];
	char *client_ip;
	char *client_name;
	bool trusted;
	char *helo;
	struct job *helo_job;
	struct bls client_bl, helo_bl;
	struct msg m;
	char *reply_text;
};

/* ctx.c: until when a job may be waited for */
void
ctx_wait_until(const struct conn *, const struct job *, struct timespec *until);

/* ctx_rep.c */

/* Start the lookups of the lists of a kind for a subject (HELO or MAIL
 * FROM domain for the RHSBLs that ask for it). */
void ctx_rep_bl_start(struct conn *, struct bls *, enum dnsbl_kind, bool helo,
    const char *subject);
void ctx_rep_bl_free(struct bls *);

/* At the first RCPT, after SPF: blocklist facts, history, message rate
 * limits into c->m.facts. */
void ctx_rep_collect(struct conn *);

/* At each RCPT, before the rules: recipient rate limits. */
void ctx_rep_rcpt(struct conn *);

/* The rule engine's greylist oracle (policy.h); arg is the conn. */
int ctx_rep_greylist(void *arg, const struct policy_facts *, unsigned *retry_s);

/* After the rules: a failed store failing closed answers for itself. */
void ctx_rep_store_answer(struct conn *, struct policy_verdict *);

/* When the message ends: what it adds to its sender's history. */
void ctx_rep_record_history(struct conn *);

/* The message's reputation state, freed. */
void ctx_rep_msg_free(struct msg *);

#endif
