/*
 * conf_impl.h - the configuration loader's state and helpers, shared by
 * conf.c (the option table, the file and its @includes, the snapshot),
 * conf_policy.c (mode, trusted_networks, lists, rules, policy_sets) and
 * conf_rep.c (dnsbl, rhsbl, ratelimits). Private to filter/: the public
 * API is include/conf.h. These three files are libconfig's only users.
 */
#ifndef SPFGUARD_CONF_IMPL_H
#define SPFGUARD_CONF_IMPL_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "conf.h"
#include "policy.h"

#define NAME_MAX_LEN	64  /* rule and set names */
#define PATTERN_MAX_LEN 255 /* one domain, host or user pattern */
#define LETTERS		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define NAME_CHARS	LETTERS "0123456789-_."
#define WHAT_LEN	160 /* "rule \"name\": match: client" */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A key of a group the policy code reads: its name and help text. */
struct key {
	const char *name;
	const char *syntax;
	const char *meaning;
};

struct named_list {
	const char *name; /* borrowed from libconfig */
	struct policy_cidr *nets;
	size_t n;
};

/* The loader's state: one per conf_load() call. */
struct ld {
	struct buf *errors;
	int nerrors;
	const char *path;
	char *dir; /* @include is relative to it */
	struct conf *conf;
	struct named_list *lists;
	size_t nlists;
};

/* conf.c: messages and typed reads; every error is gathered in ld */
void conf_cut(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));
char *conf_file_name(const struct ld *, const char *);
void conf_error_at(struct ld *, const char *, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));
const char *conf_esc(const char *, char *, size_t);
const char *conf_label(char *, size_t, const char *, const char *);
const char *conf_get_str(struct ld *, const config_setting_t *, const char *);
int conf_get_int(struct ld *, const config_setting_t *, const char *, long long,
    long long, long long *);
int conf_get_bool(struct ld *, const config_setting_t *, const char *, bool *);
typedef void conf_elem_fn(struct ld *, const config_setting_t *,
    const char *what, const char *value, void *arg);
void conf_each_string(struct ld *, const config_setting_t *, const char *, bool,
    conf_elem_fn *, void *);
void conf_known_keys(struct ld *, const config_setting_t *, const char *,
    const struct key *, size_t);
const char *conf_opt_default(const char *);
void conf_describe_keys(struct buf *, const char *, const struct key *, size_t);

/* bad - an error about a setting, at its file and line */
#define bad(ld, s, ...)                                                        \
	conf_error_at((ld), config_setting_source_file(s),                     \
	    (int)config_setting_source_line(s), __VA_ARGS__)

/* conf_policy.c */
void conf_load_policy(struct ld *, const config_setting_t *root);
bool conf_is_list(const config_setting_t *);
const char *conf_read_name(struct ld *, const config_setting_t *, const char *,
    const config_setting_t **);
void conf_read_codes(struct ld *, const config_setting_t *,
    struct policy_rule *, const char *, bool);
void conf_describe_policy(struct buf *);

/* conf_rep.c */
void conf_read_reputation(struct ld *, const config_setting_t *root,
    struct policy *);
void conf_finish_reputation(struct conf *);
void conf_describe_reputation(struct buf *);

#endif
