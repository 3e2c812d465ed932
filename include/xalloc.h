/*
 * xalloc.h - checked allocation: these succeed or abort the process.
 *
 * Running out of memory in a mail filter is not a condition any caller can
 * usefully handle; failing loudly beats limping on with half a context.
 */
#ifndef SPFGUARD_XALLOC_H
#define SPFGUARD_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);

#endif
