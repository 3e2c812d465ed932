#!/usr/bin/python3
"""test_reputation.py - spfguard's reputation features end to end (TAP).

Each case runs its own spfguard behind its own private Postfix
(tests/e2e/postfix.py), resolving through tests/dnsserver.py; mail comes in
with XCLIENT (the client address) and leaves to the harness's SMTP sink.

  1. DNSBL and RHSBL: a client listed in the test zone (exact codes, and a
     bit mask) is refused at RCPT, 550 5.7.1 naming the list, and its
     decision-log line has the list, "listed" and the code; an answer
     outside the codes and an unlisted client are accepted; a list that
     answers SERVFAIL or never answers is "unknown" in the log (never
     "clean") and a dnsbl_unknown rule acts on it; a sender domain listed
     on an RHSBL is refused naming the list.
  2. Greylisting (LMDB, delay 2 s): 451 4.7.1 "Greylisted: please try
     again in N seconds", again on an immediate retry, accepted and
     delivered once the delay has passed; the source (the SPF-pass domain,
     else the client's /24) is then remembered: another sender and
     recipient from it are accepted at once, another source is not;
     trusted clients are never greylisted.
  3. Rate limit (LMDB, 3 per IP per hour, action tempfail, own reply):
     messages 1-3 delivered, the 4th gets the configured answer, another
     IP is unaffected; the log line names rule ratelimit:NAME and the rate.
  4. History (LMDB, established after 2 SPF-pass messages): the first two
     messages of a domain are not tagged, the third is (X-Spfguard-Tag by
     a history = "established" rule), and after a restart on the same
     store the fourth too; forged mail (SPF fail) creates no record, even
     after several messages; the established domain failing SPF is an
     anomaly (logged, and an anomaly = true rule refuses it).
  5. Fleet (Redis): two spfguards, each behind its own Postfix, on one
     redis-server: a triplet greylisted through A passes through B after
     the delay; a rate limit counts the mail of both.
  6. Redis stopped mid-run: on_error = "accept" accepts at once (no
     greylisting, store_error in the log, "failing open" logged);
     on_error = "tempfail" answers 451 4.3.0 ("failing closed" logged),
     also for a recipient a greylist rule matches (the store's answer,
     not a made-up greylisting);
     both daemons live on, and once redis-server is back on its port mail
     is answered normally again (the store backs off reconnects for up
     to 10 s: polled, bounded).

    /usr/bin/python3 tests/e2e/test_reputation.py [--only 123456]

Skips (1..0 # SKIP) without Postfix, root or python3-dnslib, and until
filter/spfguard is built ($SPFGUARD names another binary); cases 5 and 6
skip (saying why) without /usr/bin/redis-server.  Every server listens on
127.0.0.1 only and is stopped by its pid (a watchdog and
setpriv --pdeathsig cover a test that dies).  Takes about 20 s: the
greylist delays, a restart, the redis back-off and the daemons' stops
(libmilter looks at its stop flag every 5 s; the stops of finished cases
run in the background).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
from postfix import Postfix, Spfguard, smtp_session  # noqa: E402
from spftest_lib import (crash_lines, install_signal_handlers, scratch_dir, Tap,  # noqa: E402
                         TestServer)

AUTHSERV = "mx.test.example"
TAG = "X-Spfguard-Tag"
HELO = "mail.client.example"          # not in the zone: HELO SPF is none
DEST = "user@dest.example"
REDIS = "/usr/bin/redis-server"
LIFETIME = 300                        # every server's longest life, seconds

# 192.0.2.0/24 may send for the *.example domains below; 203.0.113.0/24 may
# not.  198.51.100.0/24 is trusted.
SPF_OK = "v=spf1 ip4:192.0.2.0/24 -all"

ZONE = {
    # SPF
    "pass.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "other.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "spam.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "rate.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "hist.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "forged.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "fleet.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    "down.example": {"records": [{"type": "TXT", "data": SPF_OK}]},
    # (nospf.example, nospf2.example: no record, SPF none)
    # DNSBL "testbl" (codes 127.0.0.2): 192.0.2.66 listed, .67 answered
    # with a code that does not count
    "66.2.0.192.bl.test": {"records": [{"type": "A", "data": "127.0.0.2"}]},
    "67.2.0.192.bl.test": {"records": [{"type": "A", "data": "127.0.0.3"}]},
    # DNSBL "maskbl" (mask 6): .70 listed (4), .71 not (8)
    "70.2.0.192.mask.test": {"records": [{"type": "A", "data": "127.0.0.4"}]},
    "71.2.0.192.mask.test": {"records": [{"type": "A", "data": "127.0.0.8"}]},
    # DNSBL "sfbl": SERVFAIL for .77, no answer at all for .78
    "77.2.0.192.sf.test": {"servfail": True},
    "78.2.0.192.sf.test": {"timeout": True},
    # RHSBL "rhstest": spam.example listed
    "spam.example.rhs.test": {"records": [{"type": "A", "data": "127.0.0.2"}]},
}

BASE = {
    "dns": {"resolvers": [], "timeout_ms": 500},
    "spf": {"deadline_ms": 1500, "receiver": AUTHSERV, "helo_check": False},
    "headers": {"authserv_id": AUTHSERV, "tag_header": TAG},
    "mode": "enforce",
    "trusted_networks": ["127.0.0.0/8", "::1/128", "198.51.100.0/24"],
    "rules": [{"name": "default", "action": "accept"}],
}

def brief(d, keys=("client_ip", "sender", "rule", "action", "reply", "lists", "history",
                   "rates", "store_error", "greylist")):
    return repr({k: d.get(k) for k in keys}) if isinstance(d, dict) else repr(d)


def rcpt_reply(s, i=0):
    return s.rcpts[i] if len(s.rcpts) > i else None


def rcpt_is(s, code, xcode=None, text=None, i=0):
    """Did recipient i get code (and xcode, and text in the reply)?"""
    r = rcpt_reply(s, i)
    if r is None or r.code != code:
        return False
    if xcode is not None and r.enhanced != xcode:
        return False
    return text is None or text in (r.text or "")


def accepted(s):
    return bool(s.rcpts) and s.rcpts[0].code == 250 and s.data is not None and \
        s.data.code == 250


# ---------------------------------------------------------------------------
# redis-server

class Redis:
    """A private redis-server on 127.0.0.1:port, a child of this process
    (setpriv --pdeathsig; a harness watchdog SIGKILLs it if this process
    dies), stopped by its pid."""

    def __init__(self, work, port=None):
        self.port = port or pfh.free_port()
        self.dir = tempfile.mkdtemp(prefix="redis.", dir=work)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.watchdog = None
        self._log = None

    def start(self, wait=10.0):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            pfh.die_with_me([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--dir", self.dir]),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            cwd=self.dir)
        self.watchdog = pfh.start_watchdog(LIFETIME, pids=[self.proc.pid])
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            if self.ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("redis-server did not start on port %d: %s" % (
            self.port, self.log()[-500:]))

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Stop it by its pid (SIGKILL: as if it crashed)."""
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        pfh.stop_watchdog(self.watchdog)
        self.watchdog = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self):
        self.kill(signal.SIGTERM)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# ---------------------------------------------------------------------------
