/*
 * jobs.c - a pool of worker threads that run SPF checks.
 *
 * Threads are started on demand up to a maximum and leave after a minute
 * without work (two stay). Jobs wait in a FIFO queue when every thread is
 * busy. Each job has its own mutex and condition variable, so a waiter
 * wakes only for its own job. A job is freed by whoever drops the last of
 * its two references (the starter's and the worker's).
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "xalloc.h"

#define IDLE_EXIT_S 60
#define MIN_THREADS 2
#define STACK_SIZE  (512 * 1024)

struct spf_job {
	struct spf_job *next; /* queue link */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	const struct spf_engine *engine;
	struct dns_ctx *dns;
	struct spf_request req; /* strings owned below */
	char *ip, *helo, *sender, *receiver, *default_exp;
	struct spf_response resp;
	struct timespec started;
};

struct jobs {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t gone; /* a thread exited */
	struct spf_job *head, *tail;
	unsigned queued;
	unsigned threads, idle, max;
	unsigned long done;
	bool stop;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
job_unref(struct spf_job *j)
{
	int left;

	(void)pthread_mutex_lock(&j->mu);
	left = --j->refs;
	(void)pthread_mutex_unlock(&j->mu);
	if (left > 0)
		return;
	spf_response_free(&j->resp);
	free(j->ip);
	free(j->helo);
	free(j->sender);
	free(j->receiver);
	free(j->default_exp);
	(void)pthread_cond_destroy(&j->cv);
	(void)pthread_mutex_destroy(&j->mu);
	free(j);
}

/* worker - take jobs until told to stop or idle too long */
static void *
worker(void *arg)
{
	struct jobs *p = arg;
	struct spf_job *j;
	struct timespec until;
	int rc;

	(void)pthread_mutex_lock(&p->mu);
	for (;;) {
		rc = 0;
		while (p->head == NULL && !p->stop && rc != ETIMEDOUT) {
			p->idle++;
			(void)clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += IDLE_EXIT_S;
			rc = pthread_cond_timedwait(&p->work, &p->mu, &until);
			p->idle--;
		}
		if (p->stop || (p->head == NULL && p->threads > MIN_THREADS))
			break;
		if ((j = p->head) == NULL)
			continue;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		(void)pthread_mutex_unlock(&p->mu);

		spf_check(j->engine, j->dns, &j->req, &j->resp);
		(void)pthread_mutex_lock(&j->mu);
		j->done = true;
		(void)pthread_cond_broadcast(&j->cv);
		(void)pthread_mutex_unlock(&j->mu);
		job_unref(j);

		(void)pthread_mutex_lock(&p->mu);
		p->done++;
	}
	p->threads--;
	(void)pthread_cond_broadcast(&p->gone);
	(void)pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* spawn - one more thread (p->mu held); false if it could not start */
static bool
spawn(struct jobs *p)
{
	pthread_attr_t attr;
	pthread_t t;
	bool ok;

	(void)pthread_attr_init(&attr);
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	(void)pthread_attr_setstacksize(&attr, STACK_SIZE);
	ok = pthread_create(&t, &attr, worker, p) == 0;
	(void)pthread_attr_destroy(&attr);
	if (ok)
		p->threads++;
	return ok;
}

struct jobs *
jobs_create(unsigned max_threads)
{
	struct jobs *p;
	pthread_condattr_t attr;

	p = xcalloc(1, sizeof(*p));
	p->max = max_threads > 0 ? max_threads : 1;
	(void)pthread_mutex_init(&p->mu, NULL);
	(void)pthread_condattr_init(&attr);
	(void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	(void)pthread_cond_init(&p->work, &attr);
	(void)pthread_cond_init(&p->gone, NULL);
	(void)pthread_condattr_destroy(&attr);
	return p;
}

void
jobs_destroy(struct jobs *p)
{
	struct spf_job *j;

	if (p == NULL)
		return;
	(void)pthread_mutex_lock(&p->mu);
	p->stop = true;
	(void)pthread_cond_broadcast(&p->work);
	while (p->threads > 0)
		(void)pthread_cond_wait(&p->gone, &p->mu);
	while ((j = p->head) != NULL) {
		/* never run: finish it as a temporary error */
		p->head = j->next;
		(void)pthread_mutex_lock(&j->mu);
		j->resp.result = SPF_TEMPERROR;
		j->done = true;
		(void)pthread_cond_broadcast(&j->cv);
		(void)pthread_mutex_unlock(&j->mu);
		job_unref(j);
	}
	(void)pthread_mutex_unlock(&p->mu);
	(void)pthread_cond_destroy(&p->work);
	(void)pthread_cond_destroy(&p->gone);
	(void)pthread_mutex_destroy(&p->mu);
	free(p);
}

struct spf_job *
spf_job_start(struct jobs *p, const struct spf_engine *eng, struct dns_ctx *dns,
    const struct spf_request *req)
{
	struct spf_job *j;
	pthread_condattr_t attr;

	j = xcalloc(1, sizeof(*j));
	(void)pthread_mutex_init(&j->mu, NULL);
	(void)pthread_condattr_init(&attr);
	(void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	(void)pthread_cond_init(&j->cv, &attr);
	(void)pthread_condattr_destroy(&attr);
	j->refs = 2;
	j->engine = eng;
	j->dns = dns;
	j->req = *req;
	j->req.ip = j->ip = dup_or_null(req->ip);
	j->req.helo = j->helo = dup_or_null(req->helo);
	j->req.sender = j->sender = dup_or_null(req->sender);
	j->req.receiver = j->receiver = dup_or_null(req->receiver);
	j->req.default_exp = j->default_exp = dup_or_null(req->default_exp);
	(void)clock_gettime(CLOCK_MONOTONIC, &j->started);

	(void)pthread_mutex_lock(&p->mu);
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	if (p->idle < p->queued && p->threads < p->max)
		(void)spawn(p);
	(void)pthread_cond_signal(&p->work);
	(void)pthread_mutex_unlock(&p->mu);
	return j;
}

bool
spf_job_wait(struct spf_job *j, const struct timespec *until)
{
	bool done;
	int rc = 0;

	(void)pthread_mutex_lock(&j->mu);
	while (!j->done && until != NULL && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&j->cv, &j->mu, until);
	done = j->done;
	(void)pthread_mutex_unlock(&j->mu);
	return done;
}

const struct spf_response *
spf_job_response(const struct spf_job *j)
{
	return &j->resp;
}

const struct timespec *
spf_job_started(const struct spf_job *j)
{
	return &j->started;
}

void
spf_job_release(struct spf_job *j)
{
	if (j != NULL)
		job_unref(j);
}

void
jobs_get_stats(struct jobs *p, struct jobs_stats *st)
{
	(void)pthread_mutex_lock(&p->mu);
	st->threads = p->threads;
	st->idle = p->idle;
	st->queued = p->queued;
	st->done = p->done;
	(void)pthread_mutex_unlock(&p->mu);
}
