/*
 * test_macro.c - table-driven tests of the SPF macro checker and expander,
 * starting with the examples of RFC 7208 section 7.4.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include "spf_macro.h"
#include "tap.h"

static const char *
fake_ptr(void *arg)
{
	return arg;
}

static void
env_for(struct spf_macro_env *env, const char *ip)
{
	memset(env, 0, sizeof(*env));
	env->sender = "strong-bad@email.example.com";
	env->local = "strong-bad";
	env->sender_domain = "email.example.com";
	env->domain = "email.example.com";
	env->helo = "mx.example.org";
	env->receiver = "receiver.example.net";
	env->now = 1700000000;
	env->ptr = fake_ptr;
	env->ptr_arg = "mx.email.example.com";
	if (inet_pton(AF_INET, ip, env->ip) == 1)
		env->family = AF_INET;
	else {
		(void)inet_pton(AF_INET6, ip, env->ip);
		env->family = AF_INET6;
		env->nibbles_upper = strpbrk(ip, "ABCDEF") != NULL;
	}
}

static const struct {
	const char *label;
	const char *ip;
	const char *in;
	bool exp;
	const char *want; /* NULL: a syntax error */
} cases[] = {
    {"7.4 s", "192.0.2.3", "%{s}", false, "strong-bad@email.example.com"},
    {"7.4 o", "192.0.2.3", "%{o}", false, "email.example.com"},
    {"7.4 d", "192.0.2.3", "%{d}", false, "email.example.com"},
    {"7.4 d4", "192.0.2.3", "%{d4}", false, "email.example.com"},
    {"7.4 d3", "192.0.2.3", "%{d3}", false, "email.example.com"},
    {"7.4 d2", "192.0.2.3", "%{d2}", false, "example.com"},
    {"7.4 d1", "192.0.2.3", "%{d1}", false, "com"},
    {"7.4 dr", "192.0.2.3", "%{dr}", false, "com.example.email"},
    {"7.4 d2r", "192.0.2.3", "%{d2r}", false, "example.email"},
    {"7.4 l", "192.0.2.3", "%{l}", false, "strong-bad"},
    {"7.4 l-", "192.0.2.3", "%{l-}", false, "strong.bad"},
    {"7.4 lr", "192.0.2.3", "%{lr}", false, "strong-bad"},
    {"7.4 lr-", "192.0.2.3", "%{lr-}", false, "bad.strong"},
    {"7.4 l1r-", "192.0.2.3", "%{l1r-}", false, "strong"},
    {"7.4 ir v", "192.0.2.3", "%{ir}.%{v}._spf.%{d2}", false,
	"3.2.0.192.in-addr._spf.example.com"},
    {"7.4 lr- lp", "192.0.2.3", "%{lr-}.lp._spf.%{d2}", false,
	"bad.strong.lp._spf.example.com"},
    {"7.4 lr- ir", "192.0.2.3", "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", false,
	"bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
    {"7.4 ir l1r-", "192.0.2.3", "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", false,
	"3.2.0.192.in-addr.strong.lp._spf.example.com"},
    {"7.4 d2 trusted", "192.0.2.3", "%{d2}.trusted-domains.example.net", false,
	"example.com.trusted-domains.example.net"},
    {"7.4 ipv6 ir", "2001:db8::cb01", "%{ir}.%{v}._spf.%{d2}", false,
	"1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	".ip6._spf.example.com"},
    {"ipv6 nibbles follow the address's case", "2001:DB8::CB01", "%{ir}.%{v}",
	false,
	"1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
	".8.B.D.0.1.0.0.2.ip6"},
    {"upper-case escapes", "192.0.2.3", "%{S}", false,
	"strong-bad%40email.example.com"},
    {"escapes %% %_ %-", "192.0.2.3", "a%%b%_c%-d", true, "a%b c%20d"},
    {"h", "192.0.2.3", "%{h}", false, "mx.example.org"},
    {"p from callback", "192.0.2.3", "%{p}", false, "mx.email.example.com"},
    {"c in exp", "2001:db8::cb01", "%{c}", true, "2001:db8::cb01"},
    {"r in exp", "192.0.2.3", "%{r}", true, "receiver.example.net"},
    {"t in exp", "192.0.2.3", "%{t}", true, "1700000000"},
    {"i of v4 is dotted", "192.0.2.3", "%{i}", false, "192.0.2.3"},
    {"digit larger than parts", "192.0.2.3", "%{d99}", false,
	"email.example.com"},
    {"several delimiters", "192.0.2.3", "%{l-.}", false, "strong.bad"},
    {"upper-case r transformer", "192.0.2.3", "%{dR}", false,
	"com.example.email"},
    {"space in exp text", "192.0.2.3", "see %{d}", true,
	"see email.example.com"},
    {"space not in domain-spec", "192.0.2.3", "a b", false, NULL},
    {"c outside exp", "192.0.2.3", "%{c}", false, NULL},
    {"r outside exp", "192.0.2.3", "%{r}", false, NULL},
    {"t outside exp", "192.0.2.3", "%{t}", false, NULL},
    {"unknown letter", "192.0.2.3", "%{x}", false, NULL},
    {"zero digit", "192.0.2.3", "%{d0}", false, NULL},
    {"unterminated", "192.0.2.3", "%{d", false, NULL},
    {"lone percent", "192.0.2.3", "abc%", false, NULL},
    {"bad escape", "192.0.2.3", "%a", false, NULL},
    {"bad delimiter", "192.0.2.3", "%{d:}", false, NULL},
    {"non-ascii", "192.0.2.3", "caf\xc3\xa9", true, NULL},
};

int
main(void)
{
	struct spf_macro_env env;
	struct buf out;
	char err[128];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		env_for(&env, cases[i].ip);
		buf_init(&out);
		rc = spf_macro_expand(cases[i].in, strlen(cases[i].in),
		    cases[i].exp, &env, &out, err, sizeof(err));
		if (cases[i].want == NULL)
			TAP_OK(rc != 0 &&
				spf_macro_check(cases[i].in,
				    strlen(cases[i].in), cases[i].exp, err,
				    sizeof(err)) != 0,
			    "%s: rejected", cases[i].label);
		else
			TAP_OK(rc == 0 &&
				strcmp(buf_str(&out), cases[i].want) == 0,
			    "%s: \"%s\" -> \"%s\"", cases[i].label, cases[i].in,
			    buf_str(&out));
		buf_free(&out);
	}

	/* an exp= text of repeated %{l} stops growing at max_len */
	{
		char big[513];

		for (i = 0; i + 4 <= 512; i += 4)
			memcpy(big + i, "%{l}", 4);
		big[i] = '\0';
		env_for(&env, "192.0.2.3");
		env.max_len = 300;
		buf_init(&out);
		rc = spf_macro_expand(big, strlen(big), true, &env, &out, err,
		    sizeof(err));
		TAP_OK(rc == 0 && out.len <= 300 + strlen("strong-bad"),
		    "expansion bounded by max_len (%zu bytes)", out.len);
		buf_free(&out);
	}
	TAP_DONE();
}
