/*
 * fuzz_macro.c - the macro checker and expander (spf_macro.h).
 *
 * Input: one flags byte, then NUL-separated fields: the macro-string,
 * sender, local-part, sender domain, domain, HELO, receiver, the %{p}
 * name, the client address (text; default 192.0.2.1).
 * Flags: bit 0 explanation letters allowed, bit 1 IPv6 nibbles in upper
 * case, bits 2-3 max_len (0, 16, 253, 4096), bit 4 receiver NULL, bit 5
 * no %{p} callback.
 *
 * Invariants: without a length bound, spf_macro_check() and
 * spf_macro_expand() agree on validity; a string that
 * spf_macro_uses_ptr() says does not use %{p} never calls the %{p}
 * callback.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "spf_macro.h"

struct ptr_arg {
	const char *name;
	int calls;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static const char *
ptr_name(void *arg)
{
	struct ptr_arg *p = arg;

	p->calls++;
	return p->name;
}

/* str - field i, or a default */
static const char *
str(const struct fuzz_fields *f, size_t i, const char *def)
{
	const char *s = fuzz_field(f, i);

	return s != NULL ? s : def;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = {0, 16, 253, 4096};
	struct spf_macro_env env;
	struct fuzz_fields f;
	struct ptr_arg pa;
	struct buf out;
	const char *s, *ip;
	char err1[256], err2[256];
	uint8_t flags;
	bool exp, uses_ptr;
	int c, e;

	if (size < 1)
		return 0;
	flags = data[0];
	fuzz_split(data + 1, size - 1, '\0', 10, &f);
	s = str(&f, 0, "");
	exp = (flags & 1) != 0;

	memset(&env, 0, sizeof(env));
	env.sender = str(&f, 1, "strong-bad@email.example.com");
	env.local = str(&f, 2, "strong-bad");
	env.sender_domain = str(&f, 3, "email.example.com");
	env.domain = str(&f, 4, "email.example.com");
	env.helo = str(&f, 5, "mx.example.org");
	env.receiver = (flags & 16) != 0 ? NULL : str(&f, 6, "mx.test");
	pa.name = str(&f, 7, "mx.example.org");
	pa.calls = 0;
	if ((flags & 32) == 0) {
		env.ptr = ptr_name;
		env.ptr_arg = &pa;
	}
	ip = str(&f, 8, "192.0.2.1");
	if (inet_pton(AF_INET, ip, env.ip) == 1)
		env.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, env.ip) == 1)
		env.family = AF_INET6;
	else {
		env.family = AF_INET;
		(void)inet_pton(AF_INET, "192.0.2.1", env.ip);
	}
	env.nibbles_upper = (flags & 2) != 0;
	env.now = 1700000000;
	env.max_len = maxes[(flags >> 2) & 3];

	c = spf_macro_check(s, f.len[0], exp, err1, sizeof(err1));
	uses_ptr = spf_macro_uses_ptr(s, f.len[0]);
	buf_init(&out);
	e = spf_macro_expand(s, f.len[0], exp, &env, &out, err2, sizeof(err2));
	if (env.max_len == 0 && (c == 0) != (e == 0))
		fuzz_fail(c == 0 ? "checked valid, expansion failed"
				 : "checked invalid, expansion succeeded",
		    s);
	if (!uses_ptr && pa.calls > 0)
		fuzz_fail("%{p} expanded but uses_ptr() said no", s);
	buf_free(&out);
	fuzz_fields_free(&f);
	return 0;
}
