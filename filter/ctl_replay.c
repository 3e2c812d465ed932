/*
 * ctl_replay.c - spfguardctl replay: a changed policy over logged
 * decisions, without DNS.
 *
 *	spfguardctl replay -c NEW.conf [--json] [--all] [filters] LOG...
 *
 * Each logged decision is turned back into the facts it was made from
 * (client, HELO, sender, authenticated user, each identity's SPF result,
 * blocklist answers, rate limits over, history class, greylist state) and
 * the new configuration's rules are run over them for each of its
 * recipients. What the rules decide (the "would" action, so that a policy
 * in monitor mode can be judged too) is compared with what the logged
 * decision's rules decided. Printed: counts by old -> new action, and
 * every decision that changes (--all: every one).
 *
 * Facts the log cannot give are said, never guessed silently: a blocklist
 * or rate limit the new configuration names but the logged decision did
 * not look up counts as not listed / not over, and history that was not
 * kept is unknown; a warning names them once. A greylist rule defers
 * unless the logged decision had passed a greylist.
 *
 * Exit status: 0 when the log was replayed (changes or not), 1 when the
 * configuration or a file could not be read, 2 on a usage error.
 */
#include "autoconf.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "conf.h"
#include "ctl.h"
#include "ctl_policy.h"
#include "ctx.h"
#include "log.h"
#include "policy.h"
#include "xalloc.h"

static const char replay_usage[] =
    "usage: spfguardctl replay -c NEW.conf [--json] [--all]\n"
    "    " CTL_FILTER_USAGE "\n"
    "    LOG ...\n"
    "LOG: a decision log, plain or .gz; \"-\": stdin.\n";

#define MAX_NAMES 64 /* lists and limits of one record */

/* A count of old -> new actions. */
struct change {
	enum policy_action from, to;
	unsigned long n;
};

struct replay {
	struct conf *conf;
	bool json, all;
	unsigned long decisions, recipients, changed;
	struct change *changes;
	size_t nchanges;
	/* what the new configuration uses that logged records lacked */
	bool missing_history;
	char **missing;
	size_t nmissing;
};

/* rec_bool - a boolean member, false when absent */
static bool
rec_bool(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

static bool
result_of(const json_t *rec, const char *path, enum spf_result *r)
{
	const char *v = logread_str(rec, path);

	return v != NULL && spf_result_parse(v, r) == 0;
}

static void
note_missing(struct replay *rp, const char *what, const char *name)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_addf(&b, "%s \"%s\"", what, name);
	for (i = 0; i < rp->nmissing; i++)
		if (strcmp(rp->missing[i], buf_str(&b)) == 0) {
			buf_free(&b);
			return;
		}
	rp->missing =
	    xreallocarray(rp->missing, rp->nmissing + 1, sizeof(*rp->missing));
	rp->missing[rp->nmissing++] = buf_release(&b);
}

/* names - the logged lists of a kind with a status, or the limits over */
static size_t
names(const json_t *rec, const char *kind, const char *status, const char **out)
{
	const json_t *arr, *e;
	const char *k, *s, *name;
	size_t i, n = 0;

	if (kind == NULL) {
		arr = json_object_get(rec, "rates");
		json_array_foreach(arr, i, e)
		{
			name = json_string_value(json_object_get(e, "limit"));
			if (name != NULL && rec_bool(e, "over") &&
			    n < MAX_NAMES)
				out[n++] = name;
		}
		return n;
	}
	arr = json_object_get(rec, "lists");
	json_array_foreach(arr, i, e)
	{
		name = json_string_value(json_object_get(e, "list"));
		k = json_string_value(json_object_get(e, "kind"));
		s = json_string_value(json_object_get(e, "status"));
		if (name != NULL && k != NULL && s != NULL &&
		    strcmp(k, kind) == 0 && strcmp(s, status) == 0 &&
		    n < MAX_NAMES)
			out[n++] = name;
	}
	return n;
}

