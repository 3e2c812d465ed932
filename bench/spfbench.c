/*
 * spfbench.c - SPF evaluations per second with a warm cache, every engine
 * on the same records, the same DNS layer and the same cache, in one run.
 *
 *	spfbench --dns HOST:PORT [--seconds N] [--threads N]
 *
 * The envelopes are fixed (bench/zone.json holds their records): forty
 * sender domains of four common shapes (mx + a + include, ip4 + nested
 * include, redirect, exists with macros), each checked from an address
 * that passes and one that fails. One untimed pass warms libunbound's
 * cache; then each engine runs for the given time and the table shows
 * evaluations per second and the ratio to the first engine.
 *
 * Two DNS set-ups: "unbound" is the production path (dns_query() through
 * libunbound's cache); "memory" answers from a table recorded during the
 * warm-up pass, so that only the engine's own work is timed.
 */
#include "autoconf.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns.h"
#include "spf.h"

#define NDOMAINS 40

/* the answers seen during warm-up, replayed by the "memory" backend */
struct recorded {
	char *name;
	enum dns_type type;
	struct dns_answer ans;
};

static struct recorded *tape;
static size_t ntape;
static struct dns_ctx *real_dns;

static void
copy_answer(const struct dns_answer *from, struct dns_answer *to)
{
	size_t i;

	*to = *from;
	to->rr = NULL;
	to->count = 0;
	for (i = 0; i < from->count; i++) {
		struct dns_rr rr = from->rr[i];

		if (rr.data != NULL) {
			rr.data = malloc(rr.len + 1);
			memcpy(rr.data, from->rr[i].data, rr.len + 1);
		}
		dns_answer_add(to, &rr);
	}
	to->status = from->status;
}

/* record - forward to libunbound and keep a copy */
static void
record(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	size_t i;

	dns_query(real_dns, name, type, NULL, out);
	for (i = 0; i < ntape; i++)
		if (tape[i].type == type && strcmp(tape[i].name, name) == 0)
			return;
	tape = realloc(tape, (ntape + 1) * sizeof(*tape));
	tape[ntape].name = strdup(name);
	tape[ntape].type = type;
	copy_answer(out, &tape[ntape].ans);
	ntape++;
}

/* replay - answer from the tape (a linear scan over ~200 entries) */
static void
replay(void *arg, const char *name, enum dns_type type, struct dns_answer *out)
{
	size_t i;

	for (i = 0; i < ntape; i++) {
		if (tape[i].type == type && strcmp(tape[i].name, name) == 0) {
			copy_answer(&tape[i].ans, out);
			return;
		}
	}
	out->status = DNS_NXDOMAIN;
}

struct job {
	const struct spf_engine *eng;
	struct dns_ctx *dns;
	double seconds;
	unsigned long evals;
	unsigned long results[SPF_PERMERROR + 1];
};

static char senders[NDOMAINS][64];
static char ips[NDOMAINS * 2][64];

static double
now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
setup(void)
{
	int i;

	for (i = 0; i < NDOMAINS; i++) {
		(void)snprintf(senders[i], sizeof(senders[i]),
		    "user%d@d%02d.example", i, i);
		switch (i % 4) {
		case 0:
			(void)snprintf(ips[2 * i], sizeof(ips[0]),
			    "198.51.100.%d", i + 1);
			break;
		case 1:
			(void)snprintf(ips[2 * i], sizeof(ips[0]),
			    "203.0.113.%d", 130 + i);
			break;
		case 2:
			(void)snprintf(ips[2 * i], sizeof(ips[0]),
			    "2001:db8:a::%x", i + 1);
			break;
		default:
			(void)snprintf(ips[2 * i], sizeof(ips[0]), "192.0.2.%d",
			    i + 1);
			break;
		}
		(void)snprintf(ips[2 * i + 1], sizeof(ips[0]), "192.0.2.%d",
		    200 + i % 50);
	}
}

/* one - evaluate envelope k */
static enum spf_result
one(const struct spf_engine *eng, struct dns_ctx *dns, unsigned long k)
{
	struct spf_request req;
	struct spf_response resp;
	enum spf_result r;
	int i = (int)(k % (NDOMAINS * 2));

	memset(&req, 0, sizeof(req));
	req.ip = ips[i];
	req.helo = "mail.sender.example";
	req.sender = senders[i / 2];
	req.identity = SPF_ID_MAILFROM;
	req.receiver = "mx.receiver.example";
	spf_check(eng, dns, &req, &resp);
	r = resp.result;
	spf_response_free(&resp);
	return r;
}

