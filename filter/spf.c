/*
 * spf.c - the SPF module's front: engine choice, request normalisation
 * shared by the engines, result names, and the response's lifetime.
 *
 * spf_check() times the evaluation and leaves everything else to the
 * engine. A response owns its strings; spf_response_free() releases them
 * and tolerates a response that was never filled.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "spf.h"
#include "spf_check.h"
#include "spf_macro.h"
#include "xalloc.h"

static const struct spf_engine *const engines[] = {
    &spf_engine_builtin,
#ifdef HAVE_LIBSPF2
    &spf_engine_libspf2,
#endif
};

static const char *const result_names[] = {
    [SPF_NONE] = "none",
    [SPF_NEUTRAL] = "neutral",
    [SPF_PASS] = "pass",
    [SPF_FAIL] = "fail",
    [SPF_SOFTFAIL] = "softfail",
    [SPF_TEMPERROR] = "temperror",
    [SPF_PERMERROR] = "permerror",
};

const struct spf_engine *
spf_engine_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return engines[0];
	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (strcmp(engines[i]->name, name) == 0)
			return engines[i];
	return NULL;
}

const char *
spf_engine_names(void)
{
#ifdef HAVE_LIBSPF2
	return "builtin, libspf2";
#else
	return "builtin";
#endif
}

const char *
spf_result_name(enum spf_result r)
{
	if ((size_t)r < sizeof(result_names) / sizeof(result_names[0]))
		return result_names[r];
	return "?";
}

int
spf_result_parse(const char *s, enum spf_result *r)
{
	size_t i;

	for (i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++) {
		if (strcasecmp(s, result_names[i]) == 0) {
			*r = (enum spf_result)i;
			return 0;
		}
	}
	return -1;
}

const char *
spf_identity_name(enum spf_identity id)
{
	return id == SPF_ID_HELO ? "helo" : "mailfrom";
}

int
spf_client_parse(const char *s, struct spf_client *c)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	    0xff};

	memset(c, 0, sizeof(*c));
	if (s == NULL)
		return -1;
	if (inet_pton(AF_INET, s, c->ip) == 1) {
		c->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, c->ip) != 1)
		return -1;
	c->family = AF_INET6;
	if (memcmp(c->ip, mapped, sizeof(mapped)) == 0) {
		/* RFC 7208 5: an IPv4-mapped client is an IPv4 client */
		memmove(c->ip, c->ip + 12, 4);
		memset(c->ip + 4, 0, 12);
		c->family = AF_INET;
	}
	return 0;
}

bool
spf_ip_ok(const char *s)
{
	struct spf_client c;

	return spf_client_parse(s, &c) == 0;
}

/* spf_domain_checkable - a multi-label name with sane labels (RFC 7208
 * 4.3); domain literals and single labels give "none" */
bool
spf_domain_checkable(const char *d)
{
	return d[0] != '[' && strchr(d, '.') != NULL && dns_name_ok(d) &&
	    d[strspn(d, ".")] != '\0';
}

static bool
null_sender(const char *s)
{
	return s == NULL || s[0] == '\0' || strcmp(s, "<>") == 0;
}

void
spf_identity_setup(const struct spf_request *req, struct spf_response *resp,
    char **local)
{
	const char *helo = req->helo != NULL ? req->helo : "";
	char *at;
	size_t n;

	if (req->identity == SPF_ID_HELO || null_sender(req->sender)) {
		/* RFC 7208 2.3, 2.4: postmaster@HELO */
		resp->identity =
		    null_sender(req->sender) ? SPF_ID_HELO : req->identity;
		n = strlen(helo) + sizeof("postmaster@");
		resp->sender = xmalloc(n);
		(void)strcpy(resp->sender, "postmaster@");
		(void)strcat(resp->sender, helo);
	} else {
		resp->identity = SPF_ID_MAILFROM;
		n = strlen(req->sender);
		if (n >= 2 && req->sender[0] == '<' &&
		    req->sender[n - 1] == '>')
			resp->sender = xstrndup(req->sender + 1, n - 2);
		else
			resp->sender = xstrdup(req->sender);
		if (strrchr(resp->sender, '@') == NULL) {
			/* a bare domain: its postmaster */
			char *s = xmalloc(
			    strlen(resp->sender) + sizeof("postmaster@"));

			(void)strcpy(s, "postmaster@");
			(void)strcat(s, resp->sender);
			free(resp->sender);
			resp->sender = s;
		} else if (resp->sender[0] == '@') {
			/* no local-part: RFC 7208 4.3 says postmaster */
			char *s = xmalloc(
			    strlen(resp->sender) + sizeof("postmaster"));

			(void)strcpy(s, "postmaster");
			(void)strcat(s, resp->sender);
			free(resp->sender);
			resp->sender = s;
		}
	}
	at = strrchr(resp->sender, '@');
	resp->domain = xstrdup(at + 1);
	*local = xstrndup(resp->sender, (size_t)(at - resp->sender));
}

/* spf_sanitise - printable ASCII of an explanation, at most
 * SPF_MAX_EXPLANATION bytes; the caller frees it */
char *
spf_sanitise(const char *s, size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < n && b.len < SPF_MAX_EXPLANATION; i++)
		if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
			buf_addc(&b, s[i]);
	return buf_release(&b);
}

/* spf_query_name - a name as it is queried: no final dot, cut from the
 * left to 253 octets (RFC 7208 7.3); the caller frees it */
char *
spf_query_name(const char *name, size_t n)
{
	const char *p = name, *dot;

	if (n > 0 && name[n - 1] == '.')
		n--;
	while (n > DNS_MAX_NAME && (dot = memchr(p, '.', n)) != NULL) {
		n -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	return xstrndup(p, n);
}

/* spf_macro_env_init - the macro values of an evaluation, for <domain>;
 * the caller adds the %{p} callback and any expansion limit */
void
spf_macro_env_init(struct spf_macro_env *env, const struct spf_request *req,
    const struct spf_response *resp, const char *local,
    const struct spf_client *client, const char *domain)
{
	memset(env, 0, sizeof(*env));
	env->sender = resp->sender;
	env->local = local;
	env->sender_domain = resp->domain;
	env->domain = domain;
	env->family = client->family;
	memcpy(env->ip, client->ip, sizeof(env->ip));
	/*
	 * The case of IPv6 nibbles follows the address as the MTA wrote it:
	 * RFC 7208's example (7.4) and the conformance suite (v-macro-ip6)
	 * disagree otherwise. DNS ignores case; only explanations show it.
	 */
	env->nibbles_upper = client->family == AF_INET6 && req->ip != NULL &&
	    strpbrk(req->ip, "ABCDEF") != NULL;
	env->helo = req->helo != NULL ? req->helo : "";
	env->receiver = req->receiver;
	env->now = (long long)time(NULL);
}

void
spf_check(const struct spf_engine *eng, struct dns_ctx *dns,
    const struct spf_request *req, struct spf_response *resp)
{
	struct timespec t0, t1;

	memset(resp, 0, sizeof(*resp));
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	eng->check(dns, req, resp);
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	resp->elapsed_ms = (long)(t1.tv_sec - t0.tv_sec) * 1000L +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000L;
}

void
spf_response_free(struct spf_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->domain);
	free(resp->sender);
	free(resp->mechanism);
	free(resp->problem);
	free(resp->explanation);
	memset(resp, 0, sizeof(*resp));
}
