#!/usr/bin/python3
"""test_postfix.py - spfguard end to end through a real Postfix (TAP).

A private Postfix (tests/e2e/postfix.py) on 127.0.0.1 with smtpd_milters
pointing at filter/spfguard, which resolves through tests/dnsserver.py.
Mail comes in with XCLIENT (client address, name, HELO, LOGIN) and leaves
to an SMTP sink, where the delivered headers are read.

    /usr/bin/python3 tests/e2e/test_postfix.py [--only LETTERS] [-v]

Skips (1..0 # SKIP) without Postfix or root, and until filter/spfguard is
built ($SPFGUARD names another binary).  Takes about 20 s, most of it in
the cases that wait for a deadline and in stopping spfguard (libmilter
looks at its stop flag every 5 s).
"""

import os
import re
import sys
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
CLIENT = "192.0.2.1"                  # covered by pass.example's ip4:
CLIENT_NAME = "mail.client.example"
HELO = "mail.client.example"          # not in the zone: HELO SPF is none
DEST = "user@dest.example"

ZONE = {
    "pass.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "pass6.example": {"records": [{"type": "TXT", "data": "v=spf1 ip6:2001:db8::/32 -all"}]},
    "fail.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "soft.example": {"records": [{"type": "TXT", "data": "v=spf1 ~all"}]},
    "perm.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 bogus:x -all"}]},
    "temp.example": {"timeout": True},
    "auth.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "control.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "trusted.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "dest.example": {"records": [{"type": "MX", "data": [10, "mx.test.example"]}]},
    "strict.example": {"records": [{"type": "MX", "data": [10, "mx.test.example"]}]},
}

BASE = {
    "dns": {"resolvers": [], "timeout_ms": 1000},
    "spf": {"deadline_ms": 2000, "receiver": AUTHSERV, "helo_check": True},
    "headers": {"authserv_id": AUTHSERV, "tag_header": TAG},
    "mode": "enforce",
    "trusted_networks": ["127.0.0.0/8", "::1/128", "198.51.100.0/24"],
    "rules": [
        {"name": "trusted", "match": {"client": "trusted"}, "action": "accept"},
        {"name": "auth", "match": {"authenticated": True}, "action": "accept"},
        {"name": "spf-fail", "match": {"spf": "fail"}, "action": "reject"},
        {"name": "spf-temp", "match": {"spf": "temperror"}, "action": "tempfail"},
        {"name": "spf-soft", "match": {"spf": ["softfail", "permerror"]}, "action": "tag"},
        {"name": "default", "action": "accept"},
    ],
    "policy_sets": [
        {"name": "strict", "recipient_domains": ["strict.example"],
         "rules": [
             {"name": "soft-reject", "match": {"spf": "softfail"}, "action": "reject"},
             {"name": "default", "action": "accept"},
         ]},
    ],
}

REQUIRED_KEYS = ("time", "queue_id", "client_ip", "helo", "sender", "recipients",
                 "spf", "rule", "action", "reply", "mode", "elapsed_ms")


def unfold(v):
    return re.sub(r"\s+", " ", v or "").strip()


