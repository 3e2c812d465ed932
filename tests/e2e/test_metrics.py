#!/usr/bin/python3
"""test_metrics.py - the Prometheus metrics page, through a real Postfix (TAP).

spfguard runs with metrics.listen on a free 127.0.0.1 port behind a private
Postfix (tests/e2e/postfix.py) and the test DNS server.  The test sends a
mix of mail whose answers it knows (SPF pass, fail, temperror, a client on a
test DNSBL, a trusted client, two recipients in one message), then reads the
page with curl and checks that the counters match what it sent and what
the decision log says: decisions by action, rule and SPF result,
recipients, blocklist lookups, DNS queries, the answer cache's hits (the
SPF records of pass.example and fail.example are asked again by later
mail), the latency histogram, sessions in flight, reloads (a good file and
a broken one), decision-log lines.

    /usr/bin/python3 tests/e2e/test_metrics.py

Skips (1..0 # SKIP) without Postfix, root, curl or a built filter/spfguard.
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
from postfix import Postfix, Spfguard, smtp_session  # noqa: E402
from spftest_lib import (check_no_crash, install_signal_handlers, scratch_dir, Tap,  # noqa: E402
                         TestServer)

DEST = "user@dest.example"
ZONE = {
    "pass.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "fail.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "temp.example": {"timeout": True},
    "66.2.0.192.bl.test": {"records": [{"type": "A", "data": "127.0.0.2"}]},
}

CONF = {
    "dns": {"timeout_ms": 1000},
    "spf": {"deadline_ms": 1500, "helo_check": False},
    "trusted_networks": ["127.0.0.0/8", "198.51.100.0/24"],
    "dnsbl": [{"name": "testbl", "zone": "bl.test", "codes": ["127.0.0.2"]}],
    "rules": [
        {"name": "trusted", "match": {"client": "trusted"}, "action": "accept"},
        {"name": "listed", "match": {"dnsbl": "testbl"}, "action": "reject"},
        {"name": "spf-fail", "match": {"spf": "fail"}, "action": "reject"},
        {"name": "spf-temp", "match": {"spf": "temperror"}, "action": "tempfail"},
        {"name": "default", "action": "accept"},
    ],
}

# what is sent: (label, client, sender, recipients, expected decisions as
# (action, rule, spf) per decision line)
MAIL = [
    ("pass", "192.0.2.1", "a@pass.example", [DEST], [("accept", "default", "pass")]),
    ("pass, two recipients", "192.0.2.2", "b@pass.example",
     [DEST, "other@dest.example"], [("accept", "default", "pass")]),
    ("fail", "203.0.113.7", "c@fail.example", [DEST], [("reject", "spf-fail", "fail")]),
    ("fail again", "203.0.113.8", "d@fail.example", [DEST],
     [("reject", "spf-fail", "fail")]),
    ("temperror", "203.0.113.9", "e@temp.example", [DEST],
     [("tempfail", "spf-temp", "temperror")]),
    ("listed", "192.0.2.66", "f@pass.example", [DEST], [("reject", "listed", "pass")]),
    ("trusted", "198.51.100.5", "g@fail.example", [DEST], [("accept", "trusted", "none")]),
]

SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    """The page as {(name, frozenset(labels)): value}, and the raw text."""
    r = subprocess.run(["curl", "-s", "-f", "--max-time", "5",
                        "http://127.0.0.1:%d/metrics" % port],
                       capture_output=True, text=True, timeout=10)
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        if m is None:
            out[("_bad", line)] = None
            continue
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return r.returncode, out, r.stdout


def get(page, name, **labels):
    return page.get((name, frozenset(labels.items())), 0.0)


def total(page, name):
    return sum(v for (n, _), v in page.items() if n == name and v is not None)


def settle(sg, want, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(sg.decision_lines()) < want:
        time.sleep(0.05)
    time.sleep(0.2)


def main():
    why = pfh.skip_reason()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    if shutil.which("curl") is None:
        print("1..0 # SKIP curl not installed")
        return 0
    install_signal_handlers()
    tap = Tap()
    port, mport = pfh.free_port(), pfh.free_port()
    with scratch_dir("spfg-metrics.") as work:
        with TestServer(ZONE, lifetime=300) as dns, \
                Postfix(milter="inet:127.0.0.1:%d" % port, lifetime=300) as pf:
            conf = pfh.merge(CONF, {"metrics": {"listen": "127.0.0.1:%d" % mport}})
            sg = Spfguard(conf, port=port, workdir=work, dns=dns.addr, lifetime=300)
            sg.start()
            try:
                run(tap, sg, pf, mport)
            finally:
                rc, _ = sg.stop()
                tap.ok(rc == 0, "spfguard exits 0", "exit %s" % rc)
                check_no_crash(tap, sg.stderr(), "no sanitizer report or crash")
    return tap.done()


def run(tap, sg, pf, mport):
    rc, page, text = scrape(mport)
    tap.ok(rc == 0 and "# TYPE spfguard_decisions_total counter" in text
           and not any(k[0] == "_bad" for k in page),
           "the page answers at http://127.0.0.1:%d/metrics in the text format" % mport,
           "curl exit %s" % rc)
    # Postfix's readiness probe (a TCP connect to smtpd) can make smtpd
    # open a milter session of its own just after spfguard starts: it is
    # no mail, and it ends at once; wait (up to 5 s) for it to end
    end = time.monotonic() + 5
    while get(page, "spfguard_sessions_in_flight") != 0 and time.monotonic() < end:
        time.sleep(0.1)
        rc, page, text = scrape(mport)
    tap.ok(total(page, "spfguard_decisions_total") == 0
           and get(page, "spfguard_sessions_in_flight") == 0,
           "before any mail: no decisions, no session",
           "decisions %s, in flight %s" % (total(page, "spfguard_decisions_total"),
                                           get(page, "spfguard_sessions_in_flight")))
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:%d/nothing" % mport],
                       capture_output=True, text=True, timeout=10)
    tap.ok(r.stdout == "404", "another path: 404", r.stdout)

    want = collections.Counter()
    rcpts = collections.Counter()
    for label, ip, sender, to, decisions in MAIL:
        s = smtp_session(pf.port, sender, to, addr=ip, name="client.example",
                         helo="client.example")
        codes = [x.code for x in s.rcpts]
        for d in decisions:
            want[d] += 1
            rcpts[d[0]] += len(to)
        tap.diag("%s: RCPT %s" % (label, codes))
    settle(sg, sum(want.values()))
    rc, page, text = scrape(mport)

    for (action, rule, spf), n in sorted(want.items()):
        got = get(page, "spfguard_decisions_total", action=action, rule=rule, spf=spf)
        tap.ok(got == n, "decisions{action=%s,rule=%s,spf=%s} = %d" % (action, rule, spf, n),
               "got %s" % got)
    tap.ok(total(page, "spfguard_decisions_total") == sum(want.values()),
           "no other decisions counted (%d in all)" % sum(want.values()),
           "got %s" % total(page, "spfguard_decisions_total"))
    for action, n in sorted(rcpts.items()):
        got = get(page, "spfguard_recipients_total", action=action)
        tap.ok(got == n, "recipients{action=%s} = %d" % (action, n), "got %s" % got)

    # the same, counted from the decision log
    log = collections.Counter((d["action"], d["rule"], (d["spf"] or {}).get("result", "none"))
                              for d in sg.decisions())
    tap.ok(log == want, "the decision log holds the same decisions as the page",
           "log %s" % dict(log))
    tap.ok(get(page, "spfguard_decision_log_lines_total") == sum(want.values())
           and get(page, "spfguard_decision_log_write_failures_total") == 0,
           "decision-log lines written = decisions, no write failure")

    untrusted = sum(n for (a, rule, s), n in want.items() if rule != "trusted")
    tap.ok(get(page, "spfguard_blocklist_lookups_total", list="testbl", status="listed") == 1
           and get(page, "spfguard_blocklist_lookups_total", list="testbl", status="clean")
           == untrusted - 1,
           "blocklist lookups: 1 listed, %d clean (trusted clients are not looked up)"
           % (untrusted - 1),
           "listed %s clean %s" % (
               get(page, "spfguard_blocklist_lookups_total", list="testbl", status="listed"),
               get(page, "spfguard_blocklist_lookups_total", list="testbl", status="clean")))
    queries = get(page, "spfguard_dns_queries_total")
    count = get(page, "spfguard_dns_latency_seconds_count")
    inf = get(page, "spfguard_dns_latency_seconds_bucket", le="+Inf")
    hits = get(page, "spfguard_dns_cache_hits_total")
    sent = get(page, "spfguard_dns_sent_total")
    # no invalid names here: every question is a cache hit or timed
    tap.ok(queries >= untrusted and count + hits == queries and inf == count
           and get(page, "spfguard_dns_timeouts_total") >= 1
           and get(page, "spfguard_dns_tempfails_total") >= 1,
           "DNS: %d queries, those not answered from the cache in the latency "
           "histogram, the timeout of temp.example counted" % queries,
           "queries %s count %s +Inf %s hits %s timeouts %s" % (
               queries, count, inf, hits, get(page, "spfguard_dns_timeouts_total")))
    # pass.example's TXT is asked by 3 messages, fail.example's by 2 (the
    # trusted client's is not checked); temp.example's timeouts are not kept
    tap.ok(hits >= 3 and sent <= queries - hits,
           "DNS answer cache: at least 3 hits (%d), not sent to the resolver" % hits,
           "hits %s sent %s queries %s" % (hits, sent, queries))
    buckets = [v for (n, l), v in sorted(page.items(), key=lambda kv: str(kv[0]))
               if n == "spfguard_dns_latency_seconds_bucket"]
    les = sorted(((float(dict(l)["le"]) if dict(l)["le"] != "+Inf" else float("inf")), v)
                 for (n, l), v in page.items() if n == "spfguard_dns_latency_seconds_bucket")
    tap.ok(len(buckets) == 12 and all(a[1] <= b[1] for a, b in zip(les, les[1:])),
           "the latency histogram has 12 cumulative buckets")
    tap.ok(get(page, "spfguard_sessions_in_flight") == 0,
           "sessions in flight back to 0")

    # reloads: a good file, then a broken one
    os.kill(sg.proc.pid, signal.SIGHUP)
    time.sleep(0.5)
    good = open(sg.conf_path).read()
    with open(sg.conf_path, "w") as f:
        f.write(good + "\nbogus_key = 1;\n")
    os.kill(sg.proc.pid, signal.SIGHUP)
    time.sleep(0.5)
    with open(sg.conf_path, "w") as f:
        f.write(good)
    rc, page, text = scrape(mport)
    tap.ok(get(page, "spfguard_reloads_total") == 2
           and get(page, "spfguard_reload_failures_total") == 1,
           "reloads 2, failures 1",
           "reloads %s failures %s" % (get(page, "spfguard_reloads_total"),
                                       get(page, "spfguard_reload_failures_total")))
    s = smtp_session(pf.port, "z@fail.example", [DEST], addr="203.0.113.10",
                     name="client.example", helo="client.example")
    settle(sg, sum(want.values()) + 1)
    rc, page, text = scrape(mport)
    tap.ok(s.rcpts and s.rcpts[0].code == 550
           and get(page, "spfguard_decisions_total", action="reject", rule="spf-fail",
                   spf="fail") == want[("reject", "spf-fail", "fail")] + 1,
           "after the reloads mail is still decided and counted")


if __name__ == "__main__":
    sys.exit(main())