static void *
run(void *arg)
{
	struct job *j = arg;
	double t0 = now(), end = t0 + j->seconds;
	unsigned long k = 0;

	while ((k & 63) != 0 || now() < end) {
		j->results[one(j->eng, j->dns, k)]++;
		k++;
	}
	j->evals = k;
	j->seconds = now() - t0;
	return NULL;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {"builtin", "libspf2"};
	static const struct option longopts[] = {
	    {"dns", required_argument, NULL, 'd'},
	    {"seconds", required_argument, NULL, 's'},
	    {"threads", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	struct dns_opts o;
	struct dns_ctx *dns, *memdns;
	const char *res[1] = {NULL};
	double seconds = 3, base[2] = {0, 0};
	char err[256];
	int threads = 1, ch, t, r, bk;
	size_t e;
	unsigned long k;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			res[0] = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		default:
			(void)fprintf(stderr,
			    "usage: spfbench --dns HOST:PORT "
			    "[--seconds N] [--threads N]\n");
			return 2;
		}
	}
	if (res[0] == NULL || seconds <= 0 || threads < 1 || threads > 64) {
		(void)fprintf(stderr, "spfbench: --dns HOST:PORT needed\n");
		return 2;
	}
	setup();
	memset(&o, 0, sizeof(o));
	o.resolvers = res;
	o.nresolvers = 1;
	if ((real_dns = dns_create(&o, err, sizeof(err))) == NULL) {
		(void)fprintf(stderr, "spfbench: %s\n", err);
		return 1;
	}
	dns = dns_create_fn(record, NULL);
	for (e = 0; e < sizeof(names) / sizeof(names[0]); e++)
		if (spf_engine_find(names[e]) != NULL)
			for (k = 0; k < NDOMAINS * 2; k++) /* warm up */
				(void)one(spf_engine_find(names[e]), dns, k);
	dns_destroy(dns);
	memdns = dns_create_fn(replay, NULL);

	(void)printf("%-8s %-8s %7s %9s %8s %10s %7s  %s\n", "engine", "dns",
	    "threads", "evals", "seconds", "evals/s", "ratio", "results");
	for (bk = 0; bk < 2; bk++)
		for (e = 0; e < sizeof(names) / sizeof(names[0]); e++) {
			const struct spf_engine *eng =
			    spf_engine_find(names[e]);
			struct job jobs[64];
			pthread_t th[64];
			unsigned long total = 0, sum[SPF_PERMERROR + 1];
			double secs = 0, rate;

			if (eng == NULL) {
				(void)printf("%-8s (not built)\n", names[e]);
				continue;
			}
			memset(jobs, 0, sizeof(jobs));
			memset(sum, 0, sizeof(sum));
			for (t = 0; t < threads; t++) {
				jobs[t].eng = eng;
				jobs[t].dns = bk == 0 ? real_dns : memdns;
				jobs[t].seconds = seconds;
				(void)pthread_create(&th[t], NULL, run,
				    &jobs[t]);
			}
			for (t = 0; t < threads; t++) {
				(void)pthread_join(th[t], NULL);
				total += jobs[t].evals;
				if (jobs[t].seconds > secs)
					secs = jobs[t].seconds;
				for (r = 0; r <= SPF_PERMERROR; r++)
					sum[r] += jobs[t].results[r];
			}
			rate = (double)total / secs;
			if (base[bk] == 0)
				base[bk] = rate;
			(void)printf("%-8s %-8s %7d %9lu %8.2f %10.0f %7.2f ",
			    names[e], bk == 0 ? "unbound" : "memory", threads,
			    total, secs, rate, rate / base[bk]);
			for (r = 0; r <= SPF_PERMERROR; r++)
				if (sum[r] != 0)
					(void)printf(" %s=%lu",
					    spf_result_name((enum spf_result)r),
					    sum[r]);
			(void)printf("\n");
		}
	dns_destroy(memdns);
	dns_destroy(real_dns);
	return 0;
}