class Run:
    """State shared by the cases: servers, the tap stream, and every session
    sent (for the decision-log checks)."""

    def __init__(self, tap, dns, pf, work, milter_port):
        self.tap = tap
        self.dns = dns
        self.pf = pf
        self.work = work
        self.milter_port = milter_port
        self.sg = None
        self.sessions = []          # (case, Session, expected lines)
        self.conf = None

    # -- spfguard --------------------------------------------------------
    def start_spfguard(self, conf):
        conf = pfh.merge(conf, {"dns": {"resolvers": [self.dns.addr]}})
        self.sg = Spfguard(conf, port=self.milter_port, workdir=self.work)
        self.conf = conf
        rc, out = self.sg.check_config()
        if not self.tap.ok(rc == 0, "spfguard -n accepts the test configuration (%s mode)"
                           % conf.get("mode"), None if rc == 0 else out.strip()[:300]):
            self.tap.diag(out)
            self.tap.diag(pfh.to_libconfig(conf))
            return False
        try:
            self.sg.start()
        except pfh.SpfguardError as e:
            self.tap.ok(False, "spfguard starts", str(e)[:300])
            self.tap.diag(str(e))
            return False
        return True

    def stop_spfguard(self, label):
        rc, took = self.sg.stop()
        self.tap.ok(rc == 0, "%s: spfguard exits 0 on SIGTERM" % label,
                    "exit %s after %.1f s" % (rc, took))
        if rc != 0:
            self.tap.diag(self.sg.stderr()[-2000:])
        self.check_stderr(label)

    def check_stderr(self, label):
        err = self.sg.stderr()
        bad = crash_lines(err)
        self.tap.ok(not bad, "%s: no sanitizer report or crash in spfguard's log" % label,
                    bad[0][:200] if bad else None)
        if bad:
            self.tap.diag(err[-4000:])

    # -- mail ------------------------------------------------------------
    def send(self, case, sender, rcpts=(DEST,), addr=CLIENT, name=CLIENT_NAME,
             helo=HELO, lines=1, **kw):
        """One session; `lines`: how many decision-log lines it must leave."""
        s = smtp_session(self.pf.port, sender, list(rcpts), addr=addr, name=name,
                         helo=helo, **kw)
        self.sessions.append((case, s, sender, lines, self.conf.get("mode")))
        return s

    def delivered(self, s, count=1, timeout=15):
        if s.message_id is None or s.data is None or s.data.code != 250:
            return []
        return self.pf.sink.wait_for(s.message_id, timeout=timeout, count=count)

    def explain(self, s):
        """Diagnostics for a failed case: the session, spfguard's and
        Postfix's logs."""
        self.tap.diag("session: %r" % (s,))
        if s.queue_id:
            self.tap.diag("maillog:\n" + self.pf.log_for(s.queue_id))
        else:
            self.tap.diag("maillog (end):\n" + "\n".join(self.pf.log().splitlines()[-8:]))
        if self.sg is not None:
            self.tap.diag("spfguard (end):\n" + "\n".join(self.sg.stderr().splitlines()[-8:]))

    def settle(self, timeout=3.0):
        """Wait until the decision log stops growing (0.3 s without a new
        line): a line may be written when Postfix ends the milter session,
        just after the client's QUIT."""
        end = time.monotonic() + timeout
        n, since = len(self.sg.decision_lines()), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            m = len(self.sg.decision_lines())
            if m != n:
                n, since = m, time.monotonic()
            elif time.monotonic() - since >= 0.3:
                return

    def lines_for(self, sender, settle=True):
        if settle:
            self.settle()
        return [d for d in self.sg.decisions() if d.get("sender") == sender]


# ---------------------------------------------------------------------------
# the cases

def case_a_pass(r):
    sender = "a-pass@pass.example"
    s = r.send("a", sender)
    msgs = r.delivered(s)
    ok = r.tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                  "a. SPF pass: accepted and delivered", repr(s.final()))
    if not ok:
        r.explain(s)
        return
    m = msgs[0]
    first = m.headers[0] if m.headers else ("", "")
    want = r"^%s; *spf=pass\b.*\bsmtp\.mailfrom=%s(\s|;|$)" % (re.escape(AUTHSERV),
                                                              re.escape(sender))
    if not r.tap.ok(first[0].lower() == "authentication-results" and
                    re.search(want, unfold(first[1])) is not None,
                    "a. the first header is Authentication-Results: %s; spf=pass "
                    "smtp.mailfrom=%s" % (AUTHSERV, sender),
                    "got %s: %s" % (first[0], unfold(first[1])[:200])):
        r.tap.diag("headers: %r" % (m.headers[:4],))
    ours = [v for v in m.get_all("Authentication-Results")
            if unfold(v).lower().startswith(AUTHSERV + ";")]
    r.tap.ok(len(ours) == 1, "a. exactly one Authentication-Results of ours",
             "%d" % len(ours))
    rs = m.get_all("Received-SPF")
    rs1 = unfold(rs[0]) if rs else ""
    r.tap.ok(len(rs) == 1 and re.match(r"pass\b", rs1) is not None,
             "a. one Received-SPF: pass ...", rs1[:200] or "none")
    r.tap.ok("client-ip=%s" % CLIENT in rs1 and "envelope-from=" in rs1,
             "a. Received-SPF carries client-ip= and envelope-from=", rs1[:200])
    r.tap.ok(not m.get_all(TAG), "a. no tag header on a pass")


