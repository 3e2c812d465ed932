/*
 * milter.h - the libmilter glue. The only module that includes libmilter.
 *
 * milter_open() registers the filter and opens the listening socket (as
 * root, before privileges are dropped), sets TCP_NODELAY on it, and sets a
 * unix socket's mode and group. milter_run() serves until milter_stop();
 * it returns 0 after a clean stop.
 */
#ifndef SPFGUARD_MILTER_H
#define SPFGUARD_MILTER_H

#include "ctx.h"

int milter_open(struct runtime *, const char *socket, int socket_mode,
    const char *socket_group, char *err, size_t errlen);
int milter_run(void);
void milter_stop(void);

#endif