# one spfguard behind one Postfix

class Inst:
    def __init__(self, run, label, conf, port=None):
        self.run = run
        self.tap = run.tap
        self.label = label
        self.conf = pfh.merge(conf, {"dns": {"resolvers": [run.dns.addr]}})
        self.sg = Spfguard(self.conf, port=port, workdir=run.work, lifetime=LIFETIME)
        self.pf = None
        run.insts.append(self)

    def start(self):
        """Check the configuration, start spfguard and a Postfix for it."""
        rc, out = self.sg.check_config()
        if not self.tap.ok(rc == 0, "%s: spfguard -n accepts the configuration" % self.label,
                           None if rc == 0 else out.strip()[:300]):
            self.tap.diag(out)
            self.tap.diag(pfh.to_libconfig(self.conf))
            return False
        try:
            self.sg.start()
        except pfh.SpfguardError as e:
            self.tap.ok(False, "%s: spfguard starts" % self.label, str(e)[:300])
            self.tap.diag(str(e))
            return False
        if self.pf is None:
            self.pf = Postfix(milter=self.sg.spec, lifetime=LIFETIME)
            try:
                self.pf.start()
            except pfh.PostfixError as e:
                self.tap.ok(False, "%s: Postfix starts" % self.label, str(e)[:300])
                self.tap.diag(str(e))
                return False
        return True

    def restart(self):
        """Stop spfguard (SIGTERM) and start it again on the same port with
        the same configuration (Postfix stays)."""
        rc, took = self.sg.stop()
        self.run.results.append((self.label + " (before the restart)", rc, took,
                                 self.sg.stderr()))
        self.sg = Spfguard(self.conf, port=self.sg.port, workdir=self.run.work,
                           lifetime=LIFETIME)
        try:
            self.sg.start()
        except pfh.SpfguardError as e:
            self.tap.ok(False, "%s: spfguard starts again" % self.label, str(e)[:300])
            return False
        return True

    # -- mail -------------------------------------------------------------
    def send(self, sender, rcpts=(DEST,), addr="192.0.2.1", **kw):
        return smtp_session(self.pf.port, sender, list(rcpts), addr=addr, helo=HELO, **kw)

    def delivered(self, s, timeout=10):
        if s.message_id is None or s.data is None or s.data.code != 250:
            return []
        return self.pf.sink.wait_for(s.message_id, timeout=timeout)

    def lines(self, sender):
        return [d for d in self.sg.decisions() if d.get("sender") == sender]

    def new_line(self, sender, before, timeout=5.0):
        """The first decision-log line for sender after the `before` ones
        (a refused transaction's line comes when Postfix ends the milter
        session, just after the client's QUIT); {} if none came."""
        end = time.monotonic() + timeout
        while True:
            ls = self.lines(sender)
            if len(ls) > before or time.monotonic() >= end:
                return ls[before] if len(ls) > before else {}
            time.sleep(0.02)

    def mail(self, sender, rcpts=(DEST,), addr="192.0.2.1", **kw):
        """One session, and its decision-log line: (Session, dict)."""
        before = len(self.lines(sender))
        s = self.send(sender, rcpts, addr, **kw)
        return s, self.new_line(sender, before)

    def explain(self, s=None, d=None):
        if s is not None:
            self.tap.diag("session: %r (%.2f s)" % (s, s.elapsed or 0))
        if d is not None:
            self.tap.diag("decision: %s" % brief(d))
        self.tap.diag("spfguard (end):\n" + "\n".join(self.sg.stderr().splitlines()[-6:]))
        if self.pf is not None:
            self.tap.diag("maillog (end):\n" + "\n".join(self.pf.log().splitlines()[-4:]))

    def stop_in_background(self):
        """Stop Postfix now and spfguard in a thread (the stop takes up to
        5 s); its exit status is checked at the end."""
        if self.pf is not None:
            self.pf.stop()
        sg = self.sg

        def stop():
            rc, took = sg.stop()
            self.run.results.append((self.label, rc, took, sg.stderr()))
        t = threading.Thread(target=stop, daemon=True)
        t.start()
        self.run.stoppers.append(t)


