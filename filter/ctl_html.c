/*
 * ctl_html.c - `spfguardctl report --html FILE`: the report as one HTML
 * page that needs nothing else to be viewed: inline CSS, charts drawn
 * here as inline SVG, no script, no font, no image, no URL of any kind
 * (and a Content-Security-Policy that forbids loading anything, should a
 * browser ever be tricked into trying).
 *
 * Every string that comes from the log (sender, HELO, domain, rule and
 * list names) is first made printable by ctl_text() (\xNN for control and
 * non-ASCII bytes) and then HTML-escaped by html(): a sender such as
 * "<script>...</script>"@example shows as text. The page is built in
 * memory and written in one go; nothing here is kept after it returns.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "policy.h"
#include "xalloc.h"

#define LABEL_MAX 28 /* characters of a label inside a chart */

static const char style[] =
    "body{font:14px/1.45 system-ui,sans-serif;color:#222;margin:1.5em auto;"
    "max-width:62em;padding:0 1em}\n"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;"
    "border-bottom:1px solid #ccc}\n"
    "table{border-collapse:collapse;margin:.5em 0}"
    "th,td{padding:.15em .7em;text-align:left;border-bottom:1px solid #eee;"
    "vertical-align:top}\n"
    ".n{text-align:right;font-variant-numeric:tabular-nums}"
    ".k,.t{font-family:ui-monospace,monospace}.k{word-break:break-all}"
    ".t{white-space:nowrap}\n"
    "svg{display:block;margin:.4em 0}svg text{font:12px system-ui,"
    "sans-serif;fill:#222}.axis{stroke:#999}\n"
    ".bar{fill:#607d8b}.act-accept{fill:#2e7d32}.act-tag{fill:#1565c0}"
    ".act-quarantine{fill:#6d4c41}.act-tempfail{fill:#ef6c00}"
    ".act-reject{fill:#c62828}.act-greylist{fill:#6a1b9a}"
    ".refusal{fill:#c62828}\n"
    ".empty{color:#777;font-style:italic}\n";

/* html - text escaped for an element or a quoted attribute */
static void
html(struct buf *b, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		switch (s[i]) {
		case '&':
			buf_adds(b, "&amp;");
			break;
		case '<':
			buf_adds(b, "&lt;");
			break;
		case '>':
			buf_adds(b, "&gt;");
			break;
		case '"':
			buf_adds(b, "&quot;");
			break;
		case '\'':
			buf_adds(b, "&#39;");
			break;
		default:
			buf_addc(b, s[i]);
		}
}

/* html_text - bytes from the log: printable first, then escaped; cut to
 * max characters (0: no limit) */
static void
html_text(struct buf *b, const char *s, size_t n, size_t max)
{
	struct buf t;

	buf_init(&t);
	ctl_text_n(&t, s, n);
	if (max > 0 && t.len > max) {
		t.len = max - 1;
		buf_addc(&t, '~');
	}
	html(b, buf_str(&t), t.len);
	buf_free(&t);
}

static void
html_json(struct buf *b, const json_t *v)
{
	if (json_is_string(v))
		html_text(b, json_string_value(v), json_string_length(v), 0);
	else
		buf_addc(b, '-');
}

/* bar_class - the CSS class of a bar: its action's colour if it is one */
static const char *
bar_class(const struct kv *e, bool actions)
{
	static char cls[40];
	enum policy_action a;
	char name[20];

	if (!actions || e->klen >= sizeof(name))
		return "bar";
	memcpy(name, e->k, e->klen);
	name[e->klen] = '\0';
	if (policy_action_parse(name, &a) == -1)
		return "bar";
	(void)snprintf(cls, sizeof(cls), "bar act-%s", policy_action_name(a));
	return cls;
}

