#!/usr/bin/python3
"""test_ctl_log.py - spfguardctl log and report on a decision log made
through Postfix (TAP).

decision_log_fixture.make_decision_log() sends a known mix of mail through
a private Postfix and spfguard and returns the log and what it sent; every
expectation below is computed from that list.  Then:

  log --json with each filter (time range from a split between the two
  groups sent, relative times, action, rule, result, domain pattern,
  CIDR v4/v6, queue id, ORed and ANDed): exactly the expected records,
  equal to the log's lines; the same over a gzipped rotated copy plus the
  live file, and on stdin (plain and gzip); a torn last line and a bad
  line reported as file:line and skipped; the table (printable only,
  fitted to --width); usage errors.
  report --json (and text): counts by action, would-action, rule, SPF
  result; refused domains and networks; blocklists; refusals over time;
  the latest refusals.
  report --html: the file has no script, no URL and the hostile senders
  escaped; rendered by headless Chromium (skipped, saying why, without
  /usr/bin/chromium), the DOM has the title, the counts per action, SVG
  charts, the senders as text and no injected element.

    /usr/bin/python3 tests/e2e/test_ctl_log.py

Skips (1..0 # SKIP) without root, Postfix, python3-dnslib, a built
spfguard or spfguardctl ($SPFGUARD, $SPFGUARDCTL).  Takes about 12 s.
"""

import collections
import datetime
import gzip
import html.parser
import ipaddress
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import decision_log_fixture as fixture  # noqa: E402
from spftest_lib import (crash_lines, install_signal_handlers, scratch_dir,  # noqa: E402
                         spfguardctl, Tap)

CHROMIUM = "/usr/bin/chromium"
REFUSING = ("reject", "tempfail", "greylist")
TITLE = "spfguard decision report"