def case_b_fail(r):
    s = r.send("b", "b-fail@fail.example")
    rc = s.rcpts[0] if s.rcpts else None
    ok = r.tap.ok(s.mail is not None and s.mail.code == 250,
                  "b. SPF fail: MAIL FROM accepted (decisions are per recipient)",
                  repr(s.mail))
    ok &= r.tap.ok(rc is not None and rc.code == 550 and rc.enhanced == "5.7.23",
                   "b. SPF fail: RCPT answered 550 5.7.23", repr(rc))
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
    deadline = r.conf["spf"]["deadline_ms"] / 1000.0
    r.tap.ok(took < deadline + 3.0, "c. answered within the deadline (%.0f s) + 3 s"
             % deadline, "%.1f s" % took)


def case_d_permerror(r):
    s = r.send("d", "d-perm@perm.example")
    msgs = r.delivered(s)
    if not r.tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                    "d. SPF permerror: tagged and delivered (rule spf-soft)",
                    repr(s.final())):
        r.explain(s)
        return
    m = msgs[0]
    r.tap.ok(bool(m.get_all(TAG)), "d. the delivered message has the %s header" % TAG,
             repr(m.get_all(TAG)))
    ar = unfold(m.headers[0][1]) if m.headers else ""
    r.tap.ok(m.headers[0][0].lower() == "authentication-results" and
             "spf=permerror" in ar,
             "d. Authentication-Results says spf=permerror", ar[:200])


def _no_txt(r, domain):
    return [q for q in r.dns.queries() if q[1] == domain and q[2] in ("TXT", "SPF")]


def case_e_auth_trusted(r):
    # the control: a normal client's sender domain is looked up (and seen
    # in the query log; a domain not asked before, spfguard caches)
    r.dns.clear_log()
    s = r.send("e", "e-control@control.example")
    r.tap.ok(bool(_no_txt(r, "control.example")) and s.rcpts and s.rcpts[0].code == 550,
             "e. control: for an unauthenticated client the query log shows "
             "control.example's TXT lookup", repr(s.final()))
    r.dns.clear_log()
    s = r.send("e", "e-auth@auth.example", login="e-user")
    msgs = r.delivered(s)
    if not r.tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                    "e. authenticated client (XCLIENT LOGIN=) with an SPF-fail "
                    "sender: accepted and delivered", repr(s.final())):
        r.explain(s)
    q = _no_txt(r, "auth.example")
    r.tap.ok(not q, "e. authenticated: no TXT query for the sender's domain", repr(q[:3]))

    r.dns.clear_log()
    s = r.send("e", "e-trusted@trusted.example", addr="198.51.100.7",
               name="relay.trusted.example")
    msgs = r.delivered(s)
    if not r.tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                    "e. trusted client (198.51.100.7 in trusted_networks) with an "
                    "SPF-fail sender: accepted and delivered", repr(s.final())):
        r.explain(s)
    q = _no_txt(r, "trusted.example")
    r.tap.ok(not q, "e. trusted: no TXT query for the sender's domain", repr(q[:3]))


def case_f_forged(r):
    sender = "f-forged@pass.example"
    hdrs = [("Authentication-Results",
             "%s; spf=pass smtp.mailfrom=forged-1@pass.example" % AUTHSERV),
            ("Authentication-Results", "other.example; dkim=pass header.d=other.example"),
            ("Authentication-Results",
             "%s;\r\n\tspf=pass smtp.mailfrom=forged-2@pass.example" % AUTHSERV.upper())]
    s = r.send("f", sender, headers=hdrs)
    msgs = r.delivered(s)
    if not r.tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                    "f. message with forged Authentication-Results delivered",
                    repr(s.final())):
        r.explain(s)
        return
    m = msgs[0]
    ars = [unfold(v) for v in m.get_all("Authentication-Results")]
    forged = [v for v in ars if "forged-" in v]
    r.tap.ok(not forged, "f. Authentication-Results with our authserv-id (any case) "
             "removed", repr(forged))
    r.tap.ok(any(v.startswith("other.example;") and "dkim=pass" in v for v in ars),
             "f. Authentication-Results: other.example; dkim=pass kept", repr(ars))
    ours = [v for v in ars if v.lower().startswith(AUTHSERV + ";")]
    r.tap.ok(len(ours) == 1 and "smtp.mailfrom=%s" % sender in ours[0],
             "f. ours is the only one with our authserv-id", repr(ours))


