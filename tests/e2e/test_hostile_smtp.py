#!/usr/bin/python3
"""test_hostile_smtp.py - hostile SMTP input through the milter (TAP).

One filter/spfguard, resolving through tests/dnsserver.py, with sender
history and rate limits by every key in an LMDB store (so every hostile
value also becomes a store key; the limits are too high to change an
answer), gets:

A. straight from tests/e2e/milterclient.py, a milter client that sends what
   no MTA would: HELO names, addresses, client names and macros of 64 KiB;
   a packet over libmilter's 64 KiB limit; NUL bytes; CR, LF and CR LF
   followed by a forged "X-Injected:" header or log line in the HELO, the
   sender, the recipient, the client name, {auth_authen}, the queue id and
   a header; invalid UTF-8 and SMTPUTF8 addresses; IP-literal senders and
   HELOs; IPv4-mapped (::ffff:) clients, trusted and not; sessions with
   missing stages or macros (no connect, no HELO, no MAIL); MAIL twice and
   abort at every stage, with SPF checks still running; the connection
   closed at every stage, also with checks running and inside a packet;
   bytes that are not the protocol (bad lengths, unknown commands, a wrong
   version, noise).
B. through a throwaway Postfix (tests/e2e/postfix.py, XCLIENT) what an MTA
   lets through: control bytes in EHLO and MAIL FROM, an XCLIENT HELO
   with an xtext CR LF, SMTPUTF8, invalid UTF-8, NUL, 64 KiB commands, an
   IPv4-mapped loopback client; here the delivered headers and the SMTP
   replies are checked.  Skipped (with the reason) without root or Postfix.

Every case: each step gets a defined answer (or the connection is closed,
where the input is not the protocol); no reply text and no added header
carries a byte outside printable ASCII (headers: folds "\\n\\t" only, lines
under 998 bytes); spfguard still runs and answers the next normal messages
right (an SPF pass with its Authentication-Results, an SPF fail with 550
5.7.23).  At the end: every decision-log line is printable ASCII and JSON,
hostile values round-trip exactly through it, the decisions expected of
the closed and aborted sessions are there (and none for sessions that
never reached RCPT); every line of spfguard's stderr (its syslog-format
log) is one of its own ("spfguard: ..."), no forged line; SIGTERM exits 0
with no sanitizer report.  Takes about 11 s (5 of them stopping spfguard).

    /usr/bin/python3 tests/e2e/test_hostile_smtp.py [-v]
"""

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
from milterclient import MilterClient, Reply  # noqa: E402
from spftest_lib import (check_no_crash, install_signal_handlers, scratch_dir, Tap,  # noqa: E402
                         TestServer)
from test_postfix import BASE  # noqa: E402

AUTHSERV = "mx.test.example"
CLIENT = "192.0.2.1"
NAME = "mail.client.example"
INJ = "\r\nX-Injected: yes"
K64 = 65000                     # under libmilter's 65,535-byte packet limit
DEFINED = "cayrts"              # continue accept reply reject tempfail skip
# "-": the connection was closed; "~": no answer (libmilter ignores a
# command out of sequence: RCPT before MAIL, anything after an abort that
# came before connect)
QUIET_S = 0.5

