/*
 * main.c - the spfguard daemon: options, start-up, privileges, signals.
 *
 *	spfguard [-fnd] [-c FILE] [-p SOCKET] [-P PIDFILE]
 *
 * Start-up order matters: the configuration is loaded and validated whole
 * (errors: exit 1, no daemon); the socket is opened while still root; the
 * process detaches, writes its pid file and drops to the configured user;
 * only then are threads started (DNS, SPF workers, libmilter).
 *
 * Signals: libmilter's own signal thread stops the filter on SIGHUP, which
 * must reload instead. The main thread therefore keeps SIGHUP, SIGTERM,
 * SIGINT and SIGUSR1 unblocked with handlers, and every other thread has
 * them blocked: Linux delivers a process signal to the thread-group leader
 * first whenever it can take it, so libmilter's thread never sees them.
 * The handlers only write a byte to a pipe that the main thread reads.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "ctx.h"
#include "declog.h"
#include "dns.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "milter.h"
#include "store.h"
#include "xalloc.h"

#define SWEEP_EVERY_S 60 /* expired store records removed */

#ifndef SPFGUARD_CONF
#define SPFGUARD_CONF "/etc/spfguard/spfguard.conf"
#endif

static int sigpipe_fd[2] = {-1, -1};

/*
 * tune - process limits for a long-running, many-threaded filter:
 *
 * - at most two malloc arenas: glibc gives threads up to 8 per CPU, each
 *   keeping its peak, so RSS crept up 11% over a million messages (bench/
 *   README.md, soak); the filter's threads mostly wait on DNS, and two
 *   arenas halved that growth at no measurable cost;
 * - the soft descriptor limit raised to the hard one (at most 65,536):
 *   each MTA session is a socket, each outstanding DNS query may be one
 *   (libunbound's outgoing-range is 4096, dns.c), and 1,024 is not enough
 *   when a slow zone keeps hundreds of queries waiting.
 */
static void
tune(void)
{
	struct rlimit rl;

	if (mallopt(M_ARENA_MAX, 2) != 1)
		log_warnx("cannot limit malloc arenas");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("cannot raise the descriptor limit");
	}
}

static void __attribute__((noreturn)) usage(void)
{
	(void)fprintf(stderr,
	    "usage: spfguard [-dfn] [-c FILE] [-p SOCKET] "
	    "[-P PIDFILE]\n");
	exit(2);
}

static void
on_signal(int sig)
{
	int saved = errno;
	char c = sig == SIGHUP ? 'H' : sig == SIGUSR1 ? 'U' : 'T';

	if (write(sigpipe_fd[1], &c, 1) == -1) {
		/* nothing a handler can do */
	}
	errno = saved;
}

/* load - the configuration, or every error on stderr / in the log */
static struct conf *
load(const char *file, bool to_stderr)
{
	struct buf errs;
	struct conf *conf;
	char *line, *save = NULL;

	buf_init(&errs);
	conf = conf_load(file, &errs);
	if (conf == NULL) {
		for (line = strtok_r(errs.data, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			if (to_stderr)
				(void)fprintf(stderr, "%s\n", line);
			else
				log_warnx("%s", line);
		}
	}
	buf_free(&errs);
	return conf;
}

static void
detach(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid != 0)
		_exit(0);
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") != 0)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			(void)close(fd);
	}
}

static void
write_pidfile(const char *path)
{
	FILE *fp;

	if ((fp = fopen(path, "w")) == NULL)
		fatal("pid file %s", path);
	(void)fprintf(fp, "%ld\n", (long)getpid());
	if (fclose(fp) != 0)
		fatal("pid file %s", path);
}

/*
 * prepare_dir - create the directory of a pid file or log if it is missing
 * (mode 0750), owned by the user the daemon will run as, so that it can
 * write and rotate there after dropping root. An existing directory is
 * left as it is.
 */
