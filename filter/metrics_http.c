/*
 * metrics_http.c - the metrics page over HTTP, with libmicrohttpd: the
 * only libmicrohttpd user, in the daemon only.
 *
 * The listening socket is made by metrics_http_bind() before the daemon
 * detaches (so that a bad or busy address is said on the terminal and the
 * daemon does not start), and served by libmicrohttpd's own thread, started
 * after the fork by metrics_http_start(). GET /metrics (or /) answers the
 * page; anything else 404. Each request reads the counters at that moment.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "ctx.h"
#include "metrics.h"
#include "metrics_http.h"

static struct MHD_Daemon *mhd;
static struct runtime *mrt;

int
metrics_http_bind(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	if (metrics_listen_parse(addr, &ss, &len, err, errlen) != 0)
		return -1;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 16) != 0) {
		(void)snprintf(err, errlen, "metrics.listen %s: %s", addr,
		    strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return -1;
	}
	return fd;
}

/* page - the counters now */
static void
page(struct buf *b)
{
	struct runtime *rt = mrt;
	struct metrics_sources src;
	struct dns_stats dns;
	struct jobs_stats jobs;
	struct declog_stats dl;
	struct store_stats st;
	struct store *store;

	memset(&src, 0, sizeof(src));
	dns_get_stats(rt->dns, &dns);
	src.dns = &dns;
	jobs_get_stats(rt->jobs, &jobs);
	src.jobs = &jobs;
	if (rt->declog != NULL) {
		declog_get_stats(rt->declog, &dl);
		src.declog = &dl;
	}
	if ((store = __atomic_load_n(&rt->store, __ATOMIC_ACQUIRE)) != NULL) {
		store_get_stats(store, &st);
		src.store = &st;
	}
	(void)pthread_mutex_lock(&rt->mu);
	src.sessions = rt->sessions;
	src.store_failures = rt->store_failures;
	(void)pthread_mutex_unlock(&rt->mu);
	metrics_format(rt->metrics, &src, b);
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static const char notfound[] = "not found: the page is /metrics\n";
	struct MHD_Response *resp;
	enum MHD_Result rc;
	struct buf b;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return MHD_NO;
	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/") != 0) {
		resp = MHD_create_response_from_buffer(sizeof(notfound) - 1,
		    (void *)notfound, MHD_RESPMEM_PERSISTENT);
		rc = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, resp);
		MHD_destroy_response(resp);
		return rc;
	}
	buf_init(&b);
	page(&b);
	resp = MHD_create_response_from_buffer(b.len, b.data,
	    MHD_RESPMEM_MUST_COPY);
	buf_free(&b);
	if (resp == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(resp, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return rc;
}

int
metrics_http_start(int fd, struct runtime *rt, char *err, size_t errlen)
{
	mrt = rt;
	mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_ERROR_LOG,
	    0, NULL, NULL, answer, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_END);
	if (mhd == NULL) {
		(void)snprintf(err, errlen,
		    "metrics: libmicrohttpd did not "
		    "start");
		return -1;
	}
	return 0;
}

void
metrics_http_stop(void)
{
	if (mhd != NULL)
		MHD_stop_daemon(mhd);
	mhd = NULL;
}