def run(args, stdin=None, timeout=60):
    """spfguardctl ARGS: (exit status, stdout bytes, stderr text)."""
    r = subprocess.run([spfguardctl()] + list(args), input=stdin, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def iso(t):
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def domain(sender):
    return sender.rsplit("@", 1)[1].lower().rstrip(".") if "@" in sender else None


def network(ip):
    a = ipaddress.ip_address(ip)
    return str(ipaddress.ip_network("%s/%d" % (ip, 24 if a.version == 4 else 64),
                                    strict=False))


def in_net(ip, cidr):
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


class Ctx:
    def __init__(self, tap, work, path, sent):
        self.tap = tap
        self.work = work
        self.path = path
        self.sent = sent
        with open(path, "rb") as f:
            self.raw = f.read()
        self.lines = self.raw.decode("ascii").splitlines()
        self.by_sender = {}
        for line in self.lines:
            d = json.loads(line)
            self.by_sender[d["sender"]] = d
        g1 = [e for e in sent if e["group"] == 1]
        g2 = [e for e in sent if e["group"] == 2]
        self.split = (max(e["t1"] for e in g1) + min(e["t0"] for e in g2)) / 2

    def want(self, pred):
        return [self.by_sender[e["sender"]] for e in self.sent if pred(e)]


def log_json(c, label, args, pred, stdin=None, files=None):
    """log --json ARGS FILES: exactly the records pred picks, as in the log."""
    files = [c.path] if files is None else files
    rc, out, err = run(["log", "--json"] + args + files, stdin)
    try:
        text = out.decode("ascii")
        got = [json.loads(line) for line in text.splitlines()]
    except ValueError as e:
        c.tap.ok(False, "log --json %s: %s" % (" ".join(args), label), "bad output: %s" % e)
        return None
    want = c.want(pred)
    ok = rc == 0 and not crash_lines(err) and got == want and \
        all(0x20 <= b < 0x7f for b in out if b != 0x0a)
    c.tap.ok(ok, "log --json %s: %s (%d records)" % (" ".join(args), label, len(want)),
             None if ok else "rc %d, got %r, want %r; %s" % (
                 rc, [d.get("sender") for d in got], [d.get("sender") for d in want],
                 err[-300:]))
    return got


def case_filters(c):
    e0 = c.sent
    q = [e["queue_id"] for e in e0 if e["queue_id"]]
    split = iso(c.split)
    rows = [
        ("every record, equal to the log's lines", [], lambda e: True),
        ("action reject (monitor's would-reject too)", ["--action", "reject"],
         lambda e: "reject" in (e["action"], e["would"])),
        ("action tempfail or reject", ["--action", "tempfail", "--action", "reject"],
         lambda e: e["action"] in ("tempfail", "reject") or e["would"] == "reject"),
        ("action accept", ["--action", "accept"],
         lambda e: "accept" in (e["action"], e["would"])),
        ("rule spf-fail", ["--rule", "spf-fail"], lambda e: e["rule"] == "spf-fail"),
        ("rule trusted or blocklisted", ["--rule", "trusted", "--rule", "blocklisted"],
         lambda e: e["rule"] in ("trusted", "blocklisted")),
        ("result fail", ["--result", "fail"], lambda e: e["result"] == "fail"),
        ("result unchecked (no SPF check)", ["--result", "unchecked"],
         lambda e: e["result"] is None),
        ("domain fail.example", ["--domain", "fail.example"],
         lambda e: domain(e["sender"]) == "fail.example"),
        ("domain *.example AND action tag", ["--domain", "*.example", "--action", "tag"],
         lambda e: (domain(e["sender"]) or "").endswith(".example") and e["action"] == "tag"),
        ("ip 203.0.113.0/24", ["--ip", "203.0.113.0/24"],
         lambda e: in_net(e["client_ip"], "203.0.113.0/24")),
        ("ip 2001:db8::/32 (IPv6)", ["--ip", "2001:db8::/32"],
         lambda e: in_net(e["client_ip"], "2001:db8::/32")),
        ("ip 192.0.2.66 or 2001:db8::/32", ["--ip", "192.0.2.66", "--ip", "2001:db8::/32"],
         lambda e: e["client_ip"] == "192.0.2.66" or in_net(e["client_ip"], "2001:db8::/32")),
        ("queue-id of a delivered message", ["--queue-id", q[0]],
         lambda e: e["queue_id"] == q[0]),
        ("queue-id, two of them", ["--queue-id", q[0], "--queue-id", q[-1]],
         lambda e: e["queue_id"] in (q[0], q[-1])),
        ("since the split: the second group", ["--since", split],
         lambda e: e["group"] == 2),
        ("until the split: the first group", ["--until", split],
         lambda e: e["group"] == 1),
        ("since -1h: everything", ["--since", "-1h"], lambda e: True),
        ("until -1h: nothing", ["--until", "-1h"], lambda e: False),
        ("since -2d until now", ["--since", "-2d", "--until", "now"], lambda e: True),
        ("AND: reject, since the split, 203.0.113.0/24",
         ["--action", "reject", "--since", split, "--ip", "203.0.113.0/24"],
         lambda e: "reject" in (e["action"], e["would"]) and e["group"] == 2 and
         in_net(e["client_ip"], "203.0.113.0/24")),
    ]
    for label, args, pred in rows:
        log_json(c, label, args, pred)


def case_rotated_stdin(c):
    """A gzipped rotated file plus the live one; stdin, plain and gzip."""
    first = set(e["sender"] for e in c.sent if e["group"] == 1)
    g1 = [line for line in c.lines if json.loads(line)["sender"] in first]
    g2 = [line for line in c.lines if json.loads(line)["sender"] not in first]
    old = os.path.join(c.work, "decisions.log.1.gz")
    live = os.path.join(c.work, "decisions.log")
    with gzip.open(old, "wb") as f:
        f.write(("\n".join(g1) + "\n").encode())
    with open(live, "w") as f:
        f.write("\n".join(g2) + "\n")
    log_json(c, "rotated .gz + live file", [], lambda e: True, files=[old, live])
    log_json(c, "rotated .gz + live file, filtered", ["--action", "reject"],
             lambda e: "reject" in (e["action"], e["would"]), files=[old, live])
    log_json(c, "stdin, plain", ["--rule", "spf-fail"], lambda e: e["rule"] == "spf-fail",
             stdin=c.raw, files=[])
    log_json(c, "stdin as \"-\", gzipped", [], lambda e: True,
             stdin=gzip.compress(c.raw), files=["-"])
    a = run(["report", "--json", c.path])
    b = run(["report", "--json", old, live])
    c.tap.ok(a[0] == 0 and b[0] == 0 and json.loads(a[1]) == json.loads(b[1]),
             "report --json on .gz + live equals the report on the whole log",
             "%s %s" % (a[2][-200:], b[2][-200:]))


def case_bad_lines(c):
    torn = os.path.join(c.work, "torn.log")
    with open(torn, "wb") as f:
        f.write(c.raw + b'{"time":"2026-12-02T05:00:00.000Z","sen')
    rc, out, err = run(["log", "--json", torn])
    n = len(out.splitlines())
    want = "torn.log:%d: last line cut short" % (len(c.lines) + 1)
    c.tap.ok(rc == 0 and n == len(c.lines) and want in err,
             "a torn last line: reported (%s), skipped, exit 0" % want,
             "rc %d, %d records, stderr %r" % (rc, n, err[-300:]))
    bad = os.path.join(c.work, "bad.log")
    lines = list(c.lines)
    lines.insert(2, "not json \x1b[2J")
    with open(bad, "w") as f:
        f.write("\n".join(lines) + "\n")
    rc, out, err = run(["log", "--json", bad])
    n = len(out.splitlines())
    c.tap.ok(rc == 0 and n == len(c.lines) and "bad.log:3: " in err and "\x1b" not in err,
             "a bad line in the middle: reported as bad.log:3 (no raw escape), skipped",
             "rc %d, %d records, stderr %r" % (rc, n, err[-300:]))


def case_table(c):
    rc, out, err = run(["log", "--width", "100", c.path])
    lines = out.decode("latin-1").splitlines()
    printable = all(0x20 <= b < 0x7f for b in out if b != 0x0a)
    c.tap.ok(rc == 0 and len(lines) == len(c.sent) + 1 and printable and
             all(len(x) <= 100 for x in lines),
             "log --width 100: a header and one row per decision, at most 100 "
             "columns, printable ASCII only",
             "rc %d, %d lines, longest %d; %s" % (rc, len(lines),
                                                 max(map(len, lines or [""])), err[-200:]))
    rc, out, err = run(["log", c.path])
    text = out.decode("latin-1")
    rows = text.splitlines()[1:]
    ok = rc == 0 and len(rows) == len(c.sent) and \
        '"<script>alert(1)</script>"@fail.example' in text and \
        '"ctl\\x01\\x1b[31m\\x7f"@fail.example' in text and \
        all(0x20 <= b < 0x7f for b in out if b != 0x0a)
    ok = ok and all(e["client_ip"] in r and e["action"] in r or
                    e["mode"] == "monitor" and "(%s)" % e["would"] in r
                    for e, r in zip(c.sent, rows))
    c.tap.ok(ok, "log (not a terminal): whole cells, control bytes as \\xNN, each row "
             "with its client and action (monitor's as \"(reject)\")", err[-200:])
    rc, out, err = run(["log", "--action", "bounce", c.path])
    c.tap.ok(rc == 2 and "bounce" in err, "log --action bounce: usage error, exit 2",
             "rc %d %r" % (rc, err[:200]))
    rc, out, err = run(["log", os.path.join(c.work, "missing.log")])
    c.tap.ok(rc == 1 and "missing.log: No such file" in err,
             "log on a missing file: exit 1, named", "rc %d %r" % (rc, err[:200]))


def expected_report(sent, top=10):
    refused = [e for e in sent if e["action"] in REFUSING]
    lists = {}
    for e in sent:
        for name, status in e["lists"].items():
            lists.setdefault(name, {"listed": 0, "unknown": 0})[status] += 1
    return {
        "decisions": len(sent),
        "refused": len(refused),
        "monitor": len([e for e in sent if e["mode"] == "monitor"]),
        "would_refuse": len([e for e in sent if e["mode"] == "monitor" and
                             e["would"] in REFUSING and e["action"] not in REFUSING]),
        "actions": dict(collections.Counter(e["action"] for e in sent)),
        "monitor_would": dict(collections.Counter(e["would"] for e in sent
                                                  if e["mode"] == "monitor")),
        "rules": dict(collections.Counter(e["rule"] for e in sent)),
        "results": dict(collections.Counter(e["result"] or "unchecked" for e in sent)),
        "domains": dict(collections.Counter(domain(e["sender"]) for e in refused)),
        "networks": dict(collections.Counter(network(e["client_ip"]) for e in refused)),
        "lists": lists,
        "latest": [e["sender"] for e in refused][-top:],
    }


def got_report(j):
    return {
        "decisions": j.get("decisions"), "refused": j.get("refused"),
        "monitor": j.get("monitor"), "would_refuse": j.get("would_refuse"),
        "actions": j.get("actions"), "monitor_would": j.get("monitor_would"),
        "rules": j.get("rules"), "results": j.get("results"),
        "domains": {x["domain"]: x["count"] for x in j.get("top_domains_refused", [])},
        "networks": {x["network"]: x["count"] for x in j.get("top_networks_refused", [])},
        "lists": j.get("lists"),
        "latest": [x.get("sender") for x in j.get("latest_refusals", [])],
    }


def case_report_json(c):
    rc, out, err = run(["report", "--json", c.path])
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    got, want = got_report(j), expected_report(c.sent)
    for k in want:
        c.tap.ok(rc == 0 and got[k] == want[k], "report --json: %s" % k,
                 None if got[k] == want[k] else "got %r want %r %s" % (got[k], want[k],
                                                                      err[-200:]))
    series = j.get("refusals_over_time", {})
    total = sum(b.get("count", 0) for b in series.get("buckets", []))
    c.tap.ok(total == want["refused"] and series.get("bucket_seconds") == 60,
             "report --json: refusals over time add up to the refusals (1-minute buckets "
             "for a short log)", repr(series)[:200])
    rc, out, err = run(["report", "--json", "--since", iso(c.split), "--top", "2", c.path])
    j = json.loads(out) if rc == 0 else {}
    g2 = [e for e in c.sent if e["group"] == 2]
    want2 = expected_report(g2, top=2)
    got2 = got_report(j)
    c.tap.ok(rc == 0 and got2["decisions"] == len(g2) and
             got2["actions"] == want2["actions"] and got2["latest"] == want2["latest"] and
             len(got2["domains"]) <= 2 and len(got2["networks"]) <= 2,
             "report --json --since SPLIT --top 2: the second group only, two of each",
             repr(got2)[:300])


def case_report_text(c):
    rc, out, err = run(["report", c.path])
    text = out.decode("ascii", "replace")
    want = expected_report(c.sent)
    ok = rc == 0 and re.search(r"(?m)^decisions\s+%d$" % want["decisions"], text) and \
        re.search(r"(?m)^refused\s+%d$" % want["refused"], text)
    section = text.split("\nactions\n", 1)[-1].split("\n\n", 1)[0]
    for action, n in want["actions"].items():
        ok = ok and re.search(r"(?m)^  %s\s+%d\s" % (action, n), section)
    c.tap.ok(bool(ok), "report (text): totals and the count of each action",
             text[:300] + err[-200:])


class Dom(html.parser.HTMLParser):
    """What the tests look for in a page: the title, tags and attributes,
    and the cells of each table by its id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.tags = collections.Counter()
        self.attrs = []
        self.tables = {}
        self.ids = {}
        self._table = None
        self._row = None
        self._cell = None
        self._in_title = False
        self._titles = 0
        self._id = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.attrs += [(tag, k, v) for k, v in attrs]
        a = dict(attrs)
        if tag == "title" and self._titles == 0:     # not an SVG <title>
            self._in_title = True
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        if a.get("id"):
            self.ids[a["id"]] = ""
            if tag in ("td", "p"):
                self._id = a["id"]

    def handle_endtag(self, tag):
        if tag in ("td", "p"):
            self._id = None
        if tag == "title":
            self._in_title = False
            self._titles += 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell += data
        if self._id is not None:
            self.ids[self._id] += data

    def counts(self, table):
        return {r[0]: int(r[1]) for r in self.tables.get(table, [])[1:]}


def check_page(c, label, page):
    """What must hold in the file and in the DOM Chromium makes of it."""
    d = Dom()
    d.feed(page)
    want = expected_report(c.sent)
    latest = [r[3] for r in d.tables.get("latest", [])[1:]]
    t = c.tap
    t.ok(d.title == TITLE, "%s: the title is %r (nothing rewrote it)" % (label, TITLE),
         repr(d.title))
    t.ok(d.counts("actions") == want["actions"],
         "%s: table#actions has the count of each action" % label,
         "got %r want %r" % (d.counts("actions"), want["actions"]))
    t.ok(d.ids.get("total", "").strip() == str(want["decisions"]) and
         d.ids.get("refused", "").strip() == str(want["refused"]),
         "%s: the totals (decisions %d, refused %d)" % (label, want["decisions"],
                                                         want["refused"]),
         "%r %r" % (d.ids.get("total"), d.ids.get("refused")))
    t.ok(d.counts("results") == want["results"] and d.counts("rules") == want["rules"],
         "%s: tables of SPF results and rules" % label, repr(d.counts("results")))
    t.ok(d.tags["svg"] >= 4 and d.tags["rect"] >= len(want["actions"]) and
         "series-chart" in d.ids,
         "%s: SVG charts (%d svg, %d rect), one of them the refusals over time"
         % (label, d.tags["svg"], d.tags["rect"]), repr(dict(d.tags)))
    hostile = [e["sender"] for e in c.sent if e["label"] in ("script", "img")]
    t.ok(all(h in latest for h in hostile) and
         '"ctl\\x01\\x1b[31m\\x7f"@fail.example' in latest,
         "%s: the hostile senders are shown as text (control bytes as \\xNN)" % label,
         repr(latest))
    injected = [(tag, k) for tag, k, _v in d.attrs if k.lower().startswith("on") or
                k.lower() in ("src", "href")]
    t.ok(d.tags["script"] == 0 and d.tags["img"] == 0 and d.tags["iframe"] == 0 and
         not injected,
         "%s: no script, img or iframe element, no on*/src/href attribute" % label,
         repr((d.tags["script"], d.tags["img"], injected[:3])))


def case_html(c):
    out_path = os.path.join(c.work, "report.html")
    rc, out, err = run(["report", "--html", out_path, c.path])
    try:
        with open(out_path, encoding="ascii") as f:
            page = f.read()
    except (OSError, UnicodeDecodeError) as e:
        c.tap.ok(False, "report --html writes an ASCII file", str(e))
        return
    c.tap.ok(rc == 0 and not out and not crash_lines(err),
             "report --html FILE: exit 0, nothing on stdout", err[-300:])
    c.tap.ok(not re.search(r"(?i)\b(https?|ftp|file|data|javascript):", page) and
             not re.search(r"(?i)<(script|img|iframe|link|object)\b", page) and
             "&lt;script&gt;alert(1)&lt;/script&gt;" in page,
             "the file: no URL, no script, img or link element; "
             "\"<script>alert(1)</script>\" written as &lt;script&gt;...")
    check_page(c, "the file", page)
    if not os.access(CHROMIUM, os.X_OK):
        c.tap.skip("headless Chromium renders the page",
                   "%s not installed (packaging/debian-test-deps)" % CHROMIUM)
        return
    profile = os.path.join(c.work, "chromium-profile")
    t0 = time.monotonic()
    try:
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--user-data-dir=" + profile, "--dump-dom",
                            "file://" + out_path],
                           capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        c.tap.ok(False, "headless Chromium renders the page", "timed out")
        return
    dom = r.stdout.decode("utf-8", "replace")
    if not c.tap.ok(r.returncode == 0 and "<html" in dom,
                    "headless Chromium renders the page (%.1f s)" % (time.monotonic() - t0),
                    "exit %d %s" % (r.returncode, r.stderr.decode("utf-8", "replace")[-300:])):
        return
    check_page(c, "Chromium's DOM", dom)


def main():
    why = fixture.why_not_runnable()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    ctl = spfguardctl()
    if not (os.path.isfile(ctl) and os.access(ctl, os.X_OK)):
        print("1..0 # SKIP spfguardctl not built (%s; set SPFGUARDCTL)" % ctl)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    with scratch_dir("spfg-ctllog.") as work:
        try:
            path, sent = fixture.make_decision_log(work, diag=tap.diag)
        except (fixture.FixtureError, RuntimeError, OSError) as e:
            tap.ok(False, "a decision log made through Postfix", str(e)[:500])
            return tap.done() or 1
        tap.ok(True, "a decision log made through Postfix: %d decisions (%s)"
               % (len(sent), " ".join(e["label"] for e in sent)))
        c = Ctx(tap, work, path, sent)
        case_filters(c)
        case_rotated_stdin(c)
        case_bad_lines(c)
        case_table(c)
        case_report_json(c)
        case_report_text(c)
        case_html(c)
        tap.diag("run time %.1f s" % (time.monotonic() - t0))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