static void
prepare_dir(const char *path, const char *user, const char *group)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	struct passwd *pw;
	struct group *gr;
	struct stat st;

	if (slash == NULL || slash == dir) {
		free(dir);
		return;
	}
	*slash = '\0';
	if (stat(dir, &st) == 0) {
		free(dir);
		return;
	}
	if (mkdir(dir, 0750) != 0)
		fatal("mkdir %s", dir);
	if (user != NULL && geteuid() == 0 && (pw = getpwnam(user)) != NULL) {
		gid_t gid = pw->pw_gid;

		if (group != NULL && (gr = getgrnam(group)) != NULL)
			gid = gr->gr_gid;
		if (chown(dir, pw->pw_uid, gid) != 0)
			fatal("chown %s", dir);
	}
	free(dir);
}

/* own_file - give a file we created as root to the daemon's user */
static void
own_file(const char *path, const char *user, const char *group)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if ((pw = getpwnam(user)) == NULL)
		return;
	gid = pw->pw_gid;
	if (group != NULL && (gr = getgrnam(group)) != NULL)
		gid = gr->gr_gid;
	if (chown(path, pw->pw_uid, gid) != 0)
		log_warn("chown %s", path);
}

static void
drop_privileges(const char *user, const char *group)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if ((pw = getpwnam(user)) == NULL)
		fatalx("unknown user %s", user);
	gid = pw->pw_gid;
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL)
			fatalx("unknown group %s", group);
		gid = gr->gr_gid;
	}
	if (initgroups(user, gid) != 0 || setgid(gid) != 0 ||
	    setuid(pw->pw_uid) != 0)
		fatal("cannot become %s", user);
	if (setuid(0) == 0)
		fatalx("could drop root but regain it");
}

static void *
milter_thread(void *arg)
{
	char c = 'X';

	if (milter_run() != 0)
		log_warnx("the milter stopped with an error");
	if (write(sigpipe_fd[1], &c, 1) == -1) {
		/* main notices the stop at its next signal */
	}
	return NULL;
}

/* open_store - the reputation store, if the configuration keeps state */
static struct store *
open_store(const struct conf *conf, char *err, size_t errlen)
{
	struct store_opts o;

	conf_store_opts(conf, &o);
	return store_open(&o, err, errlen);
}

/*
 * check_store - open the store once before detaching, so that what is
 * wrong (a directory the daemon cannot write) is said on the terminal; an
 * LMDB environment must not cross a fork, so it is closed again, and its
 * directory and files are given to the daemon's user.
 */
static void
check_store(const struct conf *conf)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	struct store *st;
	char err[512], path[PATH_MAX];
	size_t i;

	if (!conf_uses_store(conf))
		return;
	if (strcmp(conf->store_backend, "lmdb") == 0) {
		(void)snprintf(path, sizeof(path), "%s/data.mdb",
		    conf->store_path);
		prepare_dir(path, conf->user, conf->group);
	}
	if ((st = open_store(conf, err, sizeof(err))) == NULL)
		fatalx("store: %s", err);
	store_close(st);
	if (strcmp(conf->store_backend, "lmdb") != 0 || conf->user == NULL ||
	    geteuid() != 0)
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", conf->store_path,
		    files[i]);
		own_file(path, conf->user, conf->group);
	}
}

/* sweep - remove expired records now and then (LMDB; Redis expires them) */
static void
sweep(struct runtime *rt)
{
	struct store *st = __atomic_load_n(&rt->store, __ATOMIC_ACQUIRE);
	char err[256];
	long n;

	if (st == NULL)
		return;
	if ((n = store_sweep(st, 10000, err, sizeof(err))) < 0)
		log_warnx("store: sweep: %s", err);
	else if (n > 0)
		log_debug("store: %ld expired records removed", n);
}

static bool
same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* count_decision - the runtime's decision hook: the metrics */
static void
count_decision(void *arg, const struct decision *d)
{
	metrics_decision(arg, d);
}