def case_g_two_sets(r):
    sender = "g-soft@soft.example"
    strict, default = "user@strict.example", "user@dest.example"
    s = r.send("g", sender, rcpts=[strict, default], lines=2)
    a, b = (s.rcpts + [None, None])[:2]
    ok = r.tap.ok(a is not None and a.code == 550,
                  "g. softfail, recipient in the strict set: 550", repr(a))
    ok &= r.tap.ok(b is not None and b.code == 250,
                   "g. softfail, recipient in the default set, same transaction: 250",
                   repr(b))
    msgs = r.delivered(s)
    ok &= r.tap.ok(len(msgs) == 1 and msgs[0].rcpts == [default],
                   "g. delivered to the accepted recipient only",
                   repr([m.rcpts for m in msgs]))
    if msgs:
        r.tap.ok(bool(msgs[0].get_all(TAG)), "g. the default set tagged it (%s)" % TAG,
                 repr(msgs[0].get_all(TAG)))
    if not ok:
        r.explain(s)


def case_k_hostile(r):
    cases = [
        ("1000-character local part", dict(sender="k" * 1000 + "@pass.example")),
        ("quoted local part", dict(sender='"k quoted\\"local"@pass.example')),
        ("IP-literal HELO", dict(sender="k-literal@pass.example", helo="[192.0.2.1]")),
        ("IPv4-mapped client address",
         dict(sender="k-mapped@pass.example", addr="IPV6:::ffff:192.0.2.1")),
        ("null sender", dict(sender="", helo="mail.pass.example")),
        ("sender domain with a trailing dot", dict(sender="k-dot@pass.example.")),
        ("255-character HELO", dict(sender="k-longhelo@pass.example",
                                    helo=("h" * 61 + ".") * 4 + "example")),
        ("HELO with SPF metacharacters", dict(sender="k-meta@pass.example",
                                              helo="%{l}.%{d}.example")),
        ("1000-character recipient", dict(sender="k-rcpt@pass.example",
                                          rcpts=["r" * 1000 + "@dest.example"])),
    ]
    for label, kw in cases:
        sender = kw.pop("sender")
        s = r.send("k", sender, lines=None, **kw)
        fin = s.final()
        defined = s.error is None and fin is not None and fin.code is not None and \
            200 <= fin.code < 600
        alive = r.sg.alive() and pfh.port_accepts(r.milter_port)
        if not r.tap.ok(defined and alive,
                        "k. %s: a defined answer, and spfguard still runs" % label,
                        "%r%s" % (fin, "" if alive else "; spfguard is gone")):
            r.explain(s)
        if not alive:
            r.tap.diag(r.sg.stderr()[-3000:])
            return
    # the mapped address is the IPv4 client for SPF (Postfix converts it)
    mapped = r.lines_for("k-mapped@pass.example")
    r.tap.ok(bool(mapped) and mapped[-1].get("client_ip") == CLIENT,
             "k. an IPv4-mapped client is logged as %s" % CLIENT,
             repr([d.get("client_ip") for d in mapped]))


def case_n_ipv6(r):
    """An IPv6 client (XCLIENT ADDR=IPV6:...) matched by ip6:."""
    sender = "n-v6@pass6.example"
    s = r.send("n", sender, addr="IPV6:2001:db8::25", name="mail6.client.example")
    if s.xclient is not None and s.xclient.code == 501:
        r.tap.skip("n. IPv6 client: SPF pass", "Postfix here has no IPv6 (%s)" % s.xclient)
        r.sessions.pop()
        return
    msgs = r.delivered(s)
    ar = unfold(msgs[0].headers[0][1]) if msgs else ""
    if not r.tap.ok(len(msgs) == 1 and "spf=pass" in ar,
                    "n. IPv6 client 2001:db8::25, ip6:2001:db8::/32: SPF pass, delivered",
                    "%r %s" % (s.final(), ar[:120])):
        r.explain(s)
    ls = r.lines_for(sender)
    r.tap.ok(len(ls) == 1 and ls[0].get("client_ip") == "2001:db8::25",
             "n. logged with client_ip 2001:db8::25",
             repr([d.get("client_ip") for d in ls]))