/* svg_bars - a horizontal bar per entry, longest for the largest count */
static void
svg_bars(struct buf *b, const char *label, const struct kv *a, size_t n,
    bool actions)
{
	const int lw = 200, bw = 380, row = 22, width = 640;
	long long max = n > 0 ? a[0].n : 0, w;
	size_t i;
	int y;

	buf_addf(b,
	    "<svg class=\"chart\" width=\"%d\" height=\"%zu\" viewBox=\"0 0 "
	    "%d %zu\" role=\"img\" aria-label=\"%s\">\n",
	    width, n * row + 8, width, n * row + 8, label);
	for (i = 0; i < n; i++) {
		y = (int)i * row + 4;
		w = max > 0 ? a[i].n * bw / max : 0;
		if (w < 1)
			w = 1;
		buf_addf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">",
		    lw - 6, y + 13);
		html_text(b, a[i].k, a[i].klen, LABEL_MAX);
		buf_addf(b,
		    "</text><rect class=\"%s\" x=\"%d\" y=\"%d\" "
		    "width=\"%lld\" height=\"16\"><title>",
		    bar_class(&a[i], actions), lw, y, w);
		html_text(b, a[i].k, a[i].klen, 0);
		buf_addf(b,
		    ": %lld</title></rect><text x=\"%lld\" y=\"%d\">%lld"
		    "</text>\n",
		    a[i].n, lw + w + 5, y + 13, a[i].n);
	}
	buf_adds(b, "</svg>\n");
}

/* section_counts - a heading, a bar chart and a table of one counter */
static void
section_counts(struct buf *b, const char *id, const char *title,
    const char *what, const json_t *counter, size_t limit, unsigned long of,
    bool actions)
{
	struct kv *a;
	size_t n, i;

	a = ctl_sorted(counter, &n);
	if (n > limit)
		n = limit;
	buf_addf(b, "<section id=\"%s-section\">\n<h2>%s</h2>\n", id, title);
	if (n == 0) {
		buf_addf(b,
		    "<p class=\"empty\" id=\"%s\">none</p>\n</section>\n", id);
		free(a);
		return;
	}
	svg_bars(b, title, a, n, actions);
	buf_addf(b,
	    "<table id=\"%s\"><thead><tr><th>%s</th><th class=\"n\">count"
	    "</th><th class=\"n\">share</th></tr></thead><tbody>\n",
	    id, what);
	for (i = 0; i < n; i++) {
		buf_adds(b, "<tr><td class=\"k\">");
		html_text(b, a[i].k, a[i].klen, 0);
		buf_addf(b,
		    "</td><td class=\"n\">%lld</td><td class=\"n\">%.1f%%"
		    "</td></tr>\n",
		    a[i].n, of > 0 ? 100.0 * (double)a[i].n / (double)of : 0.0);
	}
	buf_adds(b, "</tbody></table>\n</section>\n");
	free(a);
}

/* svg_series - refusals per bucket as columns, with a y and an x axis */
static void
svg_series(struct buf *b, const struct series *s)
{
	const int width = 720, height = 220, left = 44, right = 10, top = 10,
		  bottom = 40;
	const int pw = width - left - right, ph = height - top - bottom;
	const char *anchor;
	char when[40];
	size_t i;
	int x, h, bw;

	bw = (int)(pw / (int)s->n) - 1;
	if (bw < 1)
		bw = 1;
	if (bw > 40)
		bw = 40;
	buf_addf(b,
	    "<svg id=\"series-chart\" width=\"%d\" height=\"%d\" viewBox=\"0 "
	    "0 %d %d\" role=\"img\" aria-label=\"refusals over time\">\n"
	    "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
	    "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lu</text>"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n",
	    width, height, width, height, left, top, left, top + ph, left,
	    top + ph, left + pw, top + ph, left - 4, top + 10, s->max, left - 4,
	    top + ph);
	for (i = 0; i < s->n; i++) {
		x = left + (int)((long)i * pw / (long)s->n);
		h = s->max > 0
		    ? (int)(s->counts[i] * (unsigned long)ph / s->max)
		    : 0;
		(void)ctl_iso(s->start_ms + (long long)i * s->step_ms, true,
		    when, sizeof(when));
		if (s->counts[i] > 0)
			buf_addf(b,
			    "<rect class=\"refusal\" x=\"%d\" y=\"%d\" "
			    "width=\"%d\" height=\"%d\"><title>%s: %lu"
			    "</title></rect>\n",
			    x + 1, top + ph - h, bw, h, when, s->counts[i]);
		if (i == 0)
			anchor = "start";
		else if (i + 1 == s->n)
			anchor = "end";
		else if (i == s->n / 2)
			anchor = "middle";
		else
			continue;
		buf_addf(b,
		    "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\">%s</text>\n",
		    x + 1, top + ph + 16, anchor, when);
	}
	buf_adds(b, "</svg>\n");
}

