#!/usr/bin/python3
"""test_sendmail.py - spfguard end to end through a real Sendmail (TAP).

A private Sendmail (tests/e2e/sendmail.py: the Debian packages unpacked,
never installed, a .cf made by m4) on 127.0.0.1 with
INPUT_MAIL_FILTER(`spfguard', `S=unix:..., F=T, T=S:30s;R:60s;E:5m')
pointing at filter/spfguard on a unix socket; spfguard resolves through
tests/dnsserver.py.  Sendmail has no XCLIENT, so the client really is
127.0.0.1: spfguard's trusted_networks leave 127.0.0.0/8 out, and the
zone's SPF records name (or do not name) 127.0.0.1.  Mail leaves to an
SMTP sink, where the delivered headers are read.

    /usr/bin/python3 tests/e2e/test_sendmail.py [-v]

Skips (1..0 # SKIP) when not root, until filter/spfguard is built
($SPFGUARD names another binary), or when the Sendmail packages cannot be
downloaded (apt-get download, once: they are cached).  Takes about 6 s,
most of it in stopping spfguard (libmilter looks at its stop flag every
5 s) and in the temperror case.
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
import sendmail as smh  # noqa: E402
from postfix import Spfguard, smtp_session  # noqa: E402
from spftest_lib import (crash_lines, install_signal_handlers, scratch_dir, Tap,  # noqa: E402
                         TestServer)

AUTHSERV = "mx.test.example"
CLIENT = "127.0.0.1"                  # Sendmail has no XCLIENT: the real client
HELO = "mail.client.example"          # not in the zone: HELO SPF is none
DEST = "user@dest.example"

ZONE = {
    "pass.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:127.0.0.1 -all"}]},
    "fail.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.1 -all"}]},
    "temp.example": {"timeout": True},
}

DEADLINE_MS = 1500

BASE = {
    "dns": {"resolvers": [], "timeout_ms": 1000},
    "spf": {"deadline_ms": DEADLINE_MS, "receiver": AUTHSERV, "helo_check": True},
    "headers": {"authserv_id": AUTHSERV},
    "mode": "enforce",
    # NOT 127.0.0.0/8: the test's client connects from 127.0.0.1
    "trusted_networks": ["198.51.100.0/24"],
    # as README advises for Sendmail (the group stays root's: no smmsp here)
    "socket_mode": "0660",
    "rules": [
        {"name": "trusted", "match": {"client": "trusted"}, "action": "accept"},
        {"name": "spf-fail", "match": {"spf": "fail"}, "action": "reject"},
        {"name": "spf-temp", "match": {"spf": "temperror"}, "action": "tempfail"},
        {"name": "default", "action": "accept"},
    ],
}

QID = re.compile(r"^[0-9A-Za-z]{10,20}$")


def unfold(v):
    return re.sub(r"\s+", " ", v or "").strip()


class Run:
    def __init__(self, tap, sm, sg):
        self.tap = tap
        self.sm = sm
        self.sg = sg
        self.sent = {}              # case -> (sender, Session)

    def send(self, case, sender, **kw):
        s = smtp_session(self.sm.port, sender, [DEST], helo=HELO, **kw)
        self.sent[case] = (sender, s)
        return s

    def explain(self, s):
        self.tap.diag("session: %r" % (s,))
        self.tap.diag("sendmail traffic (end):\n" +
                      "\n".join(self.sm.traffic().splitlines()[-12:]))
        out = self.sm.output().strip()
        if out:
            self.tap.diag("sendmail output:\n" + out[-1000:])
        self.tap.diag("spfguard (end):\n" + "\n".join(self.sg.stderr().splitlines()[-8:]))

    def settle(self, timeout=3.0):
        """Wait until the decision log stops growing for 0.3 s."""
        end = time.monotonic() + timeout
        n, since = len(self.sg.decision_lines()), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            m = len(self.sg.decision_lines())
            if m != n:
                n, since = m, time.monotonic()
            elif time.monotonic() - since >= 0.3:
                return


# ---------------------------------------------------------------------------

def case_a_pass(r):
    sender = "a-pass@pass.example"
    s = r.send("a", sender)
    msgs = r.sm.sink.wait_for(s.message_id) if s.message_id and s.data and \
        s.data.code == 250 else []
    if not r.tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                    "a. SPF pass (ip4:127.0.0.1): accepted and delivered", repr(s.final())):
        r.explain(s)
        return
    m = msgs[0]
    names = [n.lower() for n, _ in m.headers]
    first = m.headers[0] if m.headers else ("", "")
    want = r"^%s; *spf=pass\b.*\bsmtp\.mailfrom=%s(\s|;|$)" % (re.escape(AUTHSERV),
                                                              re.escape(sender))
    # smfi_insheader(ctx, 0, ...) puts the header above everything, Sendmail's
    # own Received: included (as with Postfix): Authentication-Results, then
    # Received-SPF (inserted at 0 just before it), then Received
    if not r.tap.ok(first[0].lower() == "authentication-results" and
                    re.search(want, unfold(first[1])) is not None,
                    "a. the first header is Authentication-Results: %s; spf=pass "
                    "smtp.mailfrom=%s" % (AUTHSERV, sender),
                    "got %s: %s" % (first[0], unfold(first[1])[:200])):
        r.tap.diag("headers: %r" % (names,))
    r.tap.ok(names[:3] == ["authentication-results", "received-spf", "received"],
             "a. order: Authentication-Results, Received-SPF, then Sendmail's Received",
             repr(names[:4]))
    rcv = unfold(m.get("Received") or "")
    r.tap.ok(re.search(r"\bby %s \(8\.\d" % re.escape(smh.HOSTNAME), rcv) is not None and
             "[127.0.0.1]" in rcv,
             "a. that Received is Sendmail's (by %s (8.x), from [127.0.0.1])" % smh.HOSTNAME,
             rcv[:160])
    ours = [v for v in m.get_all("Authentication-Results")
            if unfold(v).lower().startswith(AUTHSERV + ";")]
    r.tap.ok(len(ours) == 1, "a. exactly one Authentication-Results of ours", "%d" % len(ours))
    rs = m.get_all("Received-SPF")
    rs1 = unfold(rs[0]) if rs else ""
    r.tap.ok(len(rs) == 1 and re.match(r"pass\b", rs1) is not None,
             "a. one Received-SPF: pass ...", rs1[:200] or "none")
    r.tap.ok("client-ip=%s;" % CLIENT in rs1 and
             re.search(r'envelope-from="?%s"?;' % re.escape(sender), rs1) and
             "helo=%s;" % HELO in rs1 and "receiver=%s;" % AUTHSERV in rs1 and
             "identity=mailfrom" in rs1,
             "a. Received-SPF: client-ip=%s, envelope-from, helo, receiver, "
             "identity=mailfrom" % CLIENT, rs1[:300])


def case_b_fail(r):
    s = r.send("b", "b-fail@fail.example")
    rc = s.rcpts[0] if s.rcpts else None
    ok = r.tap.ok(s.mail is not None and s.mail.code == 250,
                  "b. SPF fail: MAIL FROM accepted (decisions are per recipient)",
                  repr(s.mail))
    ok &= r.tap.ok(rc is not None and rc.code == 550 and rc.enhanced == "5.7.23",
                   "b. SPF fail (ip4:192.0.2.1 only): RCPT answered 550 5.7.23", repr(rc))
    r.tap.ok(rc is not None and "fail.example does not allow 127.0.0.1" in (rc.text or ""),
             "b. spfguard's reply text reaches the client", repr(rc))
    if not ok:
        r.explain(s)


def case_c_temperror(r):
    t0 = time.monotonic()
    s = r.send("c", "c-temp@temp.example")
    took = time.monotonic() - t0
    rc = s.rcpts[0] if s.rcpts else None
    if not r.tap.ok(rc is not None and rc.code == 451 and rc.enhanced == "4.7.24",
                    "c. SPF temperror (TXT never answers): RCPT answered 451 4.7.24",
                    "%r after %.1f s" % (rc, took)):
        r.explain(s)
    r.tap.ok(rc is not None and "could not check temp.example" in (rc.text or ""),
             "c. spfguard's reply text reaches the client", repr(rc))
    r.tap.ok(took < DEADLINE_MS / 1000.0 + 3.0,
             "c. answered within the deadline (%.1f s) + 3 s" % (DEADLINE_MS / 1000.0),
             "%.1f s" % took)
    got = [m for m in r.sm.sink.messages() if m.mail_from[:2] in ("b-", "c-")]
    r.tap.ok(not got, "b/c. nothing refused reached the relay", repr(got))


def case_d_decision_log(r):
    """One line per decision, each with Sendmail's queue id: Sendmail sends
    the macro i at MAIL, so even decisions taken at RCPT (before any DATA)
    have one - unlike Postfix, where they are NOQUEUE."""
    r.settle()
    lines = r.sg.decisions()
    bad = [d["_unparsed"][:100] for d in lines if "_unparsed" in d]
    r.tap.ok(not bad and len(lines) == 3,
             "d. three sessions, three decision-log lines, each a JSON object",
             "%d line(s)%s" % (len(lines), "; unparsed %r" % bad[:1] if bad else ""))
    by = {}
    for d in lines:
        by.setdefault(d.get("sender"), []).append(d)
    want = {"a": ("default", "accept", "pass"), "b": ("spf-fail", "reject", "fail"),
            "c": ("spf-temp", "tempfail", "temperror")}
    qids = []
    for case in "abc":
        sender, s = r.sent[case]
        ls = by.get(sender, [])
        d = ls[0] if len(ls) == 1 else {}
        rule, action, result = want[case]
        spf = d.get("spf") or {}
        r.tap.ok(len(ls) == 1 and d.get("rule") == rule and d.get("action") == action and
                 spf.get("result") == result and d.get("client_ip") == CLIENT and
                 d.get("helo") == HELO and d.get("recipients") == [DEST] and
                 d.get("trusted") is False,
                 "d. %s: one line, rule %s, action %s, spf %s, client_ip %s, not trusted"
                 % (sender, rule, action, result, CLIENT),
                 repr({k: d.get(k) for k in ("rule", "action", "spf", "client_ip", "trusted")}
                      if d else "%d line(s)" % len(ls))[:300])
        q = d.get("queue_id")
        qids.append(q)
        r.tap.ok(isinstance(q, str) and QID.match(q) is not None,
                 "d. %s: the line has Sendmail's queue id (i is sent at MAIL)%s"
                 % (sender, " although refused at RCPT" if case != "a" else ""), repr(q))
    delivered = smh.queue_id_of(r.sent["a"][1].data)
    r.tap.ok(delivered is not None and qids[0] == delivered,
             "d. the pass line's queue id is the one Sendmail gave the message",
             "log %r, Sendmail's reply %r" % (qids[0], delivered))
    r.tap.ok(len(set(qids)) == 3, "d. three transactions, three different queue ids",
             repr(qids))
    reply = repr((by.get(r.sent["b"][0]) or [{}])[0].get("reply"))
    r.tap.ok("550" in reply and "5.7.23" in reply, "d. the fail line's reply is 550 5.7.23",
             reply[:200])


def case_e_stopped(r):
    rc, took = r.sg.stop()
    r.tap.ok(rc == 0, "e. spfguard exits 0 on SIGTERM", "exit %s after %.1f s" % (rc, took))
    s = smtp_session(r.sm.port, "e-down@pass.example", [DEST], helo=HELO)
    fin = s.final()
    if not r.tap.ok(fin is not None and fin.code == 451 and s.data is None,
                    "e. spfguard stopped: Sendmail (F=T) tempfails the transaction (451)",
                    repr(fin)):
        r.explain(s)
    r.tap.ok(s.mail is not None and s.mail.code == 451 and s.mail.enhanced == "4.3.2",
             "e. ... at MAIL, with 451 4.3.2 (Sendmail's own text)", repr(s.mail))
    time.sleep(0.2)
    got = [m for m in r.sm.sink.messages() if m.mail_from.startswith("e-")]
    r.tap.ok(not got, "e. no message accepted unfiltered", repr(got))


def case_f_killed(r):
    """spfguard SIGKILLed between MAIL and RCPT (a crash, as Sendmail sees
    it): the transaction is tempfailed, nothing is accepted unfiltered."""
    try:
        r.sg.start()
    except pfh.SpfguardError as e:
        r.tap.ok(False, "f. spfguard starts again", str(e)[:300])
        return
    holder = {}

    def kill():
        r.sg.kill()
        holder["killed"] = True

    s = smtp_session(r.sm.port, "f-mid@pass.example", [DEST], helo=HELO, after_mail=kill)
    rc = s.rcpts[0] if s.rcpts else None
    if not r.tap.ok(holder.get("killed") and s.mail is not None and s.mail.code == 250 and
                    rc is not None and rc.code == 451 and s.data is None,
                    "f. spfguard SIGKILLed after MAIL: RCPT answered 451, nothing accepted",
                    "%r %r" % (s.mail, rc)):
        r.explain(s)
    time.sleep(0.2)
    got = [m for m in r.sm.sink.messages() if m.mail_from.startswith("f-")]
    r.tap.ok(not got, "f. no message accepted unfiltered", repr(got))


def check_stderr(r):
    err = r.sg.stderr()
    bad = crash_lines(err)
    r.tap.ok(not bad, "no sanitizer report or crash in spfguard's log",
             bad[0][:200] if bad else None)
    if bad:
        r.tap.diag(err[-4000:])


# ---------------------------------------------------------------------------

def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP a private Sendmail needs root")
        return 0
    if not pfh.spfguard_built():
        print("1..0 # SKIP filter/spfguard not built (%s)" % pfh.spfguard_path())
        return 0
    why = smh.why_not_runnable()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    os.makedirs(smh.RUNBASE, mode=0o755, exist_ok=True)
    # not under /tmp: Sendmail refuses a milter socket below a
    # world-writable directory ("unsafe: World writable directory")
    with scratch_dir("spfg-e2e-sm.", smh.RUNBASE) as work:
        sock = os.path.join(work, "spfguard.sock")
        sg = None
        try:
            with TestServer(ZONE, lifetime=120) as dns:
                sg = Spfguard(BASE, unix=sock, workdir=work, dns=dns.addr, lifetime=120)
                rc, out = sg.check_config()
                if not tap.ok(rc == 0, "spfguard -n accepts the test configuration",
                              None if rc == 0 else out.strip()[:300]):
                    tap.diag(pfh.to_libconfig(sg.conf))
                    return tap.done() or 1
                try:
                    sg.start()
                except pfh.SpfguardError as e:
                    tap.ok(False, "spfguard starts on unix:%s" % sock, str(e)[:300])
                    return tap.done() or 1
                with smh.Sendmail(milter="unix:" + sock, lifetime=120, rmtree_also=[work]) as sm:
                    tap.diag("Sendmail %s started in %.2f s (%s); spfguard %s" % (
                        smh.unpacked_root(), sm.start_seconds, sm.dir, pfh.spfguard_path()))
                    if sm.m4_warnings:
                        tap.diag("m4: " + sm.m4_warnings.replace("\n", " "))
                    r = Run(tap, sm, sg)
                    case_a_pass(r)
                    case_b_fail(r)
                    case_c_temperror(r)
                    case_d_decision_log(r)
                    check_stderr(r)
                    case_e_stopped(r)
                    case_f_killed(r)
                tap.diag("run time %.1f s" % (time.monotonic() - t0))
        finally:
            if sg is not None:
                sg.stop()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