def case_m_unix_socket(r):
    """spfguard on a unix socket that the postfix user may use (socket_mode
    0660, socket_group postfix), and the same with mode 0600: Postfix's
    smtpd (user postfix) gets EACCES and tempfails."""
    for mode, group, want in (("0660", "postfix", 250), ("0600", None, 451)):
        path = os.path.join(r.work, "spfguard-%s.sock" % mode)
        over = {"socket_mode": mode}
        if group:
            over["socket_group"] = group
        conf = pfh.merge(BASE, dict(over, dns={"resolvers": [r.dns.addr]}))
        sg = Spfguard(conf, workdir=r.work, unix=path)
        try:
            sg.start()
        except pfh.SpfguardError as e:
            r.tap.ok(False, "m. spfguard starts on unix:%s (mode %s)" % (path, mode),
                     str(e)[:300])
            return
        st = os.stat(path)
        import grp
        gname = grp.getgrgid(st.st_gid).gr_name
        r.tap.ok(oct(st.st_mode & 0o777) == oct(int(mode, 8)) and
                 (group is None or gname == group),
                 "m. the socket has mode %s%s" % (mode, " group " + group if group else ""),
                 "%s %s" % (oct(st.st_mode & 0o777), gname))
        with Postfix(milter=sg.spec, lifetime=120) as pf2:
            s = smtp_session(pf2.port, "m-unix@pass.example", [DEST], addr=CLIENT,
                             name=CLIENT_NAME, helo=HELO)
            fin = s.final()
            if want == 250:
                msgs = pf2.sink.wait_for(s.message_id) if s.message_id else []
                ar = unfold(msgs[0].headers[0][1]) if msgs else ""
                if not r.tap.ok(fin is not None and fin.code == 250 and "spf=pass" in ar,
                                "m. through unix:%s mode %s group %s: SPF pass, delivered"
                                % (os.path.basename(path), mode, group),
                                "%r %s" % (fin, ar[:100])):
                    r.tap.diag(pf2.log()[-1500:])
            else:
                denied = "Permission denied" in pf2.log()
                r.tap.ok(fin is not None and fin.code == 451 and denied,
                         "m. mode %s (postfix may not connect): 451, and the maillog "
                         "says Permission denied" % mode, repr(fin))
        if want == 250:
            rc, took = sg.stop()
            gone = not os.path.exists(path)
            r.tap.ok(rc == 0, "m. spfguard on a unix socket exits 0 on SIGTERM",
                     "exit %s after %.1f s%s" % (rc, took,
                                                 "" if gone else "; socket file left"))
        else:
            sg.kill()


def case_l_two_transactions(r):
    """Two transactions in one SMTP session: the second decision does not
    inherit anything from the first."""
    c = pfh.Client(r.pf.port)
    try:
        c.xclient(CLIENT, CLIENT_NAME)
        c.ehlo(HELO)
        m1 = c.mail("l-pass@pass.example")
        r1 = c.rcpt(DEST)
        text1, mid1 = pfh.make_message("l-pass@pass.example", [DEST])
        _, d1 = c.data(text1)
        m2 = c.mail("l-fail@fail.example")
        r2 = c.rcpt(DEST)
        c.rset()
        m3 = c.mail("l-pass2@pass.example")
        r3 = c.rcpt(DEST)
        text3, mid3 = pfh.make_message("l-pass2@pass.example", [DEST])
        _, d3 = c.data(text3)
    finally:
        c.close()
    for sender in ("l-pass@pass.example", "l-fail@fail.example", "l-pass2@pass.example"):
        r.sessions.append(("l", None, sender, 1, r.conf.get("mode")))
    r.tap.ok(m1.code == 250 and r1.code == 250 and d1 is not None and d1.code == 250,
             "l. one session, first transaction (pass): 250", "%r %r %r" % (m1, r1, d1))
    r.tap.ok(m2.code == 250 and r2.code == 550,
             "l. second transaction (fail) in the same session: 550", repr(r2))
    r.tap.ok(m3.code == 250 and r3.code == 250 and d3 is not None and d3.code == 250,
             "l. third transaction after RSET (pass): 250", "%r %r %r" % (m3, r3, d3))
    msgs = r.pf.sink.wait_for(mid3)
    ar = unfold(msgs[0].headers[0][1]) if msgs else ""
    r.tap.ok("smtp.mailfrom=l-pass2@pass.example" in ar,
             "l. the third message's Authentication-Results names its own sender", ar[:200])


