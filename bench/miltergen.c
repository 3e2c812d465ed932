/*
 * miltergen.c - a load generator that speaks the milter protocol (version
 * 6) to a filter the way Postfix 3.7 does, and measures it.
 *
 *	miltergen -s SOCKET [-c CONNS] [-n MESSAGES] [-d SECONDS] [-m PER_CONN]
 *	    [-r RCPTS] [-w WARMUP_S] [-I IPS] [-H HELOS] [-F SENDERS]
 *	    [-R RECIPIENTS] [-S SLOW_SENDERS [-k EVERY] [-K MAX]]
 *	    [-T TIMEOUT_S] [-b BODY_BYTES] [-e HEADERS] [-P PROGRESS_S]
 *	    [-x STALL_S] [-j JSON_FILE] [-q]
 *
 * SOCKET is inet:PORT@HOST, HOST:PORT or unix:PATH. Each milter connection
 * is one SMTP session, as in Postfix: SMFIC_OPTNEG (version 6, every action
 * and protocol flag Postfix offers), then connect and HELO, and per message
 * MAIL, RCPT..., DATA, the headers, end of headers, the body, end of
 * message, then ABORT (Postfix sends it after every transaction) and
 * finally QUIT. Every event is preceded by its SMFIC_MACRO packet with
 * Postfix's default macros ({i} only from the second RCPT on, as Postfix
 * sends the queue id only once the queue file exists). Events the filter
 * asked not to get (SMFIP_NO*) are not sent, replies it said it would not
 * send (SMFIP_NR_*) are not awaited. Every reply is understood: continue,
 * accept (the rest of the message, or of the session at connect and
 * HELO, is skipped), reject, tempfail, reply code (4xx tempfail, 5xx
 * reject), discard, skip (body), progress, the modification actions at
 * end of message (counted), shutdown and connection failure.
 *
 * CONNS connections are kept open at once, each carrying PER_CONN messages
 * (default 1) before QUIT; a new one replaces each that ends. The run ends
 * after MESSAGES messages were started or SECONDS passed, whichever comes
 * first, and when every message started has finished (or timed out).
 * Messages finishing in the first WARMUP_S seconds are not counted.
 *
 * Envelopes come from the list files (one entry a line, '#' comments),
 * message k taking line k of each list, cycled; the client address and
 * HELO name are those of the connection's first message. With
 * SLOW_SENDERS, one extra message is started after every EVERY messages
 * (default 9: 10 % of all) on a connection of its own with the next sender
 * of that list; these "slow" messages never take one of the CONNS slots
 * (an MTA has a process per SMTP session) and are counted apart, so that
 * the "fast" ones show whether slow senders delay anyone else. At most
 * MAX (default 2000) slow sessions are open at once.
 *
 * Output: a table per class of message (fast, slow) of latency (p50, p99,
 * max in ms) per stage and per decision, messages per second, errors, and
 * per stage the count of "stalls", stages slower than STALL_S (default
 * 1 s): for a filter whose callbacks wait only at RCPT (spfguard), a stall
 * in another stage is the filter's dispatch, not its work. The same goes
 * to JSON_FILE. Exit status: 0 when the run had no error, 1 when it had
 * errors, 2 on bad usage.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "miltergen.h"

#define MAX_LINE 1024
#define TICK_MS	 100

static struct mg_config o = {
    .conns = 10,
    .per_conn = 1,
    .rcpts = 1,
    .headers = 8,
    .slow_every = 9,
    .slow_max = 2000,
    .messages = 1000,
    .timeout = 60,
    .body = 2048,
    .stall = 1.0,
};
static struct results res;

static void __attribute__((noreturn)) usage(void)
{
	(void)fprintf(stderr,
	    "usage: miltergen -s SOCKET [-c CONNS] [-n MESSAGES] "
	    "[-d SECONDS] [-m PER_CONN]\n"
	    "\t[-r RCPTS] [-w WARMUP_S] [-I IPS] [-H HELOS] [-F SENDERS] "
	    "[-R RECIPIENTS]\n"
	    "\t[-S SLOW_SENDERS [-k EVERY] [-K MAX]] [-T TIMEOUT_S] "
	    "[-b BODY_BYTES]\n"
	    "\t[-e HEADERS] [-P PROGRESS_S] [-x STALL_S] [-j JSON_FILE] "
	    "[-q]\n");
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)fprintf(stderr, "miltergen: ");
	(void)vfprintf(stderr, fmt, ap);
	(void)fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

uint64_t
mg_now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000U + (uint64_t)ts.tv_nsec / 1000U;
}

/* read_list - the entries of a list file */
static void
read_list(const char *path, struct mg_list *l)
{
	FILE *fp;
	char line[MAX_LINE], *p, *e;

	if ((fp = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		e = p + strcspn(p, "\r\n");
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		l->v = mg_realloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->v[l->n++] = mg_strdup(p);
	}
	(void)fclose(fp);
	if (l->n == 0)
		die("%s: empty list", path);
}

static void
default_list(struct mg_list *l, const char *value)
{
	if (l->n > 0)
		return;
	l->v = mg_realloc(NULL, sizeof(*l->v));
	l->v[0] = mg_strdup(value);
	l->n = 1;
}

const char *
mg_pick(const struct mg_list *l, uint64_t k)
{
	return l->v[k % l->n];
}

/* parse_socket - inet:PORT@HOST, HOST:PORT or unix:PATH */
static void
parse_socket(const char *spec)
{
	struct addrinfo hints, *ai;
	struct sockaddr_un *un;
	char host[256], port[16];
	const char *at, *colon, *path;
	int rc;

	memset(&o.addr, 0, sizeof(o.addr));
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		un = (struct sockaddr_un *)&o.addr;
		un->sun_family = AF_UNIX;
		path = strchr(spec, ':') + 1;
		if (strlen(path) >= sizeof(un->sun_path))
			die("socket path too long: %s", spec);
		memcpy(un->sun_path, path, strlen(path) + 1);
		o.addrlen = sizeof(*un);
		return;
	}
	if (strncmp(spec, "inet:", 5) == 0 &&
	    (at = strchr(spec + 5, '@')) != NULL) {
		(void)snprintf(port, sizeof(port), "%.*s", (int)(at - spec - 5),
		    spec + 5);
		(void)snprintf(host, sizeof(host), "%s", at + 1);
	} else if ((colon = strrchr(spec, ':')) != NULL) {
		(void)snprintf(host, sizeof(host), "%.*s", (int)(colon - spec),
		    spec);
		(void)snprintf(port, sizeof(port), "%s", colon + 1);
	} else
		die("bad socket: %s", spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0)
		die("%s: %s", spec, gai_strerror(rc));
	memcpy(&o.addr, ai->ai_addr, ai->ai_addrlen);
	o.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void
on_signal(int sig)
{
	(void)sig;
	conn_stop();
}

static double
number(const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

static void
parse_args(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv,
		    "b:c:d:e:F:H:I:j:k:K:m:n:P:qr:R:s:S:T:w:x:")) != -1) {
		switch (ch) {
		case 'b':
			o.body = (size_t)number(optarg, 0, 1e8);
			break;
		case 'c':
			o.conns = (unsigned)number(optarg, 1, 100000);
			break;
		case 'd':
			o.seconds = number(optarg, 0, 1e6);
			break;
		case 'e':
			o.headers = (unsigned)number(optarg, 0, 1000);
			break;
		case 'F':
			read_list(optarg, &o.senders);
			break;
		case 'H':
			read_list(optarg, &o.helos);
			break;
		case 'I':
			read_list(optarg, &o.ips);
			break;
		case 'j':
			o.json = optarg;
			break;
		case 'k':
			o.slow_every = (unsigned)number(optarg, 1, 1e9);
			break;
		case 'K':
			o.slow_max = (unsigned)number(optarg, 1, 1e6);
			break;
		case 'm':
			o.per_conn = (unsigned)number(optarg, 1, 1e9);
			break;
		case 'n':
			o.messages = (unsigned long)number(optarg, 0, 1e12);
			break;
		case 'P':
			o.progress = number(optarg, 0, 1e6);
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'r':
			o.rcpts = (unsigned)number(optarg, 1, 1000);
			break;
		case 'R':
			read_list(optarg, &o.recipients);
			break;
		case 's':
			o.socket = optarg;
			break;
		case 'S':
			read_list(optarg, &o.slow);
			break;
		case 'T':
			o.timeout = number(optarg, 0.1, 1e6);
			break;
		case 'w':
			o.warmup = number(optarg, 0, 1e6);
			break;
		case 'x':
			o.stall = number(optarg, 0.001, 1e6);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || o.socket == NULL)
		usage();
	if (o.messages == 0 && o.seconds == 0)
		die("-n 0 needs -d: the run must be bounded");
	default_list(&o.ips, "192.0.2.1");
	default_list(&o.helos, "client.bench.example");
	default_list(&o.senders, "sender@bench.example");
	default_list(&o.recipients, "rcpt@dest.example");
}