static void
section_series(struct buf *b, const struct series *s)
{
	char when[40];
	size_t i;

	buf_addf(b,
	    "<section id=\"series-section\">\n<h2>Refusals per %s (UTC)"
	    "</h2>\n",
	    ctl_step_name(s->step_ms));
	if (s->n == 0 || s->max == 0) {
		buf_adds(b,
		    "<p class=\"empty\" id=\"series\">none</p>\n"
		    "</section>\n");
		return;
	}
	svg_series(b, s);
	buf_adds(b,
	    "<details><summary>the numbers</summary>\n"
	    "<table id=\"series\"><thead><tr><th>from</th>"
	    "<th class=\"n\">refusals</th></tr></thead><tbody>\n");
	for (i = 0; i < s->n; i++)
		if (s->counts[i] > 0)
			buf_addf(b,
			    "<tr><td>%s</td><td class=\"n\">%lu</td></tr>\n",
			    ctl_iso(s->start_ms + (long long)i * s->step_ms,
				true, when, sizeof(when)),
			    s->counts[i]);
	buf_adds(b, "</tbody></table>\n</details>\n</section>\n");
}

static void
section_lists(struct buf *b, const struct report *r)
{
	struct kv *a;
	size_t n, i;
	json_t *u;

	buf_adds(b, "<section id=\"lists-section\">\n<h2>Blocklists</h2>\n");
	if (json_object_size(r->listed) + json_object_size(r->unknown) == 0) {
		buf_adds(b,
		    "<p class=\"empty\" id=\"lists\">no blocklist "
		    "results</p>\n</section>\n");
		return;
	}
	buf_adds(b,
	    "<table id=\"lists\"><thead><tr><th>list</th>"
	    "<th class=\"n\">listed</th><th class=\"n\">unknown</th>"
	    "</tr></thead><tbody>\n");
	a = ctl_sorted(r->listed, &n);
	for (i = 0; i < n; i++) {
		u = json_object_getn(r->unknown, a[i].k, a[i].klen);
		buf_adds(b, "<tr><td class=\"k\">");
		html_text(b, a[i].k, a[i].klen, 0);
		buf_addf(b,
		    "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td>"
		    "</tr>\n",
		    a[i].n, (long long)json_integer_value(u));
	}
	free(a);
	a = ctl_sorted(r->unknown, &n);
	for (i = 0; i < n; i++)
		if (json_object_getn(r->listed, a[i].k, a[i].klen) == NULL) {
			buf_adds(b, "<tr><td class=\"k\">");
			html_text(b, a[i].k, a[i].klen, 0);
			buf_addf(b,
			    "</td><td class=\"n\">0</td><td class=\"n\">%lld"
			    "</td></tr>\n",
			    a[i].n);
		}
	free(a);
	buf_adds(b, "</tbody></table>\n</section>\n");
}

static void
section_recent(struct buf *b, const struct report *r)
{
	static const char *const keys[] = {"time", "client_ip", "helo",
	    "sender", "rule", "action"};
	const json_t *reply;
	json_t *rec;
	size_t i, k;

	buf_adds(b,
	    "<section id=\"latest-section\">\n<h2>Latest refusals</h2>\n");
	if (r->nrecent == 0) {
		buf_adds(b,
		    "<p class=\"empty\" id=\"latest\">none</p>\n"
		    "</section>\n");
		return;
	}
	buf_adds(b,
	    "<table id=\"latest\"><thead><tr><th>time</th>"
	    "<th>client</th><th>HELO</th><th>sender</th><th>rule</th>"
	    "<th>action</th><th>reply</th></tr></thead><tbody>\n");
	for (i = 0; (rec = ctl_recent(r, i)) != NULL; i++) {
		buf_adds(b, "<tr>");
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			buf_adds(b,
			    k == 2 || k == 3 ? "<td class=\"k\">"
					     : "<td class=\"t\">");
			html_json(b, json_object_get(rec, keys[k]));
			buf_adds(b, "</td>");
		}
		reply = json_object_get(rec, "reply");
		buf_adds(b, "<td class=\"t\">");
		if (json_is_integer(json_object_get(reply, "code"))) {
			buf_addf(b, "%lld ",
			    (long long)json_integer_value(
				json_object_get(reply, "code")));
			html_json(b, json_object_get(reply, "xcode"));
		} else
			buf_addc(b, '-');
		buf_adds(b, "</td></tr>\n");
	}
	buf_adds(b, "</tbody></table>\n</section>\n");
}