class Run:
    def __init__(self, tap, dns, work):
        self.tap = tap
        self.dns = dns
        self.work = work
        self.insts = []
        self.redises = []
        self.stoppers = []
        self.results = []               # (label, exit status, seconds, stderr)

    def store(self, name, **over):
        d = {"backend": "lmdb", "path": os.path.join(self.work, name)}
        d.update(over)
        return d

    def redis_store(self, redis, **over):
        d = {"backend": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port,
             "timeout_ms": 200, "prefix": "e2e:"}
        d.update(over)
        return d

    def new_redis(self, port=None):
        r = Redis(self.work, port)
        self.redises.append(r)
        return r.start()

    def cleanup(self):
        for i in self.insts:
            if i.pf is not None:
                i.pf.stop()
            if i.sg.alive():
                i.sg.kill()
        for r in self.redises:
            r.kill()


def lists_of(d, name=None):
    return [x for x in (d.get("lists") or []) if name is None or x.get("list") == name]


# ---------------------------------------------------------------------------
# 1. DNSBL and RHSBL

def case_1_dnsbl(run):
    conf = pfh.merge(BASE, {
        "dnsbl": [{"name": "testbl", "zone": "bl.test", "codes": ["127.0.0.2"]},
                  {"name": "maskbl", "zone": "mask.test", "mask": 6},
                  {"name": "sfbl", "zone": "sf.test"}],
        "rhsbl": [{"name": "rhstest", "zone": "rhs.test", "identities": ["from"]}],
        "rules": [
            {"name": "bl", "match": {"dnsbl": "*"}, "action": "reject"},
            {"name": "bl-unknown", "match": {"dnsbl_unknown": "sfbl"}, "action": "tempfail",
             "code": 451, "xcode": "4.7.1",
             "reply": "Cannot check [{ip}] against a blocklist now, try later"},
            {"name": "rhs", "match": {"rhsbl": "rhstest"}, "action": "reject"},
            {"name": "default", "action": "accept"},
        ]})
    inst = Inst(run, "1", conf)
    tap = run.tap
    if not inst.start():
        return inst

    # listed on testbl (exact code)
    s, d = inst.mail("bl-66@pass.example", addr="192.0.2.66")
    if not tap.ok(rcpt_is(s, 550, "5.7.1", "blocked using testbl") and s.data is None,
                  "1. a client listed on testbl is refused at RCPT: 550 5.7.1 naming "
                  "the list", repr(rcpt_reply(s))):
        inst.explain(s, d)
    r = rcpt_reply(s)
    tap.ok(r is not None and "[192.0.2.66]" in (r.text or ""),
           "1. ... and the client's address (default reply "
           "\"Client host [IP] blocked using NAME\")", repr(r))
    x = lists_of(d, "testbl")
    x = x[0] if x else {}
    tap.ok(x.get("kind") == "dnsbl" and x.get("subject") == "192.0.2.66" and
           x.get("status") == "listed" and "127.0.0.2" in (x.get("codes") or ""),
           "1. its log line: testbl, kind dnsbl, subject 192.0.2.66, status listed, "
           "code 127.0.0.2", repr(x or d.get("lists")))
    tap.ok(d.get("rule") == "bl" and d.get("action") == "reject" and
           (d.get("reply") or {}).get("code") == 550,
           "1. ... rule bl, action reject, reply 550", brief(d))

    # listed on maskbl (bit mask)
    s, d = inst.mail("bl-70@pass.example", addr="192.0.2.70")
    x = (lists_of(d, "maskbl") or [{}])[0]
    if not tap.ok(rcpt_is(s, 550, "5.7.1", "blocked using maskbl") and
                  x.get("status") == "listed" and "127.0.0.4" in (x.get("codes") or ""),
                  "1. mask = 6: an answer 127.0.0.4 lists (550 naming maskbl, logged "
                  "listed with its code)", "%r %r" % (rcpt_reply(s), x)):
        inst.explain(s, d)

    # not listed: no record, or answers that do not count
    for addr, why in (("192.0.2.1", "a client not listed"),
                      ("192.0.2.67", "testbl answering 127.0.0.3 (not in codes)"),
                      ("192.0.2.71", "maskbl answering 127.0.0.8 (outside the mask)")):
        sender = "clean-%s@pass.example" % addr.split(".")[-1]
        s, d = inst.mail(sender, addr=addr)
        msgs = inst.delivered(s)
        if not tap.ok(accepted(s) and len(msgs) == 1,
                      "1. %s: accepted and delivered" % why, repr(s.final())):
            inst.explain(s, d)
        sts = {x.get("list"): x.get("status") for x in lists_of(d)}
        tap.ok(sts == {"testbl": "clean", "maskbl": "clean", "sfbl": "clean",
                      "rhstest": "clean"} and
               d.get("rule") == "default",
               "1. ... logged clean on every list", repr(d.get("lists")))

    # unknown: SERVFAIL, and no answer at all
    for addr, what in (("192.0.2.77", "SERVFAIL"), ("192.0.2.78", "no answer (timeout)")):
        sender = "unknown-%s@pass.example" % addr.split(".")[-1]
        s, d = inst.mail(sender, addr=addr)
        x = (lists_of(d, "sfbl") or [{}])[0]
        if not tap.ok(x.get("status") == "unknown" and x.get("why"),
                      "1. a list zone giving %s: status unknown (never clean), with why"
                      % what, repr(x or d.get("lists"))):
            inst.explain(s, d)
        if not tap.ok(rcpt_is(s, 451, "4.7.1", "Cannot check [%s] against a blocklist" % addr)
                      and s.data is None and d.get("rule") == "bl-unknown",
                      "1. ... and the dnsbl_unknown rule acts on it: 451 4.7.1 with its "
                      "reply", "%r rule=%r %.1f s" % (rcpt_reply(s), d.get("rule"),
                                                      s.elapsed or 0)):
            inst.explain(s, d)

    # RHSBL: the sender domain
    s, d = inst.mail("x@spam.example", addr="192.0.2.1")
    x = (lists_of(d, "rhstest") or [{}])[0]
    if not tap.ok(rcpt_is(s, 550, "5.7.1", "spam.example blocked using rhstest") and
                  x.get("kind") == "rhsbl" and x.get("subject") == "spam.example" and
                  x.get("status") == "listed" and d.get("rule") == "rhs",
                  "1. RHSBL: a listed sender domain is refused, 550 5.7.1 naming "
                  "rhstest; logged kind rhsbl, listed", "%r %r" % (rcpt_reply(s), x)):
        inst.explain(s, d)
    inst.stop_in_background()
    return inst


