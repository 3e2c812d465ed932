/*
 * metrics_http.h - the metrics page served over HTTP (the daemon only).
 */
#ifndef SPFGUARD_METRICS_HTTP_H
#define SPFGUARD_METRICS_HTTP_H

#include <stddef.h>

struct runtime;

/* Bind and listen on metrics.listen: the socket, or -1 and a reason. */
int metrics_http_bind(const char *addr, char *err, size_t errlen);

/* Serve the page from fd on a thread of its own; 0 or -1. */
int metrics_http_start(int fd, struct runtime *, char *err, size_t errlen);
void metrics_http_stop(void);

#endif
