/*
 * metrics.h - counters of what the daemon does, in the Prometheus text
 * exposition format (version 0.0.4).
 *
 * struct metrics holds what only the daemon's glue sees (decisions,
 * reloads); the rest (DNS, workers, decision log, store, sessions) is read
 * from the modules' own statistics when the page is made. Thread-safe.
 * The HTTP side is the daemon's (metrics_http.c, libmicrohttpd); this
 * module does no I/O.
 */
#ifndef SPFGUARD_METRICS_H
#define SPFGUARD_METRICS_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "declog.h"
#include "dns.h"
#include "jobs.h"
#include "store.h"

struct metrics;

struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *);

/* One decision (one decision-log line), with its blocklist lookups. */
void metrics_decision(struct metrics *, const struct decision *);

/* A reload of the configuration, and whether it was taken. */
void metrics_reload(struct metrics *, bool ok);

/* What the other modules count; NULL members are left out. */
struct metrics_sources {
	const struct dns_stats *dns;
	const struct jobs_stats *jobs;
	const struct declog_stats *declog;
	const struct store_stats *store;
	unsigned long sessions;	      /* in flight */
	unsigned long store_failures; /* answered as store.on_error says */
};

/* The whole exposition page. */
void
metrics_format(struct metrics *, const struct metrics_sources *, struct buf *);

/*
 * A listening address for the page: "127.0.0.1:PORT" or "[::1]:PORT", a
 * loopback address only (the page tells who mails whom). 0, or -1 and a
 * reason.
 */
int metrics_listen_parse(const char *, struct sockaddr_storage *, socklen_t *,
    char *err, size_t errlen);

#endif