# ---------------------------------------------------------------------------
# 2. greylisting

GREY_TEXT = "Greylisted: please try again in"


def greylist_state(d):
    return (d.get("greylist") or {}).get("state")


def case_2_greylist(run):
    conf = pfh.merge(BASE, {
        "store": run.store("grey-lmdb"),
        "greylist": {"delay": 2, "retry_window": 60},
        "rules": [{"name": "grey", "action": "greylist"},
                  {"name": "default", "action": "accept"}]})
    inst = Inst(run, "2", conf)
    tap = run.tap
    if not inst.start():
        return inst
    sender, rcpt = "grey@pass.example", "first@dest.example"
    nsender, nrcpt = "grey@nospf.example", "net@dest.example"

    s, d = inst.mail(sender, [rcpt], addr="192.0.2.10")
    t0 = time.monotonic()
    if not tap.ok(rcpt_is(s, 451, "4.7.1", GREY_TEXT + " 2 seconds") and s.data is None,
                  "2. first attempt: 451 4.7.1 \"%s 2 seconds\"" % GREY_TEXT,
                  repr(rcpt_reply(s))):
        inst.explain(s, d)
    tap.ok(d.get("greylist") == {"state": "deferred", "retry_s": 2} and
           d.get("action") == "greylist" and d.get("rule") == "grey",
           "2. ... logged greylist deferred, retry_s 2, rule grey", brief(d))
    # a source without SPF pass: keyed by the client's network
    s2, d2 = inst.mail(nsender, [nrcpt], addr="203.0.113.20")
    tap.ok(rcpt_is(s2, 451, "4.7.1", GREY_TEXT) and greylist_state(d2) == "deferred",
           "2. a sender without SPF pass (network source): 451 too", repr(rcpt_reply(s2)))

    s, d = inst.mail(sender, [rcpt], addr="192.0.2.10")
    ok = rcpt_is(s, 451, "4.7.1", GREY_TEXT) and s.data is None and \
        greylist_state(d) == "deferred" and \
        (d.get("greylist") or {}).get("retry_s") in (1, 2)
    if not tap.ok(ok, "2. immediate retry: 451 4.7.1 again (retry_s 1 or 2)",
                  "%r %r" % (rcpt_reply(s), d.get("greylist"))):
        inst.explain(s, d)

    time.sleep(max(0.0, t0 + 2.2 - time.monotonic()))
    s, d = inst.mail(sender, [rcpt], addr="192.0.2.10")
    msgs = inst.delivered(s)
    if not tap.ok(accepted(s) and len(msgs) == 1 and msgs[0].rcpts == [rcpt],
                  "2. retry after 2.2 s: accepted and delivered (the sink got it)",
                  repr(s.final())):
        inst.explain(s, d)
    tap.ok(greylist_state(d) == "passed" and d.get("action") == "accept",
           "2. ... logged greylist passed, action accept", brief(d))
    s2, d2 = inst.mail(nsender, [nrcpt], addr="203.0.113.20")
    tap.ok(accepted(s2) and len(inst.delivered(s2)) == 1,
           "2. the network source's retry after the delay: accepted and delivered",
           repr(s2.final()))

    # the source is remembered: another sender, recipient and client address
    s, d = inst.mail("second@pass.example", ["second@dest.example"], addr="192.0.2.11")
    if not tap.ok(accepted(s) and len(inst.delivered(s)) == 1,
                  "2. same source (SPF-pass domain pass.example) later, another sender "
                  "and recipient: accepted at once", repr(s.final())):
        inst.explain(s, d)
    s, d = inst.mail("other@nospf2.example", ["other@dest.example"], addr="203.0.113.21")
    tap.ok(accepted(s),
           "2. same network source (203.0.113.0/24), another address and sender: "
           "accepted at once", repr(s.final()))
    # ... and only that source
    s, d = inst.mail("grey@other.example", [rcpt], addr="192.0.2.10")
    tap.ok(rcpt_is(s, 451, "4.7.1", GREY_TEXT),
           "2. another source (other.example, same client address): greylisted",
           repr(rcpt_reply(s)))

    # trusted clients: never
    for addr, what in (("198.51.100.7", "a trusted client (198.51.100.0/24)"),
                       (None, "the real client 127.0.0.1 (trusted, no XCLIENT)")):
        for n in (1, 2):
            sender_t = "trusted%d@other.example" % n
            s, d = inst.mail(sender_t, ["trusted@dest.example"], addr=addr)
            if not tap.ok(accepted(s) and len(inst.delivered(s)) == 1 and
                          d.get("trusted") is True and greylist_state(d) != "deferred",
                          "2. %s, attempt %d: accepted at once, never greylisted"
                          % (what, n), "%r %s" % (s.final(), brief(d))):
                inst.explain(s, d)
    inst.stop_in_background()
    return inst


