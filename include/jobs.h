/*
 * jobs.h - spfguard's own SPF worker threads.
 *
 * SPF checks run here, never in a libmilter callback: a callback starts a
 * job and returns at once; a later callback waits for it, at most until a
 * deadline. A job is shared by its starter and the worker (reference
 * counted): the starter calls spf_job_release() when done with it, finished
 * or not, and the worker lets go when it has finished.
 */
#ifndef SPFGUARD_JOBS_H
#define SPFGUARD_JOBS_H

#include <stdbool.h>
#include <time.h>

#include "dns.h"
#include "spf.h"

struct jobs;
struct spf_job;

struct jobs *jobs_create(unsigned max_threads);
void jobs_destroy(struct jobs *);

/* Start a check; the request's strings are copied. */
struct spf_job *spf_job_start(struct jobs *, const struct spf_engine *,
    struct dns_ctx *, const struct spf_request *);

/* Wait until the job is done or until `until` (CLOCK_MONOTONIC); true when
 * it is done. NULL until: do not wait. */
bool spf_job_wait(struct spf_job *, const struct timespec *until);

/* The result, once spf_job_wait() returned true. */
const struct spf_response *spf_job_response(const struct spf_job *);

/* When the job was started (CLOCK_MONOTONIC). */
const struct timespec *spf_job_started(const struct spf_job *);

void spf_job_release(struct spf_job *);

struct jobs_stats {
	unsigned threads;
	unsigned idle;
	unsigned queued;
	unsigned long done;
};
void jobs_get_stats(struct jobs *, struct jobs_stats *);

#endif