/* setup - descriptors, signals, the body, the clock */
static void
setup(void)
{
	struct rlimit rl;
	struct sigaction sa;
	char *body;
	size_t i;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	body = mg_realloc(NULL, o.body + 1);
	for (i = 0; i < o.body; i++)
		body[i] = (i % 72 == 70) ? '\r'
		    : (i % 72 == 71)	 ? '\n'
					 : (char)('a' + i % 26);
	o.body_text = body;
	if ((o.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll: %s", strerror(errno));
	o.t_start = mg_now_us();
	o.t0 = o.t_start + (uint64_t)(o.warmup * 1e6);
	if (o.seconds > 0) {
		o.t_end = o.t0 + (uint64_t)(o.seconds * 1e6);
		res.window = o.seconds;
	}
	res.socket = o.socket;
	res.conns = o.conns;
	res.per_conn = o.per_conn;
	res.rcpts = o.rcpts;
	res.warmup = o.warmup;
	res.stall = o.stall;
}

static void
progress(uint64_t now)
{
	(void)fprintf(stderr,
	    "miltergen: %.1f s: %lu started, %lu+%lu finished, %u+%u open\n",
	    (double)(now - o.t_start) / 1e6, res.started,
	    res.cls[CLASS_FAST].messages, res.cls[CLASS_SLOW].messages,
	    conn_count(CLASS_FAST), conn_count(CLASS_SLOW));
}

static void
run(void)
{
	struct epoll_event evs[256];
	uint64_t now, last_sweep = 0, last_progress = o.t_start;
	int n, i;

	for (;;) {
		while (conn_count(CLASS_FAST) < o.conns && conn_may_start())
			conn_open(CLASS_FAST);
		conn_reap();
		if (conn_count(CLASS_FAST) + conn_count(CLASS_SLOW) == 0)
			break;
		n = epoll_wait(o.ep, evs, 256, TICK_MS);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		now = mg_now_us();
		if (now - last_sweep >= TICK_MS * 1000U) {
			conn_sweep(now);
			last_sweep = now;
		}
		if (o.progress > 0 &&
		    (double)(now - last_progress) >= o.progress * 1e6) {
			progress(now);
			last_progress = now;
		}
	}
}

int
main(int argc, char **argv)
{
	unsigned long nerr = 0;
	int i;

	parse_args(argc, argv);
	parse_socket(o.socket);
	setup();
	conn_setup(&o, &res);
	run();
	if (!o.quiet)
		mg_report_text(stdout, &res);
	if (o.json != NULL && mg_report_json(o.json, &res) != 0)
		return 2;
	for (i = 0; i < NERRORS; i++)
		nerr += res.errors[i];
	return nerr > 0 ? 1 : 0;
}