# ---------------------------------------------------------------------------
# 3. rate limit

RATE_REPLY = "Rate limit {rate} reached for [{ip}], try again later"


def case_3_rate(run):
    conf = pfh.merge(BASE, {
        "store": run.store("rate-lmdb"),
        "ratelimits": [{"name": "per-ip", "key": "ip", "limit": 3, "window": 3600,
                        "action": "tempfail", "code": 451, "xcode": "4.7.28",
                        "reply": RATE_REPLY}]})
    inst = Inst(run, "3", conf)
    tap = run.tap
    if not inst.start():
        return inst
    ip = "192.0.2.30"
    got = []
    for n in (1, 2, 3):
        s, d = inst.mail("r%d@rate.example" % n, addr=ip)
        got.append((s, d, inst.delivered(s)))
    ok = all(accepted(s) and len(m) == 1 for s, _d, m in got)
    if not tap.ok(ok, "3. messages 1-3 from %s: accepted and delivered" % ip,
                  repr([s.final() for s, _d, _m in got])):
        for s, d, _m in got:
            inst.explain(s, d)
    rates = [(d.get("rates") or [{}])[0] for _s, d, _m in got]
    tap.ok([x.get("rate") for x in rates] == [1, 2, 3] and
           all(x.get("over") is False and x.get("max") == 3 for x in rates),
           "3. ... logged rates 1, 2, 3 of max 3, not over", repr(rates))
    want = "Rate limit per-ip reached for [%s], try again later" % ip
    s, d = inst.mail("r4@rate.example", addr=ip)
    if not tap.ok(rcpt_is(s, 451, "4.7.28", want) and s.data is None,
                  "3. the 4th: the configured answer, 451 4.7.28 \"%s\"" % want,
                  repr(rcpt_reply(s))):
        inst.explain(s, d)
    x = (d.get("rates") or [{}])[0]
    tap.ok(d.get("rule") == "ratelimit:per-ip" and d.get("action") == "tempfail" and
           x.get("limit") == "per-ip" and x.get("over") is True and x.get("rate") == 4,
           "3. ... logged rule ratelimit:per-ip, rate 4 over max 3", brief(d))
    s, d = inst.mail("other@rate.example", addr="192.0.2.31")
    x = (d.get("rates") or [{}])[0]
    if not tap.ok(accepted(s) and len(inst.delivered(s)) == 1 and x.get("rate") == 1,
                  "3. another IP (192.0.2.31): unaffected, accepted (rate 1)",
                  "%r %r" % (s.final(), x)):
        inst.explain(s, d)
    inst.stop_in_background()
    return inst


# ---------------------------------------------------------------------------
# 4. history

def hist(d):
    h = d.get("history") or {}
    return h.get("domain") or {}


