#!/usr/bin/python3
"""test_noreply.py - "no reply" negotiated for the stages that never refuse
(TAP).

spfguard refuses only at RCPT and acts only at end of message, so it asks
the MTA (protocol 6) not to wait for its answer to each header and to end
of headers (SMFIP_NR_HDR, _EOH), among those the MTA offers; not for
connect, HELO and MAIL, which Postfix would then hold back until RCPT,
late for the lookups spfguard starts there (filter/milter.c).  One filter/spfguard, resolving through
tests/dnsserver.py, gets sessions from tests/e2e/milterclient.py (the MTA
side of the protocol) and its raw socket is read after every command:

1. offering every flag, the answer to option negotiation has exactly those
   two among the no-reply bits (not NR_RCPT: spfguard refuses there), and
   still asks for no body, no DATA, no unknown commands;
2. offering every flag, nothing comes back after a header or end of
   headers (0.3 s of silence on the socket), connect, HELO and MAIL are
   answered "continue", and each was
   seen (the decision log has the client, HELO, sender and the queue id
   given at end of headers; a forged Authentication-Results header is
   removed); RCPT is answered (a failing sender 550 5.7.23, a pass
   "continue") and end of message carries Authentication-Results and
   Received-SPF;
3. offering no no-reply flag, every stage is answered "continue", with the
   same decisions;
4. offering some (table below; also protocol version 2, as Sendmail 8.13):
   exactly the offered ones among the two are silent, the others answered;
5. on one milter connection: three transactions (pass, a fail refused at
   RCPT then an abort, a pass), then SMFIC_QUIT_NC and a new SMTP session
   from another client: still silent where negotiated (libmilter keeps the
   flags; spfguard forgets them at close, see filter/milter.c, and
   libmilter withholds the answer), its own client decides (a new
   connection context: pass.example fails from there), a softfail is
   tagged; nothing left unread at the end;
6. a client that never negotiates (no MTA does; libmilter then ignores
   connect but runs the rest) gets an answer at every stage.

A stray answer anywhere would also be read in place of a later one (RCPT,
end of message) and fail those checks.  The other mistake, "continue"
returned where no reply was negotiated, never reaches the wire: libmilter
withholds it and complains to syslog ("milter claimed not to reply").  So
spfguard runs in a mount namespace of its own whose /dev holds null, zero,
random, urandom and a log socket of this test's (unshare -m, as root;
without that the check is skipped, saying why), and no such complaint may
come before the QUIT_NC of case 5 (those after it are counted, as
expected).  SIGTERM exits 0 with no sanitizer report.  Skips (1..0 # SKIP)
until filter/spfguard is built or without python3-dnslib.  Takes about
18 s (5 of them stopping spfguard).

    /usr/bin/python3 tests/e2e/test_noreply.py
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
from milterclient import NO, NR, SMFIP_ALL, MilterClient  # noqa: E402
from spftest_lib import (check_no_crash, install_signal_handlers, scratch_dir, Tap,  # noqa: E402
                         TestServer)
from test_postfix import BASE  # noqa: E402

AUTHSERV = "mx.test.example"
TAG = "X-Spfguard-Tag"
CLIENT = "192.0.2.1"            # in pass.example's ip4:
OTHER = "203.0.113.5"           # in no record, not trusted
NAME = "mail.client.example"
SILENCE_S = 0.3

NR_ALL = 0
for _bit in NR.values():
    NR_ALL |= _bit
# the stages spfguard asks no reply for, by command letter
QUIET = "LN"
WANT_NR = NR["L"] | NR["N"]
SMFIF_WANT = 0x01 | 0x10 | 0x20         # ADDHDRS CHGHDRS QUARANTINE
NO_WANT = NO["B"] | NO["T"] | NO["U"]   # no body, no DATA, no unknown

ZONE = {
    "pass.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "fail.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "soft.example": {"records": [{"type": "TXT", "data": "v=spf1 ~all"}]},
    "dest.example": {"records": [{"type": "MX", "data": [10, "mx.test.example"]}]},
}


class Syslog:
    """A private /dev/log for spfguard: a datagram socket in workdir, read
    by a thread (a unix datagram queue holds only max_dgram_qlen messages,
    10 here, and then syslog(3) blocks the milter), and the wrapper that
    runs the daemon in a mount namespace whose /dev/log is it.  why: None,
    or why not (then wrapper is empty)."""

    DEV = ("mount -t tmpfs -o mode=755 spfg-dev /dev && "
           "mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 && "
           "mknod -m 666 /dev/random c 1 8 && mknod -m 666 /dev/urandom c 1 9 && "
           "ln -s %s /dev/log && exec \"$@\"")

    def __init__(self, workdir):
        self.wrapper = []
        self.sock = None
        self.why = None
        self.got = []
        self.seen = 0
        self.lock = threading.Lock()
        unshare = shutil.which("unshare")
        if os.geteuid() != 0 or unshare is None:
            self.why = "needs root and unshare(1) for a private /dev/log"
            return
        path = os.path.join(workdir, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        threading.Thread(target=self._read, daemon=True).start()
        wrapper = [unshare, "-m", "--propagation", "private", "sh", "-c",
                   self.DEV % path, "sh"]
        r = subprocess.run(wrapper + [sys.executable, "-c",
                                      "import syslog; syslog.syslog('spfg-probe')"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0 or not any("spfg-probe" in x for x in self.lines()):
            self.why = "no private /dev/log (unshare -m): %s" % r.stderr.strip()[:200]
            return
        self.wrapper = wrapper

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self.lock:
                self.got.append(data.decode("utf-8", "replace"))

    def lines(self):
        """What was logged since the last call (after 0.3 s to settle)."""
        time.sleep(0.3)
        with self.lock:
            out = self.got[self.seen:]
            self.seen = len(self.got)
        return out

    def complaints(self):
        return [x for x in self.lines() if "claimed not to reply" in x]


def flags(bits):
    """The no-reply bits as command letters, for messages."""
    return "".join(c for c in "CHMRTULNB" if bits & NR[c]) or "-"


def silent(m, secs=SILENCE_S):
    """Nothing (no packet, no close) arrives from the filter for secs."""
    r, _, _ = select.select([m.sock], [], [], secs)
    return not r


class Session:
    """One milter connection and what went wrong in it."""

    def __init__(self, port, **kw):
        self.m = MilterClient(port, timeout=10.0, **kw)
        self.nr = self.m.pflags & NR_ALL        # what the filter asked for
        self.problems = []

    def stage(self, label, letter, fn):
        """A stage that always continues: silent if its no-reply flag was
        negotiated, else answered "continue"."""
        r = fn()
        if letter in NR and self.nr & NR[letter]:
            if not silent(self.m):
                code, _ = self.m.read()
                self.problems.append("%s: answered %r although no reply was "
                                     "negotiated" % (label, code))
        elif r.code != "c":
            self.problems.append("%s: %r, want continue" % (label, r))
        return r

    def envelope(self, sender, client=CLIENT, helo=NAME, connect=True):
        if connect:
            self.stage("connect", "C", lambda: self.m.connect(NAME, client))
            self.stage("helo", "H", lambda: self.m.helo(helo))
        self.stage("mail " + sender, "M", lambda: self.m.mail("<%s>" % sender))
        return self.m.rcpt("<user@dest.example>")

    def refused(self, sender, **kw):
        """MAIL and a RCPT that must be refused 550 5.7.23, then abort."""
        r = self.envelope(sender, **kw)
        if r.code != "y" or not r.text.startswith(b"550 5.7.23 "):
            self.problems.append("rcpt after %s: %r, want 550 5.7.23" % (sender, r))
        self.m.abort()
        if not silent(self.m, 0.05):
            self.problems.append("an answer to abort")

    def accepted(self, sender, result, queue_id=None, forged=False, tag=False, **kw):
        """MAIL, RCPT continued, a message: end of message inserts
        Authentication-Results (spf=result) and Received-SPF, removes a
        forged Authentication-Results, adds the tag if asked."""
        r = self.envelope(sender, **kw)
        if r.code != "c":
            self.problems.append("rcpt after %s: %r, want continue" % (sender, r))
            return
        m = self.m
        if not m.pflags & NO["T"]:
            self.stage("data", "T", m.data)
        hdrs = [("From", "<%s>" % sender), ("Subject", "no reply")]
        if forged:
            hdrs.insert(0, ("Authentication-Results", AUTHSERV + "; spf=pass"))
        for name, value in hdrs:
            self.stage("header " + name, "L", lambda n=name, v=value: m.header(n, v))
        self.stage("eoh", "N", lambda: m.eoh(macros={"i": queue_id} if queue_id else None))
        if not m.pflags & NO["B"]:
            m.body(b"Test message.\r\n")
        e = m.eom()
        ins = {mod[2]: mod[3].decode("ascii", "replace") for mod in e.mods if mod[0] == "i"}
        ar = re.sub(r"\s+", " ", ins.get(b"Authentication-Results", ""))
        want = "%s; spf=%s smtp.mailfrom=%s" % (AUTHSERV, result, sender)
        if e.code not in ("a", "c") or not ar.startswith(want) or \
                not ins.get(b"Received-SPF", "").startswith(result):
            self.problems.append("eom after %s: %r, Authentication-Results %r (want %s...), "
                                 "Received-SPF %r" % (sender, e, ar, want,
                                                      ins.get(b"Received-SPF")))
        removed = [mod for mod in e.mods if mod[0] == "m"]
        if forged and removed != [("m", 1, b"Authentication-Results", b"")]:
            self.problems.append("the forged Authentication-Results not removed: %r"
                                 % (removed,))
        added = [mod[1] for mod in e.mods if mod[0] == "h"]
        if added != ([TAG.encode()] if tag else []):
            self.problems.append("eom after %s: headers added %r" % (sender, added))

    def close(self):
        """Nothing left unread, then QUIT; the problems."""
        if not self.m.closed and not silent(self.m, 0.05):
            code, _ = self.m.read()
            self.problems.append("a packet %r left unread at the end" % code)
        self.m.quit()
        return self.problems


def decided(sg, sender, wait=3.0):
    """The decisions logged for sender, waiting a little for one (an abort,
    which writes it, has no answer to wait for)."""
    end = time.monotonic() + wait
    while True:
        ds = [d for d in sg.decisions() if d.get("sender") == sender]
        if ds or time.monotonic() > end:
            return ds
        time.sleep(0.05)


def logged(sg, sender, **want):
    """None, or how the decision of sender differs from want."""
    ds = decided(sg, sender)
    if len(ds) != 1:
        return "%d decisions logged for %s" % (len(ds), sender)
    got = {k: ds[0].get(k) for k in want}
    return None if got == want else "%s logged %r, want %r" % (sender, got, want)


# ---------------------------------------------------------------------------

def c_negotiation(tap, sg):
    s = Session(sg.port)
    s.close()
    tap.ok(s.nr == WANT_NR and s.m.pflags & NO_WANT == NO_WANT and
           s.m.actions == SMFIF_WANT,
           "1. every flag offered: the filter asks no reply for exactly header and "
           "end of headers (not connect, HELO, MAIL, RCPT); still no body, DATA, "
           "unknown",
           "no reply %s, protocol 0x%x, actions 0x%x" % (flags(s.nr), s.m.pflags,
                                                          s.m.actions))


def c_all(tap, sg):
    s = Session(sg.port)
    s.refused("nr-fail@fail.example")
    s.close()
    s2 = Session(sg.port)
    s2.accepted("nr-pass@pass.example", "pass", queue_id="NRQ1", forged=True)
    s2.close()
    probs = s.problems + s2.problems
    for p in (logged(sg, "nr-fail@fail.example", client_ip=CLIENT, helo=NAME,
                     action="reject"),
              logged(sg, "nr-pass@pass.example", client_ip=CLIENT, helo=NAME,
                     queue_id="NRQ1", action="accept")):
        if p:
            probs.append(p)
    tap.ok(s.nr == WANT_NR and s2.nr == WANT_NR and not probs,
           "2. every flag offered: headers and end of headers silent and seen; "
           "connect, HELO, MAIL answered; RCPT refused 550 5.7.23 or continued; end "
           "of message adds the headers, removes a forged one", "; ".join(probs)[:600] or None)


def c_none(tap, sg):
    proto = SMFIP_ALL & ~NR_ALL
    s = Session(sg.port, protocol=proto)
    s.refused("nr-none-fail@fail.example")
    s.accepted("nr-none-soft@soft.example", "softfail", tag=True, connect=False)
    s.close()
    probs = s.problems
    p = logged(sg, "nr-none-fail@fail.example", client_ip=CLIENT, action="reject")
    if p:
        probs.append(p)
    tap.ok(s.nr == 0 and not probs,
           "3. no no-reply flag offered: none asked, every stage answered continue, "
           "the same decisions", "; ".join(probs)[:600] or ("asked " + flags(s.nr)))


SOME = [
    # label, negotiation kwargs, offered no-reply bits
    ("only NR_HDR", {}, NR["L"]),
    ("NR_CONN and NR_EOH", {}, NR["C"] | NR["N"]),
    ("NR_HELO, NR_MAIL and NR_RCPT", {}, NR["H"] | NR["M"] | NR["R"]),
    ("every NR flag but for MAIL and end of headers", {}, NR_ALL & ~NR["M"] & ~NR["N"]),
    ("protocol version 2, as Sendmail 8.13", {"version": 2}, 0),
]


def c_some(tap, sg):
    for i, (label, kw, offered) in enumerate(SOME):
        proto = (SMFIP_ALL & ~NR_ALL) | offered
        if kw.get("version") == 2:
            proto = 0x7F                        # SMFI_V2_PROT
        s = Session(sg.port, protocol=proto, **kw)
        s.accepted("nr-some%d@pass.example" % i, "pass")
        s.refused("nr-some%d@fail.example" % i, connect=False)
        s.close()
        want = offered & WANT_NR
        tap.ok(s.nr == want and not s.problems,
               "4. %s offered: no reply asked for %s, exactly those stages silent, the "
               "others answered; pass and fail decided" % (label, flags(want)),
               "; ".join(s.problems)[:600] or ("asked " + flags(s.nr)))


def c_one_connection(tap, sg, log):
    s = Session(sg.port)
    s.accepted("nr-conn1@pass.example", "pass")
    s.refused("nr-conn2@fail.example", connect=False)
    s.accepted("nr-conn3@pass.example", "pass", connect=False)
    first = list(s.problems)
    tap.ok(s.nr == WANT_NR and not first,
           "5. one milter connection, three transactions (pass, fail and abort, pass): "
           "still silent where negotiated, each decided", "; ".join(first)[:600] or None)
    s.problems = []
    check_log(tap, log, "cases 1-5 up to QUIT_NC")
    s.m.quit_nc()
    if not silent(s.m, 0.05):
        s.problems.append("an answer to QUIT_NC")
    # a new SMTP session from another client on the same milter connection
    s.refused("nr-nc1@pass.example", client=OTHER, helo="other.client.example")
    s.accepted("nr-nc2@soft.example", "softfail", tag=True, connect=False)
    probs = s.close()
    c1 = decided(sg, "nr-conn1@pass.example")
    for sender in ("nr-nc1@pass.example", "nr-nc2@soft.example"):
        d = decided(sg, sender)
        if len(d) != 1 or d[0].get("client_ip") != OTHER or \
                d[0].get("helo") != "other.client.example":
            probs.append("%s logged %r" % (sender, [(x.get("client_ip"), x.get("helo"))
                                                     for x in d]))
        elif c1 and d[0].get("conn_id") == c1[0].get("conn_id"):
            probs.append("%s: the connection id of the session before QUIT_NC" % sender)
    tap.ok(not probs,
           "5. then QUIT_NC and a new session from another client: silent where "
           "negotiated, its own client decides, a softfail tagged, nothing left unread",
           "; ".join(probs)[:600] or None)
    if log.sock is not None:
        tap.diag("after QUIT_NC libmilter complained %d times (spfguard forgets the "
                 "negotiated flags at close; see filter/milter.c)" % len(log.complaints()))


def check_log(tap, log, what):
    if log.why:
        tap.skip("libmilter never complains that spfguard answered where no reply was "
                 "negotiated (%s)" % what, log.why)
        return
    c = log.complaints()
    tap.ok(not c, "libmilter never complains that spfguard answered where no reply was "
           "negotiated (%s)" % what, "%d times: %s" % (len(c), c[0][:200]) if c else None)


def c_unnegotiated(tap, sg):
    # no SMFIC_OPTNEG (no MTA does that): libmilter ignores connect then,
    # but runs HELO and what follows, and expects every answer
    s = Session(sg.port, negotiate=False)
    m = s.m
    s.stage("helo", "H", lambda: m.helo(NAME))
    s.stage("mail", "M", lambda: m.mail("<nr-unneg@pass.example>"))
    # no client address without connect: no SPF verdict, accepted
    s.stage("rcpt", "R", lambda: m.rcpt("<user@dest.example>"))
    s.stage("data", "T", m.data)
    s.stage("header", "L", lambda: m.header("From", "<nr-unneg@pass.example>"))
    s.stage("eoh", "N", m.eoh)
    s.stage("body", "B", lambda: m.body(b"Test message.\r\n"))
    # no actions negotiated: libmilter refuses spfguard's headers here
    e = m.eom()
    if e.code not in ("a", "c"):
        s.problems.append("eom: %r" % (e,))
    probs = s.close()
    tap.ok(not probs, "6. no option negotiation at all: HELO, MAIL, RCPT, DATA, header, end "
           "of headers, body, end of message each answered", "; ".join(probs)[:600] or None)


CASES = [c_negotiation, c_all, c_none, c_some, c_one_connection, c_unnegotiated]


def main():
    why = pfh.daemon_skip_reason()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    with scratch_dir("spfg-noreply.") as work:
        with TestServer(ZONE, lifetime=300) as dns:
            log = Syslog(work)
            sg = pfh.Spfguard(BASE, workdir=work, lifetime=300, dns=dns.addr,
                              wrapper=log.wrapper)
            try:
                sg.start()
            except pfh.SpfguardError as e:
                tap.ok(False, "spfguard starts", str(e)[:300])
                return tap.done() or 1
            try:
                for fn in CASES:
                    try:
                        if fn is c_one_connection:
                            fn(tap, sg, log)
                        else:
                            fn(tap, sg)
                    except (OSError, ValueError) as e:
                        tap.ok(False, fn.__name__, "%s: %s" % (type(e).__name__, e))
                    if not sg.alive():
                        tap.ok(False, "spfguard still runs after " + fn.__name__)
                        break
            finally:
                rc, took = sg.stop()
            tap.ok(rc == 0, "spfguard exits 0 on SIGTERM", "exit %s after %.1f s" % (rc, took))
            check_no_crash(tap, sg.stderr())
            tap.diag("run time %.1f s" % (time.monotonic() - t0))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
