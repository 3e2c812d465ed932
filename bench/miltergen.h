/*
 * miltergen.h - what the parts of the milter load generator share: the
 * results of a run (mgreport.c prints them) and the packet writer
 * (mgproto.c).
 */
#ifndef BENCH_MILTERGEN_H
#define BENCH_MILTERGEN_H

#include <sys/socket.h>

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libmilter/mfdef.h>

#include "hist.h"

enum { CLASS_FAST, CLASS_SLOW, NCLASSES };

enum {
	STG_CONNECT, /* TCP connect, option negotiation, connect event */
	STG_HELO,
	STG_MAIL,
	STG_RCPT, /* every recipient */
	STG_DATA,
	STG_HEADER, /* every header */
	STG_EOH,
	STG_BODY,
	STG_EOM,
	STG_TOTAL, /* the whole message, from connect or from MAIL */
	NSTAGES
};

enum { DEC_ACCEPT, DEC_REJECT, DEC_TEMPFAIL, DEC_DISCARD, NDECISIONS };
#define DEC_OTHER NDECISIONS /* not a decision: a protocol error */

enum mg_error {
	ERR_CONNECT,
	ERR_EOF,
	ERR_IO,
	ERR_PROTOCOL,
	ERR_TIMEOUT,
	NERRORS
};

#define NMODS 9 /* modification actions, see mg_modification() */

struct class_stats {
	unsigned long messages;	 /* finished after the warm-up */
	unsigned long in_window; /* ... and before the end of the window */
	unsigned long decisions[NDECISIONS];
	unsigned long stalls[NSTAGES]; /* stages slower than the stall limit */
	struct hist stage[NSTAGES];
	struct hist by_decision[NDECISIONS];
};

struct results {
	/* the run */
	const char *socket;
	unsigned conns, per_conn, rcpts;
	double warmup, window; /* seconds */
	double stall;	       /* seconds: a stage this slow is a stall */
	unsigned long started;
	/* what the filter negotiated */
	uint32_t version, actions, protocol;
	/* what happened */
	struct class_stats cls[NCLASSES];
	unsigned long errors[NERRORS];
	unsigned long lost[NCLASSES]; /* messages cut by an error */
	unsigned long mods[NMODS];
	unsigned long shutdowns, slow_skipped;
};

/* the run's settings (miltergen.c) */
struct mg_list {
	char **v;
	size_t n;
};

struct mg_config {
	const char *socket;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned conns, per_conn, rcpts, headers, slow_every, slow_max;
	unsigned long messages;
	double seconds, warmup, timeout, progress, stall;
	size_t body;
	const char *json;
	bool quiet;
	struct mg_list ips, helos, senders, recipients, slow;
	/* set up before the run */
	int ep;
	const char *body_text;
	uint64_t t_start, t0, t_end; /* us: start, end of warm-up, end */
};

uint64_t mg_now_us(void);
/* entry k of a list, cycled */
const char *mg_pick(const struct mg_list *, uint64_t k);

/* connections (mgconn.c) */
void conn_setup(const struct mg_config *, struct results *);
bool conn_may_start(void);
void conn_open(int klass);
void conn_event(void *conn, uint32_t epoll_events);
void conn_sweep(uint64_t now);
void conn_reap(void);
unsigned conn_count(int klass);
void conn_stop(void); /* async-signal-safe */

/* an output buffer of packets */
struct obuf {
	char *data;
	size_t len, cap, off;
};

void *mg_realloc(void *, size_t);
void *mg_calloc(size_t);
char *mg_strdup(const char *);

void obuf_put(struct obuf *, const void *, size_t);
/* a command packet: length, command, data */
void obuf_cmd(struct obuf *, char cmd, const void *data, size_t len);
/* SMFIC_MACRO for an event; kv: name, value, ..., NULL */
void obuf_macro(struct obuf *, char event, const char *const *kv);
/* SMFIC_OPTNEG as Postfix 3.7 sends it (version 6) */
void obuf_optneg(struct obuf *);
/* 1 + the index of a modification action's name, or 0 */
int mg_modification(char cmd);
const char *mg_modification_name(int i);

void mg_report_text(FILE *, const struct results *);
int mg_report_json(const char *path, const struct results *);

#endif