def case_4_history(run):
    conf = pfh.merge(BASE, {
        "store": run.store("hist-lmdb"),
        "history": {"enabled": True, "established_messages": 2, "established_hours": 0},
        "rules": [
            {"name": "anomaly", "match": {"anomaly": True}, "action": "reject",
             "code": 550, "xcode": "5.7.1",
             "reply": "{domain} does not usually send from [{ip}]"},
            {"name": "established", "match": {"history": "established"}, "action": "tag"},
            {"name": "spf-fail", "match": {"spf": "fail"}, "action": "tag"},
            {"name": "default", "action": "accept"},
        ]})
    inst = Inst(run, "4", conf)
    tap = run.tap
    if not inst.start():
        return inst
    good, bad = "192.0.2.40", "203.0.113.9"

    # before any history: SPF fail from hist.example creates no record
    s, d = inst.mail("early@hist.example", addr=bad)
    h = hist(d)
    tap.ok(accepted(s) and h.get("class") == "new" and
           (d.get("history") or {}).get("anomaly") is False,
           "4. hist.example failing SPF before it has history: class new, no anomaly "
           "(tagged spf-fail, delivered)", "%r %s" % (s.final(), brief(d)))

    def one(n, want_tag):
        s, d = inst.mail("m%d@hist.example" % n, addr=good)
        msgs = inst.delivered(s)
        tag = msgs[0].get(TAG) if len(msgs) == 1 else "(not delivered)"
        if want_tag:
            ok = accepted(s) and tag is not None and tag.startswith("established;")
        else:
            ok = accepted(s) and len(msgs) == 1 and tag is None
        if not tap.ok(ok, "4. hist.example message %d (SPF pass): %s" % (
                n, "tagged %s: established" % TAG if want_tag else "delivered, not tagged"),
                "%s: %r" % (TAG, tag)):
            inst.explain(s, d)
        return d

    d1 = one(1, False)
    tap.ok(hist(d1).get("class") == "new" and hist(d1).get("delivered") == 0,
           "4. ... message 1 logged class new, delivered 0", repr(d1.get("history")))
    d2 = one(2, False)
    tap.ok(hist(d2).get("class") == "new" and hist(d2).get("delivered") == 1,
           "4. ... message 2 logged class new, delivered 1", repr(d2.get("history")))
    d3 = one(3, True)
    tap.ok(hist(d3).get("class") == "established" and hist(d3).get("delivered") == 2 and
           d3.get("rule") == "established",
           "4. ... message 3 logged class established, delivered 2, rule established",
           repr(d3.get("history")))
    net = (d3.get("history") or {}).get("network") or {}
    tap.ok(d3.get("network") == "192.0.2.0/24" and net.get("delivered") == 2,
           "4. ... network 192.0.2.0/24, its own record (delivered 2)",
           "%r %r" % (d3.get("network"), net))

    # persistence: restart on the same store
    if not inst.restart():
        return inst
    d4 = one(4, True)
    tap.ok(hist(d4).get("class") == "established" and hist(d4).get("delivered") == 3,
           "4. after a restart on the same store: message 4 still established "
           "(delivered 3)", repr(d4.get("history")))

    # forged mail builds no history
    last = {}
    for n in (1, 2, 3):
        s, last = inst.mail("f%d@forged.example" % n, addr=bad)
        if not accepted(s):
            break
    h = hist(last)
    spf_counts = h.get("spf") or {}
    if not tap.ok(accepted(s) and last.get("rule") == "spf-fail" and h.get("class") == "new"
                  and h.get("delivered") == 0 and h.get("first") == 0 and
                  not any(spf_counts.values()),
                  "4. forged.example (SPF fail), 3 messages: still class new, delivered 0, "
                  "nothing counted (no record)", brief(last)):
        inst.explain(s, last)

    # anomaly: the established domain failing SPF
    s, d = inst.mail("odd@hist.example", addr=bad)
    want = "hist.example does not usually send from [%s]" % bad
    tap.ok((d.get("history") or {}).get("anomaly") is True and
           (d.get("spf") or {}).get("result") == "fail" and
           hist(d).get("class") == "established",
           "4. hist.example (established) failing SPF from %s: anomaly true in the log"
           % bad, brief(d))
    if not tap.ok(rcpt_is(s, 550, "5.7.1", want) and d.get("rule") == "anomaly",
                  "4. ... and the anomaly = true rule refuses it: 550 5.7.1 \"%s\"" % want,
                  repr(rcpt_reply(s))):
        inst.explain(s, d)
    inst.stop_in_background()
    return inst


# ---------------------------------------------------------------------------
# 5. fleet: two spfguards on one redis-server

def fleet_conf(run, redis, **over):
    return pfh.merge(BASE, dict({
        "store": run.redis_store(redis),
        "greylist": {"delay": 2, "retry_window": 60},
        "ratelimits": [{"name": "fleet-ip", "key": "ip", "limit": 3, "window": 3600,
                        "action": "tempfail", "code": 451, "xcode": "4.7.28",
                        "reply": "Fleet limit {rate} reached for [{ip}]"}],
        "rules": [{"name": "grey", "match": {"rcpt_domain": "grey.example"},
                   "action": "greylist"},
                  {"name": "default", "action": "accept"}]}, **over))