/* reload - a new snapshot for new sessions; a broken file changes nothing */
static void
reload(struct runtime *rt, const char *file)
{
	struct conf *conf, *old;
	char err[512];

	if ((conf = load(file, false)) == NULL) {
		log_warnx("reload of %s failed: keeping the configuration in "
			  "use",
		    file);
		metrics_reload(rt->metrics, false);
		return;
	}
	metrics_reload(rt->metrics, true);
	if (conf_uses_store(conf) && rt->store == NULL) {
		struct store *st = open_store(conf, err, sizeof(err));

		if (st == NULL)
			log_warnx("store: %s (mail is answered as "
				  "store.on_error says)",
			    err);
		__atomic_store_n(&rt->store, st, __ATOMIC_RELEASE);
	} else if (rt->store != NULL && !conf_same_store(rt->conf, conf))
		log_warnx("store settings take effect at the next restart");
	(void)pthread_mutex_lock(&rt->mu);
	old = rt->conf;
	rt->conf = conf;
	(void)pthread_mutex_unlock(&rt->mu);
	if (!same_text(old->metrics_listen, conf->metrics_listen))
		log_warnx("metrics.listen takes effect at the next restart");
	if (strcmp(old->socket, conf->socket) != 0 ||
	    conf->nresolvers != old->nresolvers ||
	    conf->dns_timeout_ms != old->dns_timeout_ms ||
	    conf->workers != old->workers)
		log_warnx("socket, dns and workers settings take effect at the "
			  "next restart");
	conf_unref(old);
	log_info("configuration reloaded from %s", file);
}

static void
set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART | SA_NODEFER;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	(void)sigaction(SIGPIPE, &sa, NULL);
}

