/*
 * buf.h - growable byte buffers and the escaping every output needs.
 *
 * A struct buf owns its memory; buf_free() releases it. The data is kept
 * NUL-terminated so buf_str() is always a C string. The escapers are the
 * edge where untrusted text (DNS data, SMTP strings) becomes output.
 */
#ifndef SPFGUARD_BUF_H
#define SPFGUARD_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *);
void buf_free(struct buf *);
void buf_reset(struct buf *);
void buf_add(struct buf *, const void *, size_t);
void buf_adds(struct buf *, const char *);
void buf_addc(struct buf *, char);
void
buf_addf(struct buf *, const char *, ...) __attribute__((format(printf, 2, 3)));
const char *buf_str(const struct buf *);
char *buf_release(struct buf *);

/* JSON string literal, quotes included; bytes >= 0x80 and controls escaped */
void buf_add_json(struct buf *, const char *, size_t);
void buf_add_jsons(struct buf *, const char *);

#endif