/* looked_up - did the logged decision look this list or limit up? */
static bool
looked_up(const json_t *rec, const char *array, const char *key,
    const char *name)
{
	const json_t *e;
	const char *v;
	size_t i;

	json_array_foreach(json_object_get(rec, array), i, e)
	{
		v = json_string_value(json_object_get(e, key));
		if (v != NULL && strcmp(v, name) == 0)
			return true;
	}
	return false;
}

/* check_missing - what the new configuration asks that the record lacks */
static void
check_missing(struct replay *rp, const json_t *rec)
{
	const struct conf *c = rp->conf;
	size_t i;

	if (rec_bool(rec, "trusted") ||
	    json_string_value(json_object_get(rec, "auth")) != NULL)
		return; /* nothing is looked up for them */
	for (i = 0; i < c->ndnsbls; i++)
		if (!looked_up(rec, "lists", "list", c->dnsbls[i].name))
			note_missing(rp,
			    c->dnsbls[i].kind == DNSBL_IP ? "dnsbl" : "rhsbl",
			    c->dnsbls[i].name);
	for (i = 0; i < c->nlimits; i++)
		if (!looked_up(rec, "rates", "limit", c->limits[i].name))
			note_missing(rp, "rate limit", c->limits[i].name);
	if (c->history && json_is_null(json_object_get(rec, "history")))
		rp->missing_history = true;
}

/* logged_greylist - a greylist rule under replay: defer unless the
 * logged decision had passed one */
static int
logged_greylist(void *arg, const struct policy_facts *f, unsigned *retry_s)
{
	const json_t *rec = arg;
	const char *state = logread_str(rec, "greylist.state");

	*retry_s = 0;
	return state != NULL && strcmp(state, "passed") == 0 ? 0 : 1;
}

static void
count_change(struct replay *rp, enum policy_action from, enum policy_action to)
{
	size_t i;

	for (i = 0; i < rp->nchanges; i++)
		if (rp->changes[i].from == from && rp->changes[i].to == to) {
			rp->changes[i].n++;
			return;
		}
	rp->changes =
	    xreallocarray(rp->changes, rp->nchanges + 1, sizeof(*rp->changes));
	rp->changes[rp->nchanges].from = from;
	rp->changes[rp->nchanges].to = to;
	rp->changes[rp->nchanges++].n = 1;
}

static void
show(struct replay *rp, const json_t *rec, const char *rcpt,
    enum policy_action from, const char *old_rule,
    const struct policy_verdict *v)
{
	struct buf b;
	const char *new_rule = v->rule != NULL ? v->rule->name : "-";

	buf_init(&b);
	if (rp->json) {
		buf_adds(&b, "{\"time\":");
		buf_add_jsons(&b, logread_str(rec, "time"));
		buf_adds(&b, ",\"queue_id\":");
		buf_add_jsons(&b, logread_str(rec, "queue_id"));
		buf_adds(&b, ",\"client_ip\":");
		buf_add_jsons(&b, logread_str(rec, "client_ip"));
		buf_adds(&b, ",\"sender\":");
		buf_add_jsons(&b, logread_str(rec, "sender"));
		buf_adds(&b, ",\"rcpt\":");
		buf_add_jsons(&b, rcpt);
		buf_adds(&b, ",\"old\":{\"action\":");
		buf_add_jsons(&b, policy_action_name(from));
		buf_adds(&b, ",\"rule\":");
		buf_add_jsons(&b, old_rule);
		buf_adds(&b, "},\"new\":{\"action\":");
		buf_add_jsons(&b, policy_action_name(v->would));
		buf_adds(&b, ",\"rule\":");
		buf_add_jsons(&b, v->rule != NULL ? v->rule->name : NULL);
		buf_adds(&b, ",\"reply\":");
		if (v->text != NULL && policy_action_refuses(v->would)) {
			buf_addf(&b, "{\"code\":%d,\"xcode\":", v->code);
			buf_add_jsons(&b, v->xcode);
			buf_adds(&b, ",\"text\":");
			buf_add_jsons(&b, v->text);
			buf_addc(&b, '}');
		} else
			buf_adds(&b, "null");
		buf_adds(&b, "}}\n");
	} else {
		ctl_text_n(&b,
		    logread_str(rec, "time") != NULL ? logread_str(rec, "time")
						     : "-",
		    19);
		buf_addc(&b, ' ');
		ctl_text_n(&b,
		    logread_str(rec, "client_ip") != NULL
			? logread_str(rec, "client_ip")
			: "-",
		    SIZE_MAX);
		buf_adds(&b, " <");
		ctl_text_n(&b,
		    logread_str(rec, "sender") != NULL
			? logread_str(rec, "sender")
			: "",
		    SIZE_MAX);
		buf_adds(&b, "> -> <");
		ctl_text_n(&b, rcpt, SIZE_MAX);
		buf_addf(&b, ">: %s (%s) -> %s (%s)", policy_action_name(from),
		    old_rule != NULL ? old_rule : "-",
		    policy_action_name(v->would), new_rule);
		if (v->text != NULL && policy_action_refuses(v->would)) {
			buf_addf(&b, " %d %s ", v->code, v->xcode);
			ctl_text_n(&b, v->text, SIZE_MAX);
		}
		buf_addc(&b, '\n');
	}
	(void)fputs(buf_str(&b), stdout);
	buf_free(&b);
}