int
main(int argc, char **argv)
{
	const char *file = SPFGUARD_CONF, *socket = NULL, *pidfile = NULL;
	bool foreground = false, check = false, debug = false, stop = false;
	struct runtime rt;
	struct conf *conf;
	struct dns_opts dopts;
	pthread_t mt;
	sigset_t sigs, old;
	struct pollfd pfd;
	struct passwd *pw;
	char err[512], c;
	int ch, n, metrics_fd = -1;

	while ((ch = getopt(argc, argv, "c:dfnp:P:")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 'f':
			foreground = true;
			break;
		case 'n':
			check = true;
			break;
		case 'p':
			socket = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("spfguard", true, debug);
	if ((conf = load(file, true)) == NULL)
		return 1;
	if (check) {
		(void)printf("configuration OK\n");
		conf_unref(conf);
		return 0;
	}
	tune();
	/* copies: a reload frees the snapshot these came from */
	socket = xstrdup(socket != NULL ? socket : conf->socket);
	if (pidfile == NULL && conf->pidfile != NULL)
		pidfile = conf->pidfile;
	if (pidfile != NULL)
		pidfile = xstrdup(pidfile);

	/* what can fail, fails before the daemon detaches */
	if (conf->user != NULL && geteuid() == 0 &&
	    getpwnam(conf->user) == NULL)
		fatalx("user %s does not exist (create it, or unset user)",
		    conf->user);
	if (conf->group != NULL && geteuid() == 0 &&
	    getgrnam(conf->group) == NULL)
		fatalx("group %s does not exist", conf->group);
	if (conf->user != NULL && geteuid() != 0 &&
	    ((pw = getpwnam(conf->user)) == NULL || pw->pw_uid != geteuid()))
		log_warnx("not root: staying user %ld instead of %s",
		    (long)geteuid(), conf->user);

	memset(&rt, 0, sizeof(rt));
	(void)pthread_mutex_init(&rt.mu, NULL);
	rt.conf = conf;
	if (pipe(sigpipe_fd) == -1)
		fatal("pipe");
	if (milter_open(&rt, socket, conf->socket_mode, conf->socket_group, err,
		sizeof(err)) != 0)
		fatalx("%s", err);
	if (pidfile != NULL)
		prepare_dir(pidfile, conf->user, conf->group);
	if (conf->decision_log != NULL) {
		prepare_dir(conf->decision_log, conf->user, conf->group);
		if ((rt.declog = declog_open(conf->decision_log, err,
			 sizeof(err))) == NULL)
			fatalx("decision log: %s", err);
		if (conf->user != NULL && geteuid() == 0)
			own_file(conf->decision_log, conf->user, conf->group);
	}
	check_store(conf);
	if (conf->metrics_listen != NULL &&
	    (metrics_fd = metrics_http_bind(conf->metrics_listen, err,
		 sizeof(err))) == -1)
		fatalx("%s", err);
	if (!foreground) {
		detach();
		log_set_facility(log_facility(conf->syslog_facility));
		log_init("spfguard", false, debug);
	}
	if (pidfile != NULL)
		write_pidfile(pidfile);
	if (conf->user != NULL && geteuid() == 0)
		drop_privileges(conf->user, conf->group);

	/* every thread but this one keeps these signals blocked */
	(void)sigemptyset(&sigs);
	(void)sigaddset(&sigs, SIGHUP);
	(void)sigaddset(&sigs, SIGTERM);
	(void)sigaddset(&sigs, SIGINT);
	(void)sigaddset(&sigs, SIGUSR1);
	(void)pthread_sigmask(SIG_BLOCK, &sigs, &old);
	memset(&dopts, 0, sizeof(dopts));
	dopts.resolvers = (const char **)conf->resolvers;
	dopts.nresolvers = conf->nresolvers;
	dopts.timeout_ms = conf->dns_timeout_ms;
	if ((rt.dns = dns_create(&dopts, err, sizeof(err))) == NULL)
		fatalx("DNS: %s", err);
	rt.jobs = jobs_create(conf->workers);
	if (conf_uses_store(conf) &&
	    (rt.store = open_store(conf, err, sizeof(err))) == NULL)
		fatalx("store: %s", err);
	rt.metrics = metrics_create();
	rt.on_decision = count_decision;
	rt.on_decision_arg = rt.metrics;
	if (metrics_fd != -1 &&
	    metrics_http_start(metrics_fd, &rt, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (pthread_create(&mt, NULL, milter_thread, NULL) != 0)
		fatalx("cannot start the milter thread");
	set_signals();
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	log_info("spfguard %s listening on %s (configuration %s, engine %s)",
	    PACKAGE_VERSION, socket, file, conf->spf_engine);
	if (metrics_fd != -1)
		log_info("metrics on http://%s/metrics", conf->metrics_listen);

	pfd.fd = sigpipe_fd[0];
	pfd.events = POLLIN;
	while (!stop) {
		if ((n = poll(&pfd, 1, SWEEP_EVERY_S * 1000)) == 0) {
			sweep(&rt);
			continue;
		}
		if (n < 0 || read(sigpipe_fd[0], &c, 1) != 1) {
			if (errno == EINTR)
				continue;
			break;
		}
		switch (c) {
		case 'H':
			reload(&rt, file);
			break;
		case 'U':
			if (rt.declog != NULL)
				(void)declog_reopen(rt.declog);
			break;
		default:
			stop = true;
			break;
		}
	}
	log_info("stopping");
	milter_stop();
	(void)pthread_join(mt, NULL);
	metrics_http_stop();
	jobs_destroy(rt.jobs);
	store_close(rt.store);
	dns_destroy(rt.dns);
	declog_close(rt.declog);
	if (pidfile != NULL)
		(void)unlink(pidfile);
	/* libmilter leaves its unix socket behind; a next start would
	   remove it, but a stopped daemon should not look like a live one */
	if (strncmp(socket, "unix:", 5) == 0 ||
	    strncmp(socket, "local:", 6) == 0)
		(void)unlink(strchr(socket, ':') + 1);
	conf_unref(rt.conf);
	metrics_destroy(rt.metrics);
	free((char *)pidfile);
	free((char *)socket);
	return 0;
}