ZONE = {
    "pass.example": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "fail.example": [{"type": "TXT", "data": "v=spf1 -all"}],
    "soft.example": [{"type": "TXT", "data": "v=spf1 ~all"}],
    # checks still running when the session is aborted or closed
    "slow.example": {"delay_ms": 700,
                     "records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "slowhelo.example": {"delay_ms": 700, "records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    # an explanation that expands the (hostile) sender and HELO
    "exp.example": [{"type": "TXT", "data": "v=spf1 -all exp=why.exp.example"}],
    "why.exp.example": [{"type": "TXT", "data": "%{s} from %{h} may not send"}],
    "dest.example": [{"type": "MX", "data": [10, "mx.test.example"]}],
}

ECHO = ("echo s={sender} h={helo} r={rcpt} d={domain} e={explanation}")


def conf(dns_addr, work):
    c = pfh.merge(BASE, {
        "dns": {"resolvers": [dns_addr]},
        "store": {"backend": "lmdb", "path": os.path.join(work, "store")},
        "history": {"enabled": True},
        "ratelimits": [{"name": k, "key": k, "limit": 1000000, "window": 3600,
                        "action": "tempfail"}
                       for k in ("ip", "net", "sender_domain", "auth_user")]})
    c["policy_sets"] = list(BASE["policy_sets"]) + [
        {"name": "echo", "recipient_domains": ["echo.example"],
         "rules": [{"name": "echo", "action": "reject", "reply": ECHO}]}]
    return c


# ---------------------------------------------------------------------------
# what may come back

def printable(b, extra=b""):
    return all(0x20 <= x < 0x7F or x in extra for x in b)


def reply_problem(r):
    """None, or what is wrong with an 'y' reply's text."""
    if r.code != "y":
        return None
    t = r.text
    if not re.match(rb"^[45]\d\d ", t):
        return "reply text %r is not an SMTP reply" % t[:60]
    if not printable(t):
        return "reply text has raw control or 8-bit bytes: %r" % t[:200]
    if len(t) > 1000:
        return "reply text of %d bytes" % len(t)
    return None


def header_problem(name, value):
    if not re.match(rb"^[\x21-\x39\x3b-\x7e]+$", name):
        return "header name %r" % name[:60]
    if not printable(value, b"\t\n"):
        return "header %s has raw control or 8-bit bytes: %r" % (name.decode(), value[:200])
    lines = value.split(b"\n")
    for i, line in enumerate(lines):
        if i > 0 and not line.startswith((b"\t", b" ")):
            return "header %s: a line break that is not a fold: %r" % (name.decode(),
                                                                       line[:80])
        if len(line) + (len(name) + 2 if i == 0 else 0) > 998:
            return "header %s: a line of %d bytes" % (name.decode(), len(line))
    return None


def mods_problem(mods):
    for m in mods:
        if m[0] in "im":
            p = header_problem(m[2], m[3])
        elif m[0] == "h":
            p = header_problem(m[1], m[2])
        elif m[0] == "q":
            p = None if printable(m[1]) else "quarantine reason %r" % m[1][:80]
        else:
            p = "unexpected modification %r" % (m[:2],)
        if p:
            return p
    return None


class Steps:
    """The replies of one hostile session, each with what is allowed."""

    def __init__(self):
        self.items = []

    def __call__(self, label, reply, allowed=DEFINED):
        self.items.append((label, reply, allowed))
        return reply

    def problems(self):
        out = []
        for label, r, allowed in self.items:
            code = r.code if r.code is not None else "-"
            if code not in allowed:
                out.append("%s: %r (allowed: %s)" % (label, r, allowed))
            p = reply_problem(r) or mods_problem(r.mods)
            if p:
                out.append("%s: %s" % (label, p))
        return out


def maybe(m, fn):
    """fn() on a session where libmilter may ignore the command: its reply,
    or Reply("~") after QUIET_S seconds of silence."""
    m.sock.settimeout(QUIET_S)
    try:
        return fn()
    except TimeoutError:
        return Reply("~")
    finally:
        m.sock.settimeout(m.timeout)


def ar_of(r):
    for m in r.mods:
        if m[0] == "i" and m[2] == b"Authentication-Results":
            return m[3].decode("ascii", "replace")
    return None


# ---------------------------------------------------------------------------

class Run:
    def __init__(self, tap, sg, dns):
        self.tap = tap
        self.sg = sg
        self.dns = dns
        self.n = 0

    def client(self, **kw):
        return MilterClient(self.sg.port, timeout=kw.pop("timeout", 10.0), **kw)

    def normal(self):
        """A pass delivered with its header and a fail refused 550 5.7.23,
        each in a session of its own; None or what went wrong."""
        self.n += 1
        try:
            with self.client() as m:
                m.connect(NAME, CLIENT)
                m.helo(NAME)
                m.mail("<normal%d@pass.example>" % self.n)
                r = m.rcpt("<user@dest.example>")
                e = m.message([("From", "<normal@pass.example>"), ("Subject", "n")])
            ar = ar_of(e)
            if r.code != "c" or e.code not in "ac" or ar is None or \
                    not ar.startswith(AUTHSERV + "; spf=pass"):
                return "normal pass: rcpt %r eom %r AR %r" % (r, e, ar)
            with self.client() as m:
                m.connect(NAME, CLIENT)
                m.helo(NAME)
                m.mail("<normal%d@fail.example>" % self.n)
                r = m.rcpt("<user@dest.example>")
            if r.code != "y" or not r.text.startswith(b"550 5.7.23 "):
                return "normal fail: rcpt %r" % (r,)
        except (OSError, ValueError) as e:
            return "normal mail: %s: %s" % (type(e).__name__, e)
        return None

    def case(self, label, fn):
        st = Steps()
        err = None
        try:
            fn(self, st)
        except (OSError, ValueError) as e:
            err = "%s: %s" % (type(e).__name__, e)
        probs = st.problems()
        if err:
            probs.insert(0, err)
        alive = self.sg.alive()
        if alive:
            after = self.normal()
            if after:
                probs.append("then " + after)
        else:
            probs.append("spfguard is gone")
        ok = self.tap.ok(not probs, "A. %s: defined answers, nothing unescaped, the next "
                         "mail answered right" % label, "; ".join(probs)[:600] or None)
        if not ok:
            self.tap.diag("spfguard (end):\n" + "\n".join(self.sg.stderr().splitlines()[-6:]))
        return alive


def envelope(m, st, host=NAME, addr=CLIENT, helo=NAME, sender="<x@pass.example>",
             rcpts=("<user@dest.example>",), family=None, mail_args=(), macros=None):
    macros = macros or {}
    st("connect", m.connect(host, addr, family=family, macros=macros.get("C")))
    st("helo", m.helo(helo, macros=macros.get("H")))
    st("mail", m.mail(sender, *mail_args, macros=macros.get("M")))
    for r in rcpts:
        st("rcpt " + (r if isinstance(r, str) else r.decode("latin-1"))[:40],
           m.rcpt(r, macros=macros.get("R")))


def whole(m, st, headers=(("From", "<x@pass.example>"),), macros=None):
    st("eom", m.message(list(headers), macros=macros))


# --- the cases (fn(run, steps)) --------------------------------------------

def c_64k_helo(run, st):
    with run.client() as m:
        envelope(m, st, helo="h" * K64, sender="<big-helo@pass.example>")
        whole(m, st)


def c_64k_sender(run, st):
    with run.client() as m:
        envelope(m, st, sender="<%s@pass.example>" % ("l" * K64))
        whole(m, st)


def c_64k_domain(run, st):
    dom = (("d" * 60 + ".") * 1100)[:K64] + "example"
    with run.client() as m:
        envelope(m, st, helo=dom, sender="<big-domain@%s>" % dom,
                 rcpts=("<echo@echo.example>", "<user@dest.example>"))
        whole(m, st)


def c_64k_rcpt(run, st):
    with run.client() as m:
        envelope(m, st, sender="<big-rcpt@pass.example>",
                 rcpts=("<%s@dest.example>" % ("r" * K64), "<echo%s@echo.example>" % ("e" * K64)))
        whole(m, st)


def c_64k_macros(run, st):
    with run.client() as m:
        envelope(m, st, host="n" * K64, sender="<big-macro@pass.example>",
                 macros={"M": {"{auth_authen}": "a" * K64}})
        whole(m, st, macros={"i": "Q" * K64})


def c_over_limit(run, st):
    # libmilter refuses a packet over 65,535 bytes: the connection ends
    with run.client() as m:
        st("connect", m.connect(NAME, CLIENT))
        st("helo of 70,000 bytes", m.helo("h" * 70000), DEFINED + "-")
        st("mail after it", m.mail("<over@pass.example>"), DEFINED + "-")


def c_nul(run, st):
    # in the connect packet a NUL ends the name early: the rest is not a
    # family and address, libmilter drops the connection
    with run.client() as m:
        st("connect with a NUL in the name", m.connect(b"mail\0evil.example", CLIENT),
           DEFINED + "-")
    with run.client() as m:
        envelope(m, st, helo=b"mail\0evil.example",
                 sender=b"<nul\0X-Injected: yes@pass.example>",
                 rcpts=(b"<user\0x@dest.example>", b"<echo\0x@echo.example>"),
                 macros={"M": {b"{auth_authen}": b"\0user", b"i": b"Q\0X"}})
        whole(m, st, headers=[(b"From", b"<a\0b@pass.example>"),
                              (b"Authentication-Results", AUTHSERV.encode() + b"; \0spf=pass")])


def c_crlf(run, st):
    with run.client() as m:
        envelope(m, st, host="crlf.client.example" + INJ,
                 helo="mail.client.example" + INJ,
                 sender="<crlf%s@pass.example>" % INJ,
                 rcpts=("<user%s@dest.example>" % INJ, "<echo%s@echo.example>" % INJ))
        whole(m, st, headers=[("From", "<x@pass.example>" + INJ),
                              ("Authentication-Results", AUTHSERV + "; spf=pass" + INJ)],
              macros={"i": "CRLFQID" + INJ})


def c_crlf_auth(run, st):
    with run.client() as m:
        envelope(m, st, sender="<crlf-auth@fail.example>",
                 macros={"M": {"{auth_authen}": "user" + INJ}})
        whole(m, st)


def c_lf_cr_alone(run, st):
    with run.client() as m:
        envelope(m, st, helo="lf.example\nspfguard: forged line",
                 sender="<lf\nspfguard: forged\r@fail.example>",
                 rcpts=("<echo\r@echo.example>",))


def c_explanation(run, st):
    # the explanation expands the hostile sender and HELO (%{s}, %{h})
    with run.client() as m:
        envelope(m, st, helo="exp.example" + INJ,
                 sender="<exp%s@exp.example>" % INJ, rcpts=("<user@dest.example>",))
        r = st.items[-1][1]
        if r.code != "y" or not r.text.startswith(b"550 5.7.23 "):
            st("rcpt must be 550 5.7.23", r, "")


def c_bad_utf8(run, st):
    with run.client() as m:
        envelope(m, st, helo=b"h\xff\xfe.example", sender=b"<\xc0\x80\xff@pass.example>",
                 rcpts=(b"<\xed\xa0\x80@dest.example>", b"<echo\xff@echo.example>"))
        whole(m, st)


def c_smtputf8(run, st):
    with run.client() as m:
        envelope(m, st, helo="\u00e9cole.example",
                 sender="<\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@pass.example>",
                 rcpts=("<\u7528\u6237@dest.example>",), mail_args=("SMTPUTF8",))
        r = st("eom", m.message([("From", "<x@pass.example>")]))
        ar = ar_of(r) or ""
        if "spf=pass" not in ar:
            st("UTF-8 local part at pass.example must pass", r, "")
    with run.client() as m:
        envelope(m, st, sender="<user@\u4f8b\u5b50.example>", mail_args=("SMTPUTF8",))
        whole(m, st)


def c_ip_literals(run, st):
    with run.client() as m:
        envelope(m, st, helo="[192.0.2.1]", sender="<lit@[192.0.2.1]>",
                 rcpts=("<user@[192.0.2.9]>", "<echo@echo.example>"))
        whole(m, st)
    with run.client() as m:
        envelope(m, st, helo="[IPv6:2001:db8::1]", sender="<lit6@[IPv6:2001:db8::1]>")
        whole(m, st)
    with run.client() as m:
        envelope(m, st, helo="[192.0.2.1]", sender="<>")
        whole(m, st)


def c_mapped(run, st):
    # IPv4-mapped IPv6 clients are their IPv4 address: SPF ip4: matches,
    # and a mapped trusted address is trusted
    with run.client() as m:
        envelope(m, st, addr="::ffff:192.0.2.1", family="6", sender="<mapped@pass.example>")
        r = st("eom", m.message([("From", "<x@pass.example>")]))
        if "spf=pass" not in (ar_of(r) or ""):
            st("::ffff:192.0.2.1 at pass.example must pass", r, "")
    with run.client() as m:
        envelope(m, st, addr="::ffff:127.0.0.1", family="6", sender="<mapped-lo@fail.example>")
        if st.items[-1][1].code != "c":
            st("::ffff:127.0.0.1 is trusted", st.items[-1][1], "")


def c_missing_stages(run, st):
    with run.client() as m:             # no connect, no HELO
        st("mail first", m.mail("<nostage1@pass.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
        whole(m, st)
    with run.client() as m:             # no HELO
        st("connect", m.connect(NAME, CLIENT))
        st("mail", m.mail("<nostage2@fail.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
    with run.client() as m:             # no MAIL
        st("connect", m.connect(NAME, CLIENT))
        st("helo", m.helo(NAME))
        st("rcpt without mail", maybe(m, lambda: m.rcpt("<user@dest.example>")),
           DEFINED + "~")
        st("mail after it", m.mail("<nostage3@pass.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
        whole(m, st)
    with run.client() as m:             # nothing but end of message
        st("eom alone", maybe(m, m.eom), DEFINED + "~")
        st("header alone", maybe(m, lambda: m.header("From", "x")), DEFINED + "~")
    with run.client() as m:             # unknown family, empty everything
        st("connect unknown", m.connect("", None, family="U"))
        st("empty helo", m.helo(""))
        st("empty mail", m.mail(""))
        st("empty rcpt", m.rcpt(""))
        whole(m, st)


def c_mail_twice(run, st):
    with run.client() as m:
        st("connect", m.connect(NAME, CLIENT))
        st("helo", m.helo("slowhelo.example"))         # HELO check running
        st("mail 1 (slow)", m.mail("<twice1@slow.example>"))
        st("mail 2", m.mail("<twice2@fail.example>"))
        r = st("rcpt", m.rcpt("<user@dest.example>"))
        if r.code != "y" or not r.text.startswith(b"550 5.7.23"):
            st("the second sender decides", r, "")


def c_abort_everywhere(run, st):
    with run.client() as m:
        m.abort()                                      # before anything
        st("connect after it", maybe(m, lambda: m.connect(NAME, CLIENT)), DEFINED + "~")
    with run.client() as m:
        st("connect", m.connect(NAME, CLIENT))
        m.abort()
        st("helo (slow)", m.helo("slowhelo.example"))
        m.abort()
        st("mail (slow)", m.mail("<abort-mail@slow.example>"))
        m.abort()                                      # check still running
        m.abort()
        st("mail", m.mail("<abort-rcpt@pass.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
        m.abort()                                      # a decision: logged
        st("mail", m.mail("<abort-hdr@pass.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
        st("data", m.data())
        st("header", m.header("Subject", "x"))
        m.abort()
        st("mail", m.mail("<abort-eoh@pass.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
        st("eoh", m.eoh())
        m.abort()
        st("mail", m.mail("<abort-after@pass.example>"))
        st("rcpt", m.rcpt("<user@dest.example>"))
        whole(m, st)
        m.abort()                                      # after eom: a no-op
        m.abort()


CLOSE_STAGES = ["optneg", "connect", "helo-slow", "mail-slow", "rcpt", "data", "header",
                "eoh", "eom-unread", "inside-packet", "quit_nc"]


def c_close_everywhere(run, st):
    for stage in CLOSE_STAGES:
        m = run.client(negotiate=False)
        try:
            m.optneg()
            if stage == "optneg":
                continue
            st(stage + ": connect", m.connect(NAME, CLIENT))
            if stage == "connect":
                continue
            helo = "slowhelo.example" if stage == "helo-slow" else NAME
            st(stage + ": helo", m.helo(helo))
            if stage == "helo-slow":
                continue
            dom = "slow.example" if stage == "mail-slow" else "pass.example"
            st(stage + ": mail", m.mail("<close-%s@%s>" % (stage, dom)))
            if stage == "mail-slow":
                continue
            st(stage + ": rcpt", m.rcpt("<user@dest.example>"))
            if stage == "rcpt":
                continue
            st(stage + ": data", m.data())
            if stage == "data":
                continue
            st(stage + ": header", m.header("From", "<x@pass.example>"))
            if stage == "header":
                continue
            st(stage + ": eoh", m.eoh())
            if stage == "eoh":
                continue
            if stage == "eom-unread":
                m.send("E")
                continue
            if stage == "inside-packet":
                m.send_raw(b"\x00\x00\x01\x00E")       # 255 bytes promised
                continue
            if stage == "quit_nc":
                st(stage + ": eom", m.eom())
                m.quit_nc()                             # a new session follows
                st(stage + ": again connect", m.connect(NAME, CLIENT))
                st(stage + ": again helo", m.helo(NAME))
                st(stage + ": again mail", m.mail("<close-again@pass.example>"))
                st(stage + ": again rcpt", m.rcpt("<user@dest.example>"))
                whole(m, st)
        finally:
            m.close()


def c_not_the_protocol(run, st):
    import struct
    with run.client() as m:
        m.send_raw(struct.pack("!I", 0x7FFFFFFF) + b"H")
        st("length 2^31-1", m.reply(), "-")
    with run.client() as m:
        m.send("Z", b"what is this")
        st("unknown command", m.reply(), DEFINED + "-")
    with run.client(negotiate=False) as m:
        m.send("O", struct.pack("!III", 1, 0, 0))
        code, _ = m.read()
        st("version 1 negotiation", Reply(code), "O-")
    with run.client(negotiate=False) as m:
        m.send_raw(bytes(range(256)) * 4)
        code, _ = m.read()
        st("noise", Reply(code), "-")
    # a zero length: libmilter keeps the connection without an answer;
    # the daemon must go on answering others meanwhile (checked after)
    m = run.client(timeout=1.0)
    try:
        m.send_raw(b"\x00\x00\x00\x00")
        try:
            r = m.reply()
        except TimeoutError:
            r = Reply("~")
        st("length 0", r, "-~")
        err = run.normal()
        if err:
            st("mail while a zero-length packet waits: " + err, Reply(None), "")
    finally:
        m.close()


CASES = [
    ("HELO of 64 KiB", c_64k_helo),
    ("sender local part of 64 KiB", c_64k_sender),
    ("sender domain and HELO of 64 KiB (1,000+ labels)", c_64k_domain),
    ("recipients of 64 KiB", c_64k_rcpt),
    ("client name, {auth_authen} and queue id of 64 KiB", c_64k_macros),
    ("a HELO packet over libmilter's 64 KiB limit", c_over_limit),
    ("NUL bytes in client name, HELO, addresses, macros, headers", c_nul),
    ("CR LF + forged header in client name, HELO, sender, recipients, queue id, headers",
     c_crlf),
    ("CR LF in {auth_authen}", c_crlf_auth),
    ("lone LF and CR with a forged log line", c_lf_cr_alone),
    ("an exp= explanation expanding a hostile sender and HELO", c_explanation),
    ("invalid UTF-8 in HELO, sender, recipients", c_bad_utf8),
    ("SMTPUTF8 addresses (UTF-8 local part, IDN domain) and UTF-8 HELO", c_smtputf8),
    ("IP-literal senders, recipients and HELOs, the null sender", c_ip_literals),
    ("::ffff: clients (pass by ip4:, trusted by 127.0.0.0/8)", c_mapped),
    ("missing stages and macros", c_missing_stages),
    ("MAIL twice, the first check still running", c_mail_twice),
    ("abort at every stage, checks still running", c_abort_everywhere),
    ("connection closed at every stage (%d), checks running, inside a packet"
     % len(CLOSE_STAGES), c_close_everywhere),
    ("bytes that are not the protocol", c_not_the_protocol),
]


# ---------------------------------------------------------------------------
# after the cases: the decision log and stderr

def raw_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return [], b""
    return data.split(b"\n"), data


def check_log(tap, sg):
    lines, data = raw_lines(sg.decision_log)
    if lines and lines[-1] == b"":
        lines.pop()
    bad = []
    recs = []
    for i, line in enumerate(lines, 1):
        if not printable(line):
            bad.append("line %d has raw control or 8-bit bytes" % i)
            continue
        try:
            d = json.loads(line.decode("ascii"))
            if not isinstance(d, dict):
                raise ValueError("not an object")
            recs.append(d)
        except ValueError as e:
            bad.append("line %d: %s" % (i, e))
    tap.ok(not bad and data.endswith(b"\n") and len(recs) > 20,
           "decision log: %d lines, each printable ASCII and one JSON object" % len(recs),
           "; ".join(bad[:3]) or None)

    def by_sender(s):
        return [d for d in recs if d.get("sender") == s]

    # hostile values round-trip exactly (the log escapes, it does not drop)
    crlf = by_sender("crlf%s@pass.example" % INJ)
    want = {"helo": "mail.client.example" + INJ, "client_name": "crlf.client.example" + INJ,
            "queue_id": "CRLFQID" + INJ}
    got = {k: crlf[0].get(k) for k in want} if crlf else None
    rc = sorted(r for d in crlf for r in d.get("recipients") or [])
    tap.ok(len(crlf) == 2 and got == want and
           rc == sorted(["user%s@dest.example" % INJ, "echo%s@echo.example" % INJ]),
           "decision log: the CR LF values are kept exactly, escaped", repr((got, rc))[:300])
    utf = by_sender("\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@pass.example".encode("utf-8")
                    .decode("latin-1"))
    tap.ok(len(utf) == 1 and utf[0].get("spf", {}).get("result") == "pass",
           "decision log: the UTF-8 sender is kept byte for byte (\\u00XX), SPF pass",
           repr([d.get("spf") for d in utf]))
    big = by_sender("l" * K64 + "@pass.example")
    tap.ok(len(big) == 1 and big[0].get("spf", {}).get("result") == "pass",
           "decision log: the 64 KiB sender is logged whole, SPF pass",
           repr([d.get("spf") for d in big])[:200])
    # decisions of closed and aborted sessions: made at RCPT, so logged
    want_lines = {"close-rcpt@pass.example": 1, "close-data@pass.example": 1,
                  "close-header@pass.example": 1, "close-eoh@pass.example": 1,
                  "close-eom-unread@pass.example": 1, "close-inside-packet@pass.example": 1,
                  "close-quit_nc@pass.example": 1, "close-again@pass.example": 1,
                  "close-mail-slow@slow.example": 0, "abort-rcpt@pass.example": 1,
                  "abort-hdr@pass.example": 1, "abort-eoh@pass.example": 1,
                  "abort-after@pass.example": 1, "abort-mail@slow.example": 0,
                  "twice1@slow.example": 0, "twice2@fail.example": 1}
    got = {s: len(by_sender(s)) for s in want_lines}
    diff = {s: (got[s], n) for s, n in want_lines.items() if got[s] != n}
    tap.ok(not diff, "decision log: one line per decision of the closed and aborted "
           "sessions, none where no RCPT was seen", "got, want: %r" % diff if diff else None)
    return recs


def check_stderr(tap, sg):
    with open(sg.err_path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    foreign = [line for line in lines if not line.startswith(b"spfguard: ")]
    ctrl = [line for line in lines if not printable(line)]
    forged = [line for line in lines if re.match(rb"^\s*(X-Injected|spfguard: forged)", line)]
    tap.ok(not foreign and not ctrl and not forged,
           "stderr (the syslog-format log): %d lines, each spfguard's own, printable, "
           "none forged" % len(lines),
           repr((foreign[:2], ctrl[:1], forged[:1]))[:300] if (foreign or ctrl or forged)
           else None)
    decisions = [line for line in lines if re.match(rb"^spfguard: \S+: action=", line)]
    tap.ok(any(b"helo=mail.client.example??X-Injected:?yes" in line for line in decisions),
           "stderr: the CR LF HELO is logged as '??' on its decision's line",
           None)


# ---------------------------------------------------------------------------
# B: through Postfix

def part_b(tap, sg, dns, work):
    why = pfh.why_not_runnable()
    if why:
        tap.skip("B. through Postfix", why)
        return
    from postfix import Client, Postfix
    with Postfix(milter=sg.spec, lifetime=300) as pf:
        def raw(lines, data=None):
            """Raw SMTP lines; every reply; DATA with data when given."""
            c = Client(pf.port)
            out = [(c.greeting.code, c.greeting.text.encode())]
            try:
                for line in lines:
                    if isinstance(line, str):
                        line = line.encode("utf-8")
                    c.c.send(line + b"\r\n")
                    out.append(c.c.getreply())
                if data is not None and out[-1][0] == 250:
                    c.c.send(b"DATA\r\n")
                    out.append(c.c.getreply())
                    if out[-1][0] == 354:
                        c.c.send(data + b"\r\n.\r\n")
                        out.append(c.c.getreply())
            except Exception as e:      # a closed connection is an answer too
                out.append((None, str(e).encode()))
            finally:
                c.close()
            return out

        def msg(mid):
            return (b"From: <x@pass.example>\r\nSubject: b\r\nMessage-ID: <" + mid +
                    b">\r\n\r\nbody\r\n")

        sessions = [
            ("control bytes in EHLO and MAIL FROM (pass)", "bctl@pass.example",
             [b"XCLIENT ADDR=192.0.2.1 NAME=mail.client.example", b"EHLO x\x01\x7f",
              b"MAIL FROM:<bctl\x01\x7f@pass.example>", b"RCPT TO:<echo@echo.example>",
              b"RCPT TO:<user@dest.example>"], msg(b"bctl@e2e.test"), True),
            ("XCLIENT HELO with an xtext CR LF (pass)", "bxhelo@pass.example",
             [b"XCLIENT ADDR=192.0.2.1 HELO=evil.example+0D+0AX-Injected:+20yes",
              b"MAIL FROM:<bxhelo@pass.example>", b"RCPT TO:<echo@echo.example>",
              b"RCPT TO:<user@dest.example>"], msg(b"bxhelo@e2e.test"), True),
            ("SMTPUTF8 sender (pass)", "butf",
             [b"XCLIENT ADDR=192.0.2.1", b"EHLO x",
              "MAIL FROM:<butf\u03b4\u03bf\u03ba@pass.example> SMTPUTF8".encode(),
              b"RCPT TO:<user@dest.example>"], msg(b"butf@e2e.test"), True),
            ("invalid UTF-8 sender", None,
             [b"XCLIENT ADDR=192.0.2.1", b"EHLO x", b"MAIL FROM:<b\xff\xfe@pass.example>",
              b"RCPT TO:<user@dest.example>"], None, False),
            ("NUL in MAIL FROM", None,
             [b"XCLIENT ADDR=192.0.2.1", b"EHLO x", b"MAIL FROM:<b\x00n@pass.example>",
              b"RCPT TO:<user@dest.example>"], None, False),
            ("64 KiB EHLO and MAIL FROM", None,
             [b"XCLIENT ADDR=192.0.2.1", b"EHLO " + b"h" * 65536,
              b"MAIL FROM:<" + b"l" * 65536 + b"@pass.example>",
              b"RCPT TO:<user@dest.example>"], None, False),
            ("IPv4-mapped loopback client (trusted)", "bmapped@fail.example",
             [b"XCLIENT ADDR=IPV6:::ffff:127.0.0.1 NAME=localhost", b"EHLO x",
              b"MAIL FROM:<bmapped@fail.example>", b"RCPT TO:<user@dest.example>"],
             msg(b"bmapped@e2e.test"), True),
        ]
        for label, sender, lines, data, deliver in sessions:
            out = raw(lines, data)
            probs = []
            for code, text in out:
                if code is None:
                    continue
                if not (200 <= code < 600):
                    probs.append("reply code %s" % code)
                if not printable(text, b"\n") or b"X-Injected" in text.split(b"\n")[0][:11]:
                    probs.append("reply %r" % text[:120])
            echo = [t for c, t in out if c is not None and t.startswith(b"5.7.1 echo")]
            if any(line.startswith(b"RCPT TO:<echo@") for line in lines) and not echo:
                probs.append("no echo refusal")
            if deliver:
                mid = lines and data and re.search(rb"Message-ID: (<[^>]+>)", data).group(1)
                got = pf.sink.wait_for(mid.decode(), timeout=10) if mid else []
                if len(got) != 1:
                    probs.append("not delivered: %r" % (out[-1],))
                else:
                    hs = got[0].headers
                    names = [n for n, _ in hs]
                    if "X-Injected" in names:
                        probs.append("an injected header was delivered")
                    for n, v in hs:
                        if n in ("Authentication-Results", "Received-SPF"):
                            p = header_problem(n.encode(), v.encode("utf-8", "replace")
                                               .replace(b"\r\n", b"\n"))
                            if p:
                                probs.append(p)
                    if names[:1] != ["Authentication-Results"] and "trusted" not in label:
                        probs.append("Authentication-Results not first: %r" % names[:3])
            alive = sg.alive() and pfh.port_accepts(sg.port)
            if not alive:
                probs.append("spfguard is gone")
            tap.ok(not probs, "B. %s: defined replies, printable, nothing injected in the "
                   "delivered headers" % label, "; ".join(probs)[:400] or
                   repr([c for c, _ in out]))
            if not alive:
                return
        # and a normal message still goes through
        from postfix import smtp_session
        s = smtp_session(pf.port, "bnormal@pass.example", ["user@dest.example"],
                         addr=CLIENT, name=NAME, helo=NAME)
        got = pf.sink.wait_for(s.message_id, timeout=10) if s.message_id else []
        ar = got[0].get("Authentication-Results") if got else ""
        tap.ok(len(got) == 1 and "spf=pass" in (ar or ""),
               "B. then a normal message through Postfix: delivered, spf=pass", repr(s.final()))


# ---------------------------------------------------------------------------

def main():
    why = pfh.daemon_skip_reason()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    with scratch_dir("spfg-hostile.") as work:
        with TestServer(ZONE, lifetime=300) as dns:
            sg = pfh.Spfguard(conf(dns.addr, work), workdir=work, lifetime=300)
            rc, out = sg.check_config()
            if not tap.ok(rc == 0, "spfguard -n accepts the configuration", out.strip()[:300]):
                return tap.done() or 1
            try:
                sg.start()
            except pfh.SpfguardError as e:
                tap.ok(False, "spfguard starts", str(e)[:300])
                return tap.done() or 1
            try:
                r = Run(tap, sg, dns)
                first = r.normal()
                tap.ok(first is None, "a normal pass and fail before the hostile input", first)
                for label, fn in CASES:
                    if not r.case(label, fn):
                        tap.diag(sg.stderr()[-3000:])
                        break
                if sg.alive():
                    part_b(tap, sg, dns, work)
                time.sleep(0.2)
            finally:
                rc, took = sg.stop()
            tap.ok(rc == 0, "spfguard exits 0 on SIGTERM", "exit %s after %.1f s" % (rc, took))
            check_no_crash(tap, sg.stderr())
            check_log(tap, sg)
            check_stderr(tap, sg)
            tap.diag("run time %.1f s" % (time.monotonic() - t0))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
