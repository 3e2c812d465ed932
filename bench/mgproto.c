/*
 * mgproto.c - milter packets as the MTA writes them, for miltergen: a
 * growing output buffer (allocation succeeds or the program aborts), the
 * command and macro packets, and option negotiation as Postfix 3.7 offers
 * it.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "miltergen.h"

/* every action and protocol flag of version 6, as Postfix offers them */
#define OFFER_VERSION  6U
#define OFFER_ACTIONS  0x1ffU	 /* SMFIF_ADDHDRS .. SMFIF_SETSYMLIST */
#define OFFER_PROTOCOL 0x1fffffU /* SMFIP_NOCONNECT .. SMFIP_HDR_LEADSPC */

static const struct {
	char cmd;
	const char *name;
} mods[NMODS] = {
    {SMFIR_ADDHEADER, "addheader"},
    {SMFIR_INSHEADER, "insheader"},
    {SMFIR_CHGHEADER, "chgheader"},
    {SMFIR_ADDRCPT, "addrcpt"},
    {SMFIR_DELRCPT, "delrcpt"},
    {SMFIR_ADDRCPT_PAR, "addrcpt_par"},
    {SMFIR_CHGFROM, "chgfrom"},
    {SMFIR_REPLBODY, "replbody"},
    {SMFIR_QUARANTINE, "quarantine"},
};

void *
mg_realloc(void *p, size_t n)
{
	if ((p = realloc(p, n == 0 ? 1 : n)) == NULL)
		abort();
	return p;
}

void *
mg_calloc(size_t n)
{
	void *p;

	if ((p = calloc(1, n == 0 ? 1 : n)) == NULL)
		abort();
	return p;
}

char *
mg_strdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		abort();
	return p;
}

void
obuf_put(struct obuf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n) {
		b->cap = (b->len + n) * 2 + 256;
		b->data = mg_realloc(b->data, b->cap);
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
put32(struct obuf *b, uint32_t v)
{
	v = htonl(v);
	obuf_put(b, &v, 4);
}

void
obuf_cmd(struct obuf *b, char cmd, const void *data, size_t len)
{
	put32(b, (uint32_t)len + 1);
	obuf_put(b, &cmd, 1);
	obuf_put(b, data, len);
}

void
obuf_macro(struct obuf *b, char event, const char *const *kv)
{
	size_t len = 1, i;

	for (i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2)
		len += strlen(kv[i]) + strlen(kv[i + 1]) + 2;
	put32(b, (uint32_t)len + 1);
	obuf_put(b, (char[]){SMFIC_MACRO}, 1);
	obuf_put(b, &event, 1);
	for (i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
		obuf_put(b, kv[i], strlen(kv[i]) + 1);
		obuf_put(b, kv[i + 1], strlen(kv[i + 1]) + 1);
	}
}

void
obuf_optneg(struct obuf *b)
{
	put32(b, 13);
	obuf_put(b, (char[]){SMFIC_OPTNEG}, 1);
	put32(b, OFFER_VERSION);
	put32(b, OFFER_ACTIONS);
	put32(b, OFFER_PROTOCOL);
}

int
mg_modification(char cmd)
{
	int i;

	for (i = 0; i < NMODS; i++)
		if (mods[i].cmd == cmd)
			return i + 1;
	return 0;
}

const char *
mg_modification_name(int i)
{
	return i >= 0 && i < NMODS ? mods[i].name : "?";
}