/* replay_one - the new rules over one logged decision */
static void
replay_one(json_t *rec, void *arg)
{
	struct replay *rp = arg;
	const char *dnsbl[MAX_NAMES], *dnsbl_unknown[MAX_NAMES];
	const char *rhsbl[MAX_NAMES], *rhsbl_unknown[MAX_NAMES];
	const char *over[MAX_NAMES], *cls, *old_rule, *rcpt, *s;
	struct policy_facts f;
	struct policy_verdict v;
	enum policy_action from;
	enum policy_history h;
	char *local = NULL, *domain = NULL, *rdomain;
	const json_t *e;
	size_t i;

	s = logread_str(rec, "would");
	if (s == NULL || policy_action_parse(s, &from) != 0)
		return; /* not a decision this version wrote */
	rp->decisions++;
	check_missing(rp, rec);
	old_rule = logread_str(rec, "rule");

	memset(&f, 0, sizeof(f));
	f.client_ip = logread_str(rec, "client_ip");
	f.client_name = logread_str(rec, "client_name");
	f.helo = logread_str(rec, "helo");
	f.sender = logread_str(rec, "sender");
	if (f.sender == NULL)
		f.sender = "";
	ctx_split(f.sender, &local, &domain);
	f.from_localpart = local;
	f.from_domain = domain;
	f.auth_user = logread_str(rec, "auth");
	f.have_spf_helo = result_of(rec, "spf_helo.result", &f.spf_helo);
	f.have_spf_mfrom = result_of(rec, "spf_mfrom.result", &f.spf_mfrom);
	policy_spf(&f);
	f.spf_domain = logread_str(rec,
	    f.spf_identity == SPF_ID_HELO ? "spf_helo.domain"
					  : "spf_mfrom.domain");
	f.spf_explanation = logread_str(rec,
	    f.spf_identity == SPF_ID_HELO ? "spf_helo.explanation"
					  : "spf_mfrom.explanation");
	f.dnsbl = dnsbl;
	f.ndnsbl = names(rec, "dnsbl", "listed", dnsbl);
	f.dnsbl_unknown = dnsbl_unknown;
	f.ndnsbl_unknown = names(rec, "dnsbl", "unknown", dnsbl_unknown);
	f.rhsbl = rhsbl;
	f.nrhsbl = names(rec, "rhsbl", "listed", rhsbl);
	f.rhsbl_unknown = rhsbl_unknown;
	f.nrhsbl_unknown = names(rec, "rhsbl", "unknown", rhsbl_unknown);
	f.rate_over = over;
	f.nrate_over = names(rec, NULL, NULL, over);
	cls = logread_str(rec, "history.domain.class");
	if (cls != NULL && policy_history_parse(cls, &h) == 0) {
		f.have_history = true;
		f.history = h;
		f.anomaly = json_is_true(
		    json_object_get(json_object_get(rec, "history"),
			"anomaly"));
	}
	f.greylist = logged_greylist;
	f.greylist_arg = rec;

	json_array_foreach(json_object_get(rec, "recipients"), i, e)
	{
		if ((rcpt = json_string_value(e)) == NULL)
			continue;
		rdomain = strrchr(rcpt, '@') != NULL ? strrchr(rcpt, '@') + 1
						     : (char *)"";
		f.rcpt = rcpt;
		f.rcpt_domain = rdomain;
		policy_evaluate(rp->conf->policy, &f, &v);
		rp->recipients++;
		count_change(rp, from, v.would);
		if (v.would != from)
			rp->changed++;
		if (v.would != from || rp->all)
			show(rp, rec, rcpt, from, old_rule, &v);
		policy_verdict_free(&v);
	}
	free(local);
	free(domain);
}

