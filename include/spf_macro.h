/*
 * spf_macro.h - SPF macro strings (RFC 7208 section 7).
 *
 * spf_macro_check() validates the syntax of a macro-string, with or without
 * the letters only allowed in explanations (c, r, t). spf_macro_expand()
 * expands one into a buffer from a struct spf_macro_env, with transformers,
 * delimiters and URL escaping for upper-case letters. Both are pure; the
 * %{p} value comes from a callback so that the PTR lookups it needs happen
 * only when a record uses it.
 */
#ifndef SPFGUARD_SPF_MACRO_H
#define SPFGUARD_SPF_MACRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct spf_macro_env {
	const char *sender;	       /* s: <sender> */
	const char *local;	       /* l: local-part of <sender> */
	const char *sender_domain;     /* o: domain of <sender> */
	const char *domain;	       /* d: <domain> being checked */
	int family;		       /* AF_INET or AF_INET6 */
	uint8_t ip[16];		       /* i, c, v */
	bool nibbles_upper;	       /* %{i} of IPv6 in upper case */
	const char *helo;	       /* h */
	const char *receiver;	       /* r; NULL: "unknown" */
	long long now;		       /* t */
	const char *(*ptr)(void *arg); /* p; NULL: "unknown" */
	void *ptr_arg;
	size_t max_len; /* stop expanding past this; 0: no
			   limit */
};

/* 0 when the string is a valid macro-string, else -1 and a reason. */
int spf_macro_check(const char *s, size_t len, bool exp_letters, char *err,
    size_t errlen);

/* Expand into out (appending). 0, or -1 and a reason on a syntax error. */
int spf_macro_expand(const char *s, size_t len, bool exp_letters,
    const struct spf_macro_env *, struct buf *out, char *err, size_t errlen);

/* Does the string use %{p} (a PTR lookup)? */
bool spf_macro_uses_ptr(const char *s, size_t len);

#endif