def case_5_fleet(run):
    tap = run.tap
    redis = run.new_redis()
    a = Inst(run, "5A", fleet_conf(run, redis))
    b = Inst(run, "5B", fleet_conf(run, redis))
    if not (a.start() and b.start()):
        return
    sender, rcpt = "fleet@fleet.example", "u@grey.example"
    s, d = a.mail(sender, [rcpt], addr="192.0.2.50")
    t0 = time.monotonic()
    if not tap.ok(rcpt_is(s, 451, "4.7.1", GREY_TEXT) and greylist_state(d) == "deferred",
                  "5. greylisted through A: 451 4.7.1", repr(rcpt_reply(s))):
        a.explain(s, d)
    s, d = b.mail(sender, [rcpt], addr="192.0.2.50")
    tap.ok(rcpt_is(s, 451, "4.7.1", GREY_TEXT) and
           (d.get("greylist") or {}).get("retry_s") in (1, 2),
           "5. at once through B: 451 too, B knows the triplet (retry_s 1 or 2)",
           "%r %r" % (rcpt_reply(s), d.get("greylist")))
    time.sleep(max(0.0, t0 + 2.2 - time.monotonic()))
    s, d = b.mail(sender, [rcpt], addr="192.0.2.50")
    if not tap.ok(accepted(s) and len(b.delivered(s)) == 1 and greylist_state(d) == "passed",
                  "5. after the delay through B: accepted and delivered (greylist passed)",
                  "%r %r" % (s.final(), d.get("greylist"))):
        b.explain(s, d)

    # the rate limit counts the mail of both
    ip = "192.0.2.51"
    seq = []
    for n, inst in enumerate((a, b, a), 1):
        s, d = inst.mail("rate%d@fleet.example" % n, addr=ip)
        seq.append((inst.label, s, d))
    rates = [(d.get("rates") or [{}])[0].get("rate") for _l, _s, d in seq]
    if not tap.ok(all(accepted(s) for _l, s, _d in seq) and rates == [1, 2, 3],
                  "5. rate limit: messages 1-3 through A, B, A accepted, rates 1, 2, 3 "
                  "(one count)", "%r %r" % ([s.final() for _l, s, _d in seq], rates)):
        for _l, s, d in seq:
            a.explain(s, d)
    want = "Fleet limit fleet-ip reached for [%s]" % ip
    s, d = b.mail("rate4@fleet.example", addr=ip)
    if not tap.ok(rcpt_is(s, 451, "4.7.28", want) and d.get("rule") == "ratelimit:fleet-ip",
                  "5. the 4th, through B: 451 4.7.28 \"%s\"" % want, repr(rcpt_reply(s))):
        b.explain(s, d)
    s, d = a.mail("rate5@fleet.example", addr=ip)
    tap.ok(rcpt_is(s, 451, "4.7.28", want),
           "5. the 5th, through A: refused as well", repr(rcpt_reply(s)))
    a.stop_in_background()
    b.stop_in_background()
    redis.stop()


# ---------------------------------------------------------------------------
# 6. the store goes away

STORE_TEXT = "Temporary failure of the reputation store"


