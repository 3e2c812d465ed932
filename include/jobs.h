/*
 * jobs.h - spfguard's own worker threads, for SPF checks and blocklist
 * lookups.
 *
 * DNS work runs here, never in a libmilter callback: a callback starts a
 * job and returns at once; a later callback waits for it, at most until a
 * deadline. A job is shared by its starter and the worker (reference
 * counted): the starter calls job_release() when done with it, finished or
 * not, and the worker lets go when it has finished.
 */
#ifndef SPFGUARD_JOBS_H
#define SPFGUARD_JOBS_H

#include <stdbool.h>
#include <time.h>

#include "dns.h"
#include "spf.h"

struct jobs;
struct job;

typedef void (*job_fn)(void *arg);

struct jobs *jobs_create(unsigned max_threads);
void jobs_destroy(struct jobs *);

/*
 * Run run(arg) on a worker. The job owns arg: release(arg), if not NULL,
 * is called when the last reference goes. cancel(arg), if not NULL, is
 * called instead of run() for a job still queued when the pool is
 * destroyed, so that it can record a temporary failure. What run() wrote
 * into arg may be read once job_wait() returned true.
 */
struct job *
job_start(struct jobs *, job_fn run, job_fn cancel, job_fn release, void *arg);

/* Wait until the job is done or until `until` (CLOCK_MONOTONIC); true when
 * it is done. NULL until: do not wait. */
bool job_wait(struct job *, const struct timespec *until);
void *job_arg(const struct job *);

/* When the job was started (CLOCK_MONOTONIC). */
const struct timespec *job_started(const struct job *);

/* The starter lets go of a job, finished or not. NULL is ignored. */
void job_release(struct job *);

/* An SPF check; the request's strings are copied. */
struct job *spf_job_start(struct jobs *, const struct spf_engine *,
    struct dns_ctx *, const struct spf_request *);

/* The result, once job_wait() returned true. */
const struct spf_response *spf_job_response(const struct job *);

struct jobs_stats {
	unsigned threads;
	unsigned idle;
	unsigned queued;
	unsigned long done;
};
void jobs_get_stats(struct jobs *, struct jobs_stats *);

#endif
