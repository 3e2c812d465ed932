/*
 * declog.h - the decision log: one JSON object per line, one line per
 * decision, appended with O_APPEND in a single write() so that concurrent
 * writers and a kill never leave a torn line; reopened on request (SIGUSR1,
 * logrotate). A line that cannot be written (a full disk) is kept in a
 * bounded backlog and written, in order, when there is room again; it is
 * counted and reported (at most once a minute through the log facade),
 * and never blocks or changes a decision.
 */
#ifndef SPFGUARD_DECLOG_H
#define SPFGUARD_DECLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "policy.h"
#include "reputation.h"
#include "spf.h"

/* One decision. Everything is borrowed. */
struct decision {
	struct timespec when; /* CLOCK_REALTIME */
	const char *queue_id; /* NULL before DATA with Postfix */
	const char *conn_id;
	const char *client_ip;
	const char *client_name;
	const char *helo;
	const char *sender;
	const char *auth_user;
	const char **rcpts;
	size_t nrcpts;
	bool trusted;
	const struct spf_response *spf_helo; /* NULL: not checked */
	const struct spf_response *spf_mfrom;
	const struct policy_facts *facts; /* the deciding identity */
	const struct policy_verdict *verdict;
	const struct rep_facts *rep; /* NULL: none */
	const char *mode;
	long elapsed_ms; /* MAIL FROM to this decision */
};

struct declog;

struct declog *declog_open(const char *path, char *err, size_t errlen);
int declog_reopen(struct declog *);
void declog_close(struct declog *);

/* Append one line (the text, without its newline). Thread-safe. */
void declog_write(struct declog *, const char *line, size_t len);

struct declog_stats {
	unsigned long written;	/* lines in the file */
	unsigned long failures; /* lines whose first write failed */
	unsigned long pending;	/* of which kept, to write when there is
				   room */
	unsigned long lost;	/* of which dropped: the backlog was full */
};
void declog_get_stats(struct declog *, struct declog_stats *);

/* The JSON object of a decision, and the concise syslog text of it. */
void declog_format(const struct decision *, struct buf *);
void declog_format_syslog(const struct decision *, struct buf *);

#endif