def case_6_store_down(run):
    tap = run.tap
    redis = run.new_redis()
    common = {
        "greylist": {"delay": 2, "retry_window": 60},
        # no action: counted for the facts only, so every message uses the store
        "ratelimits": [{"name": "count", "key": "ip", "limit": 100000, "window": 3600}],
        "rules": [{"name": "grey", "match": {"rcpt_domain": "grey.example"},
                   "action": "greylist"},
                  {"name": "default", "action": "accept"}]}
    open_ = Inst(run, "6open", pfh.merge(BASE, dict(
        common, store=run.redis_store(redis, on_error="accept"))))
    closed = Inst(run, "6closed", pfh.merge(BASE, dict(
        common, store=run.redis_store(redis, on_error="tempfail"))))
    if not (open_.start() and closed.start()):
        return

    # with redis up
    s, d = open_.mail("before@down.example", ["u@grey.example"], addr="192.0.2.60")
    tap.ok(rcpt_is(s, 451, "4.7.1", GREY_TEXT) and d.get("store_error") is None,
           "6. redis up: on_error accept instance greylists a new triplet (451 4.7.1)",
           repr(rcpt_reply(s)))
    s, d = closed.mail("before@down.example", addr="192.0.2.61")
    tap.ok(accepted(s) and d.get("store_error") is None,
           "6. redis up: on_error tempfail instance accepts mail", repr(s.final()))

    redis.kill()
    tap.diag("redis-server (pid %d) killed" % redis.proc.pid)

    # fail open
    err0 = len(open_.sg.stderr())
    s, d = open_.mail("open@down.example", ["u@grey.example"], addr="192.0.2.62")
    msgs = open_.delivered(s)
    if not tap.ok(accepted(s) and len(msgs) == 1 and greylist_state(d) != "deferred",
                  "6. redis down, on_error = accept: a new triplet is accepted and "
                  "delivered (no greylisting)", "%r %r" % (s.final(), d.get("greylist"))):
        open_.explain(s, d)
    tap.ok(s.elapsed is not None and s.elapsed < 2.0,
           "6. ... promptly (< 2 s)", "%.2f s" % (s.elapsed or -1))
    tap.ok("redis" in (d.get("store_error") or ""),
           "6. ... its log line has store_error naming redis", repr(d.get("store_error")))
    err = open_.sg.stderr()[err0:]
    tap.ok(re.search(r"store: .*redis.*failing open", err) is not None,
           "6. ... spfguard logs \"store: ... failing open\"", err.strip()[-200:])

    # fail closed
    err0 = len(closed.sg.stderr())
    s, d = closed.mail("closed@down.example", addr="192.0.2.63")
    if not tap.ok(rcpt_is(s, 451, "4.3.0", STORE_TEXT) and s.data is None,
                  "6. redis down, on_error = tempfail: 451 4.3.0 \"%s...\"" % STORE_TEXT,
                  repr(rcpt_reply(s))):
        closed.explain(s, d)
    tap.ok(s.elapsed is not None and s.elapsed < 2.0,
           "6. ... promptly (< 2 s)", "%.2f s" % (s.elapsed or -1))
    tap.ok("redis" in (d.get("store_error") or "") and d.get("action") == "tempfail",
           "6. ... logged: action tempfail, store_error naming redis",
           brief(d, ("rule", "action", "reply", "store_error")))
    s, d = closed.mail("closed-grey@down.example", ["u@grey.example"], addr="192.0.2.64")
    if not tap.ok(rcpt_is(s, 451, "4.3.0", STORE_TEXT),
                  "6. ... a greylist rule's recipient too: 451 4.3.0 (the store's answer, "
                  "not a greylisting)", "%r %s" % (rcpt_reply(s), brief(
                      d, ("rule", "action", "reply", "store_error", "greylist")))):
        closed.explain(s, d)
    err = closed.sg.stderr()[err0:]
    tap.ok(re.search(r"store: .*redis.*failing closed", err) is not None,
           "6. ... spfguard logs \"store: ... failing closed\"", err.strip()[-200:])
    tap.ok(open_.sg.alive() and closed.sg.alive(),
           "6. both daemons still running with redis down",
           "exit %r %r" % (open_.sg.proc.poll(), closed.sg.proc.poll()))

    # back
    try:
        redis2 = run.new_redis(port=redis.port)
    except RuntimeError as e:
        tap.ok(False, "6. redis-server starts again on port %d" % redis.port, str(e)[:200])
        return
    t_back = time.monotonic()
    end = t_back + 15
    n = 0
    ok = False
    while time.monotonic() < end:
        n += 1
        s, d = closed.mail("back%d@down.example" % n, addr="192.0.2.65")
        if accepted(s) and d.get("store_error") is None:
            ok = True
            break
        time.sleep(0.5)
    if not tap.ok(ok, "6. redis-server back on its port: on_error tempfail instance "
                  "answers normally again (accepted, no store_error)",
                  "after %.1f s, %d tries" % (time.monotonic() - t_back, n)):
        closed.explain(s, d)
    end = time.monotonic() + 15
    ok = False
    while time.monotonic() < end:
        n += 1
        s, d = open_.mail("back%d@down.example" % n, ["u@grey.example"], addr="192.0.2.66")
        if d.get("store_error") is None and greylist_state(d) == "deferred":
            ok = True
            break
        time.sleep(0.5)
    if not tap.ok(ok and rcpt_is(s, 451, "4.7.1", GREY_TEXT),
                  "6. ... and the on_error accept instance greylists again",
                  "after %.1f s: %r" % (time.monotonic() - t_back, rcpt_reply(s))):
        open_.explain(s, d)
    tap.ok(open_.sg.alive() and closed.sg.alive(), "6. both daemons still running")
    open_.stop_in_background()
    closed.stop_in_background()
    redis2.stop()


# ---------------------------------------------------------------------------

def finish(run):
    """Wait for the background stops; every spfguard exited 0 without a
    sanitizer report or crash."""
    for t in run.stoppers:
        t.join(timeout=15)
    for label, rc, took, err in sorted(run.results):
        run.tap.ok(rc == 0, "%s: spfguard exits 0 on SIGTERM" % label,
                   "exit %s after %.1f s" % (rc, took))
        bad = crash_lines(err)
        if not run.tap.ok(not bad, "%s: no sanitizer report or crash in spfguard's log"
                          % label, bad[0][:200] if bad else None):
            run.tap.diag(err[-3000:])


def main():
    only = None
    args = sys.argv[1:]
    if "--only" in args:
        only = args[args.index("--only") + 1]
    why = pfh.skip_reason()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    have_redis = os.access(REDIS, os.X_OK)
    run = None

    def want(c):
        return only is None or c in only

    with scratch_dir("spfg-rep.") as work:
        try:
            with TestServer(ZONE, lifetime=LIFETIME) as dns:
                run = Run(tap, dns, work)
                tap.diag("spfguard %s" % pfh.spfguard_path())
                for c, fn in (("1", case_1_dnsbl), ("2", case_2_greylist), ("3", case_3_rate),
                              ("4", case_4_history)):
                    if want(c):
                        fn(run)
                for c, fn, what in (("5", case_5_fleet, "fleet on one redis-server"),
                                    ("6", case_6_store_down, "redis-server stopped mid-run")):
                    if not want(c):
                        continue
                    if not have_redis:
                        tap.skip("%s. %s" % (c, what),
                                 "%s is not installed (run tests/install-test-deps.sh)" % REDIS)
                        continue
                    fn(run)
                finish(run)
                tap.diag("run time %.1f s" % (time.monotonic() - t0))
        finally:
            if run is not None:
                run.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