def case_i_decision_log(r, mode_filter):
    """Every session sent so far in this mode: the right number of lines,
    each a JSON object with the required keys."""
    r.settle()
    lines = r.sg.decisions()
    bad_json = [d["_unparsed"][:120] for d in lines if "_unparsed" in d]
    r.tap.ok(not bad_json, "i. (%s) every decision-log line is a JSON object" % mode_filter,
             repr(bad_json[:2]))
    missing = []
    for d in lines:
        if "_unparsed" in d:
            continue
        lack = [k for k in REQUIRED_KEYS if k not in d]
        if lack:
            missing.append((d.get("sender"), lack))
    r.tap.ok(not missing, "i. (%s) every line has %s" % (mode_filter, ", ".join(REQUIRED_KEYS)),
             repr(missing[:3]))
    wrong = []
    for case, s, sender, want, mode in r.sessions:
        if mode != mode_filter or want is None:
            continue
        got = len([d for d in lines if d.get("sender") == sender])
        if got != want:
            wrong.append("%s %s: %d line(s), want %d" % (case, sender[:40], got, want))
    r.tap.ok(not wrong, "i. (%s) one line per decision (per recipient group when the "
             "answers differ)" % mode_filter, "; ".join(wrong[:4]))
    if wrong:
        r.tap.diag("decision log senders: %r" % [d.get("sender") for d in lines][-20:])


def case_i_contents(r):
    """What the lines say, for the cases whose outcome is known."""
    def one(sender):
        ls = r.lines_for(sender, settle=False)
        return ls[0] if len(ls) == 1 else None

    d = one("a-pass@pass.example")
    ok = d is not None and d.get("client_ip") == CLIENT and d.get("helo") == HELO and \
        d.get("recipients") == [DEST] and d.get("action") in ("accept", "tag") and \
        d.get("mode") == "enforce" and isinstance(d.get("elapsed_ms"), (int, float))
    r.tap.ok(ok, "i. the pass line: client_ip, helo, recipients, action, mode, elapsed_ms",
             repr(d)[:300])
    spf = d.get("spf") if d else None
    mfrom = d.get("spf_mfrom") if d else None
    ok = isinstance(spf, dict) and spf.get("result") == "pass" or \
        isinstance(mfrom, dict) and mfrom.get("result") == "pass"
    r.tap.ok(ok and d is not None and "spf_helo" in d and "spf_mfrom" in d,
             "i. the pass line has the SPF result per identity (spf_helo, spf_mfrom)",
             repr({k: (d or {}).get(k) for k in ("spf", "spf_helo", "spf_mfrom")})[:300])
    q = d.get("queue_id") if d else None
    r.tap.ok(q is not None and q == _queue_of(r, "a"),
             "i. the delivered message's line has Postfix's queue id", "%r" % q)

    d = one("b-fail@fail.example")
    reply = d.get("reply") if d else None
    txt = repr(reply)
    r.tap.ok(d is not None and d.get("rule") == "spf-fail" and d.get("action") == "reject"
             and "550" in txt and "5.7.23" in txt,
             "i. the fail line: rule spf-fail, action reject, reply 550 5.7.23", repr(d)[:300])
    d = one("c-temp@temp.example")
    r.tap.ok(d is not None and d.get("rule") == "spf-temp" and d.get("action") == "tempfail",
             "i. the temperror line: rule spf-temp, action tempfail", repr(d)[:300])
    d = one("e-auth@auth.example")
    r.tap.ok(d is not None and d.get("rule") == "auth" and d.get("action") == "accept",
             "i. the authenticated line: rule auth, action accept", repr(d)[:300])
    d = one("e-trusted@trusted.example")
    r.tap.ok(d is not None and d.get("rule") == "trusted" and d.get("action") == "accept",
             "i. the trusted line: rule trusted, action accept", repr(d)[:300])
    ls = r.lines_for("g-soft@soft.example", settle=False)
    got = sorted((tuple(x.get("recipients") or ()), x.get("action")) for x in ls)
    want = [(("user@dest.example",), "tag"), (("user@strict.example",), "reject")]
    r.tap.ok(got == want, "i. two-set message: one line per recipient group "
             "(strict: reject, default: tag)", repr(got))


