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

struct job {
	struct job *next; /* queue link */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	job_fn run;
	job_fn cancel;
	job_fn release;
	void *arg;
	struct timespec started;
};

/* An SPF check is a job whose argument is this. */
struct spf_task {
	const struct spf_engine *engine;
	struct dns_ctx *dns;
	struct spf_request req; /* strings owned below */
	char *ip, *helo, *sender, *receiver, *default_exp;
	struct spf_response resp;
};

struct jobs {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t gone; /* a thread exited */
	struct job *head, *tail;
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
job_unref(struct job *j)
{
	int left;

	(void)pthread_mutex_lock(&j->mu);
	left = --j->refs;
	(void)pthread_mutex_unlock(&j->mu);
	if (left > 0)
		return;
	if (j->release != NULL)
		j->release(j->arg);
	(void)pthread_cond_destroy(&j->cv);
	(void)pthread_mutex_destroy(&j->mu);
	free(j);
}

/* worker - take jobs until told to stop or idle too long */
static void *
worker(void *arg)
{
	struct jobs *p = arg;
	struct job *j;
	struct timespec until;
	int rc;

	(void)pthread_mutex_lock(&p->mu);
	for (;;) {
		/*
		 * Leave only after a whole idle minute: a thread woken for a
		 * job that another took first waits again (leaving then
		 * would start and stop threads all the time under load).
		 */
		rc = 0;
		while (p->head == NULL && !p->stop &&
		    (rc != ETIMEDOUT || p->threads <= MIN_THREADS)) {
			p->idle++;
			(void)clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += IDLE_EXIT_S;
			rc = pthread_cond_timedwait(&p->work, &p->mu, &until);
			p->idle--;
		}
		if (p->stop || p->head == NULL)
			break;
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		(void)pthread_mutex_unlock(&p->mu);

		j->run(j->arg);
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
	struct job *j;

	if (p == NULL)
		return;
	(void)pthread_mutex_lock(&p->mu);
	p->stop = true;
	(void)pthread_cond_broadcast(&p->work);
	while (p->threads > 0)
		(void)pthread_cond_wait(&p->gone, &p->mu);
	while ((j = p->head) != NULL) {
		/* never run: let it say so */
		p->head = j->next;
		(void)pthread_mutex_lock(&j->mu);
		if (j->cancel != NULL)
			j->cancel(j->arg);
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

struct job *
job_start(struct jobs *p, job_fn run, job_fn cancel, job_fn release, void *arg)
{
	struct job *j;
	pthread_condattr_t attr;

	j = xcalloc(1, sizeof(*j));
	(void)pthread_mutex_init(&j->mu, NULL);
	(void)pthread_condattr_init(&attr);
	(void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	(void)pthread_cond_init(&j->cv, &attr);
	(void)pthread_condattr_destroy(&attr);
	j->refs = 2;
	j->run = run;
	j->cancel = cancel;
	j->release = release;
	j->arg = arg;
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
job_wait(struct job *j, const struct timespec *until)
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

void *
job_arg(const struct job *j)
{
	return j->arg;
}

const struct timespec *
job_started(const struct job *j)
{
	return &j->started;
}

void
job_release(struct job *j)
{
	if (j != NULL)
		job_unref(j);
}

static void
spf_task_run(void *arg)
{
	struct spf_task *t = arg;

	spf_check(t->engine, t->dns, &t->req, &t->resp);
}

static void
spf_task_cancel(void *arg)
{
	struct spf_task *t = arg;

	t->resp.result = SPF_TEMPERROR;
}

static void
spf_task_free(void *arg)
{
	struct spf_task *t = arg;

	spf_response_free(&t->resp);
	free(t->ip);
	free(t->helo);
	free(t->sender);
	free(t->receiver);
	free(t->default_exp);
	free(t);
}

struct job *
spf_job_start(struct jobs *p, const struct spf_engine *eng, struct dns_ctx *dns,
    const struct spf_request *req)
{
	struct spf_task *t;

	t = xcalloc(1, sizeof(*t));
	t->engine = eng;
	t->dns = dns;
	t->req = *req;
	t->req.ip = t->ip = dup_or_null(req->ip);
	t->req.helo = t->helo = dup_or_null(req->helo);
	t->req.sender = t->sender = dup_or_null(req->sender);
	t->req.receiver = t->receiver = dup_or_null(req->receiver);
	t->req.default_exp = t->default_exp = dup_or_null(req->default_exp);
	return job_start(p, spf_task_run, spf_task_cancel, spf_task_free, t);
}

const struct spf_response *
spf_job_response(const struct job *j)
{
	return &((const struct spf_task *)j->arg)->resp;
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