static void
summary(const struct replay *rp)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	if (rp->json) {
		buf_addf(&b,
		    "{\"summary\":{\"decisions\":%lu,\"recipients\":%lu,"
		    "\"changed\":%lu,\"transitions\":[",
		    rp->decisions, rp->recipients, rp->changed);
		for (i = 0; i < rp->nchanges; i++) {
			buf_addf(&b,
			    "%s{\"from\":\"%s\",\"to\":\"%s\",\"count\":%lu}",
			    i > 0 ? "," : "",
			    policy_action_name(rp->changes[i].from),
			    policy_action_name(rp->changes[i].to),
			    rp->changes[i].n);
		}
		buf_adds(&b, "]}}\n");
	} else {
		buf_addf(&b,
		    "\n%lu decisions, %lu recipients replayed; %lu would "
		    "change\n",
		    rp->decisions, rp->recipients, rp->changed);
		for (i = 0; i < rp->nchanges; i++)
			buf_addf(&b, "  %-10s -> %-10s %lu%s\n",
			    policy_action_name(rp->changes[i].from),
			    policy_action_name(rp->changes[i].to),
			    rp->changes[i].n,
			    rp->changes[i].from == rp->changes[i].to
				? ""
				: "  (changed)");
	}
	(void)fputs(buf_str(&b), stdout);
	buf_free(&b);
}

int
ctl_replay_main(int argc, char **argv)
{
	static const struct option own[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"all", no_argument, NULL, 'a'},
	};
	struct option *longopts =
	    ctl_longopts(own, sizeof(own) / sizeof(own[0]));
	struct logread_filter *filter = ctl_filter_new();
	const char *path = NULL;
	struct replay rp;
	struct buf errors;
	int ch, idx, rc;
	size_t i;

	memset(&rp, 0, sizeof(rp));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, &idx)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			rp.json = true;
			break;
		case 'a':
			rp.all = true;
			break;
		case CTL_OPT_FILTER:
			ctl_filter_opt(filter, longopts[idx].name, optarg,
			    replay_usage);
			break;
		default:
			ctl_usage_error(replay_usage, "replay: unknown option");
		}
	}
	free(longopts);
	if (path == NULL)
		ctl_usage_error(replay_usage, "replay needs -c NEW.conf");
	if (optind == argc)
		ctl_usage_error(replay_usage,
		    "replay needs decision logs (\"-\" for stdin)");
	buf_init(&errors);
	if ((rp.conf = conf_load(path, &errors)) == NULL) {
		(void)fputs(buf_str(&errors), stderr);
		buf_free(&errors);
		logread_filter_free(filter);
		return 1;
	}
	buf_free(&errors);
	rc = ctl_read(argv + optind, argc - optind, filter, replay_one, &rp,
	    NULL);
	summary(&rp);
	if (rp.missing_history)
		note_missing(&rp, "history", "(not kept when logged)");
	for (i = 0; i < rp.nmissing; i++) {
		(void)fprintf(stderr,
		    "spfguardctl: replay: the new configuration uses %s, which "
		    "some logged decisions did not look up: taken as not "
		    "listed / not over / unknown there\n",
		    rp.missing[i]);
		free(rp.missing[i]);
	}
	free(rp.missing);
	free(rp.changes);
	conf_unref(rp.conf);
	logread_filter_free(filter);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}