/* summary - the period and the totals */
static void
summary(struct buf *b, const struct report *r)
{
	char from[40], to[40];

	if (r->have_time)
		buf_addf(b, "<p id=\"period\">%s to %s (UTC)</p>\n",
		    ctl_iso(r->first_ms, false, from, sizeof(from)),
		    ctl_iso(r->last_ms, false, to, sizeof(to)));
	buf_addf(b,
	    "<table id=\"summary\"><tbody>\n"
	    "<tr><th>decisions</th><td class=\"n\" id=\"total\">%lu</td></tr>\n"
	    "<tr><th>refused</th><td class=\"n\" id=\"refused\">%lu</td>"
	    "</tr>\n"
	    "<tr><th>in monitor mode</th><td class=\"n\" id=\"monitor\">%lu"
	    "</td></tr>\n"
	    "<tr><th>would have been refused (monitor)</th><td class=\"n\" "
	    "id=\"would-refuse\">%lu</td></tr>\n"
	    "<tr><th>lines skipped (not parsed)</th><td class=\"n\" "
	    "id=\"skipped\">%lu</td></tr>\n</tbody></table>\n",
	    r->total, r->refused, r->monitor, r->would_refuse, r->skipped);
}

/* page - the whole document */
static void
page(struct buf *b, const struct report *r, const struct series *s)
{
	buf_adds(b,
	    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n"
	    "<meta http-equiv=\"Content-Security-Policy\" "
	    "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width\">\n"
	    "<title>spfguard decision report</title>\n<style>\n");
	buf_adds(b, style);
	buf_adds(b,
	    "</style>\n</head>\n<body>\n"
	    "<h1>spfguard decision report</h1>\n");
	summary(b, r);
	section_counts(b, "actions", "Actions", "action", r->actions, SIZE_MAX,
	    r->total, true);
	if (r->monitor > 0)
		section_counts(b, "would",
		    "Monitor mode: what it would have done", "action", r->would,
		    SIZE_MAX, r->monitor, true);
	section_counts(b, "rules", "Rules", "rule", r->rules, SIZE_MAX,
	    r->total, false);
	section_counts(b, "results", "SPF results (deciding identity)",
	    "result", r->results, SIZE_MAX, r->total, false);
	section_series(b, s);
	section_counts(b, "domains", "Sender domains refused most", "domain",
	    r->domains, r->top, r->refused, false);
	section_counts(b, "networks", "Client networks refused most", "network",
	    r->networks, r->top, r->refused, false);
	section_lists(b, r);
	section_recent(b, r);
	buf_adds(b,
	    "<p class=\"empty\">Written by spfguardctl report.</p>\n"
	    "</body>\n</html>\n");
}

int
ctl_report_html(const struct report *r, const struct series *s,
    const char *path)
{
	struct buf b;
	FILE *fp;
	int rc = 0;

	buf_init(&b);
	page(&b, r, s);
	if ((fp = fopen(path, "w")) == NULL) {
		log_warn("%s", path);
		buf_free(&b);
		return -1;
	}
	if (fwrite(b.data, 1, b.len, fp) != b.len)
		rc = -1;
	if (fclose(fp) != 0)
		rc = -1;
	if (rc != 0)
		log_warn("%s: write", path);
	buf_free(&b);
	return rc;
}