def _queue_of(r, case):
    for c, s, _sender, _n, _mode in r.sessions:
        if c == case and s is not None:
            return s.queue_id
    return None


def case_h_monitor(r):
    sender = "h-fail@fail.example"
    s = r.send("h", sender)
    msgs = r.delivered(s)
    if not r.tap.ok(s.rcpts and s.rcpts[0].code == 250 and len(msgs) == 1,
                    "h. monitor mode: an SPF fail is accepted (250) and delivered",
                    repr(s.final())):
        r.explain(s)
    ls = r.lines_for(sender)
    d = ls[0] if len(ls) == 1 else {}
    would = d.get("would")
    r.tap.ok(d.get("mode") == "monitor" and would == "reject",
             "h. its decision-log line says mode monitor, would reject",
             repr({k: d.get(k) for k in ("mode", "action", "would", "rule", "reply")}))
    reply = repr(d.get("reply"))
    r.tap.ok("550" in reply and "5.7.23" in reply,
             "h. ... and the reply it would have given (550 5.7.23)", reply[:200])
    s = r.send("h", "h-temp@temp.example")
    r.tap.ok(s.rcpts and s.rcpts[0].code == 250,
             "h. monitor mode: a temperror is accepted too", repr(s.final()))


def case_j_killed(r):
    # killed in the middle of a session: the next command is answered 451
    holder = {}

    def kill():
        r.sg.kill()
        holder["killed"] = True

    s = smtp_session(r.pf.port, "j-mid@pass.example", [DEST], addr=CLIENT, name=CLIENT_NAME,
                     helo=HELO, after_mail=kill)
    rc = s.rcpts[0] if s.rcpts else None
    r.tap.ok(holder.get("killed") and rc is not None and rc.code == 451 and s.data is None,
             "j. spfguard SIGKILLed after MAIL: RCPT answered 451, nothing accepted",
             repr(s.final()))
    # and new sessions while it is down
    s = smtp_session(r.pf.port, "j-down@pass.example", [DEST], addr=CLIENT,
                     name=CLIENT_NAME, helo=HELO)
    fin = s.final()
    r.tap.ok(fin is not None and fin.code == 451 and s.data is None,
             "j. spfguard down: Postfix (milter_default_action = tempfail) answers 451",
             repr(fin))
    time.sleep(0.3)
    got = [m for m in r.pf.sink.messages() if m.mail_from.startswith("j-")]
    r.tap.ok(not got, "j. no message accepted unfiltered", repr(got))


# ---------------------------------------------------------------------------

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
    port = pfh.free_port()

    def want(letter):
        return only is None or letter in only

    with scratch_dir("spfg-e2e.") as work:
        with TestServer(ZONE, lifetime=600) as dns, \
                Postfix(milter="inet:127.0.0.1:%d" % port, lifetime=600) as pf:
            tap.diag("Postfix started in %.2f s; spfguard %s" % (pf.start_seconds,
                                                                 pfh.spfguard_path()))
            r = Run(tap, dns, pf, work, port)
            if not r.start_spfguard(BASE):
                return tap.done() or 1
            for letter, fn in (("a", case_a_pass), ("b", case_b_fail),
                               ("c", case_c_temperror), ("d", case_d_permerror),
                               ("e", case_e_auth_trusted), ("f", case_f_forged),
                               ("g", case_g_two_sets), ("l", case_l_two_transactions),
                               ("n", case_n_ipv6), ("k", case_k_hostile)):
                if want(letter):
                    fn(r)
            if want("i"):
                case_i_decision_log(r, "enforce")
                if only is None:
                    case_i_contents(r)
            r.stop_spfguard("enforce")

            if want("h") or want("j"):
                if r.start_spfguard(pfh.merge(BASE, {"mode": "monitor"})):
                    if want("h"):
                        case_h_monitor(r)
                        case_i_decision_log(r, "monitor")
                    r.check_stderr("monitor")
                    if want("j"):
                        case_j_killed(r)
                    else:
                        r.sg.stop()
            if want("m"):
                case_m_unix_socket(r)
            tap.diag("run time %.1f s" % (time.monotonic() - t0))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
