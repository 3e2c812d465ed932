#!/usr/bin/python3
"""test_signals.py - spfguard's signal handling, end to end (TAP).

One spfguard on a loopback TCP port behind a private Postfix
(tests/e2e/postfix.py), resolving through tests/dnsserver.py, and a second
one on a unix socket (no Postfix) for the stop by SIGINT:

  1. TCP_NODELAY: "TCP_NODELAY set on inet:..." on stderr for the TCP
     socket (not for the unix one), and the option really set on the
     listening socket and on an accepted connection (read from the live
     daemon with pidfd_getfd(2); skipped where the kernel refuses it).
  2. SIGUSR1 reopens the decision log: after a logrotate-style rename the
     next decision goes to a new file at the original path, the renamed
     file keeps the old lines only; a reopen that cannot open the path (a
     directory there) is logged and the old file kept; a SIGUSR1 without
     a rotation loses and duplicates nothing.
  3. SIGHUP applies a changed policy to new sessions (a from_domain rule
     with its own reply text), logs the reload; a session opened before
     the reload keeps the policy it started with.
  4. SIGHUP with a broken file (syntax; unknown key; a bad rule) logs
     FILE:LINE errors, keeps the policy in use, the daemon lives on.
  5. 20 SIGHUPs 20 ms apart, the file switching between two policies,
     while mail flows (new sessions and one long session): every answer
     right, one decision line per transaction, the last file in force.
  6. SIGTERM (TCP) and SIGINT (unix) at once: both exit 0 within 10 s,
     their pid files are removed, their sockets no longer accept.
     (Postfix's 451 with spfguard gone is test_postfix.py's case j.)

    /usr/bin/python3 tests/e2e/test_signals.py

Skips (1..0 # SKIP) without Postfix, root or python3-dnslib, and until
filter/spfguard is built ($SPFGUARD names another binary).  Takes about
8 s, most of it waiting for the two daemons to stop (libmilter looks at
its stop flag every 5 s; they stop in parallel).
"""

import ctypes
import json
import os
import re
import signal
import socket
import sys
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
CLIENT = "192.0.2.1"                  # covered by the ip4: of both domains
CLIENT_NAME = "mail.client.example"
HELO = "mail.client.example"          # not in the zone: HELO SPF is none
DEST = "user@dest.example"
OK_DOMAIN = "ok.example"              # always accepted
SIG_DOMAIN = "sig.example"            # refused once the policy says so
REPLY_TEXT = "sig.example is refused by the reloaded policy"

ZONE = {
    OK_DOMAIN: {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    SIG_DOMAIN: {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
}

BASE = {
    "dns": {"resolvers": [], "timeout_ms": 500},
    "spf": {"deadline_ms": 1500, "receiver": AUTHSERV},
    "headers": {"authserv_id": AUTHSERV},
    "mode": "enforce",
    "trusted_networks": ["127.0.0.0/8"],
    "rules": [{"name": "default", "action": "accept"}],
}


def reject_rules(name):
    return [{"name": name, "match": {"from_domain": SIG_DOMAIN}, "action": "reject",
             "code": 550, "xcode": "5.7.1", "reply": REPLY_TEXT},
            {"name": "default", "action": "accept"}]


class Run:
    def __init__(self, tap, dns, pf, work):
        self.tap = tap
        self.dns = dns
        self.pf = pf
        self.work = work
        self.sg = None                 # the TCP daemon behind Postfix
        self.sgu = None                # the unix-socket daemon
        self.pidfile = os.path.join(work, "spfguard-tcp.pid")
        self.pidfile_u = os.path.join(work, "spfguard-unix.pid")
        self.sent = []                 # senders of every transaction: one line each
        self.n = 0
        self.lock = threading.Lock()

    # -- daemons -----------------------------------------------------------
    def conf(self, **over):
        return pfh.merge(BASE, dict(over, dns={"resolvers": [self.dns.addr]}))

    def write_conf(self, conf=None, text=None):
        """Replace the TCP daemon's configuration file (atomically, as an
        editor or a config manager does); returns the text written."""
        if text is None:
            text = pfh.to_libconfig(pfh.merge(conf, {"socket": self.sg.socket,
                                                     "decision_log": self.sg.decision_log}))
        tmp = self.sg.conf_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.sg.conf_path)
        return text

    def conf_text(self, conf):
        return pfh.to_libconfig(pfh.merge(conf, {"socket": self.sg.socket,
                                                 "decision_log": self.sg.decision_log}))

    def signal(self, sig):
        os.kill(self.sg.proc.pid, sig)

    def err_len(self):
        return len(self.sg.stderr())

    def wait_err(self, pattern, start, timeout=5.0):
        """The first match of pattern in the daemon's stderr after offset
        start, waiting up to timeout seconds; None if none came."""
        rx = re.compile(pattern, re.M)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.sg.stderr()[start:])
            if m or time.monotonic() >= end:
                return m
            time.sleep(0.02)

    def reload(self, conf=None, text=None, ok=True):
        """Write the file, SIGHUP, wait for the daemon's verdict on it.
        Returns (matched, stderr text of this reload)."""
        text = self.write_conf(conf, text)
        start = self.err_len()
        self.signal(signal.SIGHUP)
        path = re.escape(self.sg.conf_path)
        if ok:
            m = self.wait_err(r"configuration reloaded from %s$" % path, start)
        else:
            m = self.wait_err(r"reload of %s failed" % path, start)
        return m is not None, self.sg.stderr()[start:]

    # -- mail ----------------------------------------------------------------
    def sender(self, tag, domain):
        with self.lock:
            self.n += 1
            return "%s-%d@%s" % (tag, self.n, domain)

    def send(self, sender):
        s = smtp_session(self.pf.port, sender, [DEST], addr=CLIENT, name=CLIENT_NAME,
                         helo=HELO)
        with self.lock:
            self.sent.append(sender)
        return s

    def delivered(self, s):
        if s.message_id is None or s.data is None or s.data.code != 250:
            return []
        return self.pf.sink.wait_for(s.message_id, timeout=10)

    def wait_line(self, sender, path=None, timeout=5.0):
        """The decision-log lines for sender in path (default: the log),
        waiting until there is one."""
        end = time.monotonic() + timeout
        while True:
            ls = [d for d in read_log(path or self.sg.decision_log)
                  if d.get("sender") == sender]
            if ls or time.monotonic() >= end:
                return ls
            time.sleep(0.02)

    def settle(self, paths, timeout=5.0):
        """Wait until the decision logs stop growing (0.3 s quiet)."""
        def size():
            return sum(len(read_lines(p)) for p in paths)
        end = time.monotonic() + timeout
        n, since = size(), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            m = size()
            if m != n:
                n, since = m, time.monotonic()
            elif time.monotonic() - since >= 0.3:
                return

    def explain(self, s=None):
        if s is not None:
            self.tap.diag("session: %r" % (s,))
        self.tap.diag("spfguard (end):\n" + "\n".join(self.sg.stderr().splitlines()[-10:]))
        self.tap.diag("maillog (end):\n" + "\n".join(self.pf.log().splitlines()[-6:]))


def read_lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return []


def read_log(path):
    out = []
    for line in read_lines(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"_unparsed": line})
    return out


def accepted(s):
    return bool(s.rcpts) and s.rcpts[0].code == 250 and s.data is not None and \
        s.data.code == 250


def refused_by_reload(s):
    """The RCPT answer of the reloaded policy's rule."""
    rc = s.rcpts[0] if s.rcpts else None
    return rc is not None and rc.code == 550 and rc.enhanced == "5.7.1" and \
        REPLY_TEXT in (rc.text or "")


# ---------------------------------------------------------------------------
# 1. TCP_NODELAY

SYS_PIDFD_GETFD = 438      # x86_64, aarch64 and the other generic tables alike


def _tcp_inodes(port, remote_port=None):
    """Inodes of sockets of 127.0.0.1:port in /proc/net/tcp: the listening
    one (remote_port None) or the connection from remote_port."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            lport = int(p[1].split(":")[1], 16)
            rport = int(p[2].split(":")[1], 16)
            if lport != port:
                continue
            if remote_port is None and p[3] == "0A" or \
                    remote_port is not None and rport == remote_port and p[3] == "01":
                if p[9] != "0":
                    out.append(p[9])
    return out


def _fd_of(pid, inodes):
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", link)
        if m and m.group(1) in inodes:
            return int(fd)
    return None


def nodelay_of(pid, fd):
    """TCP_NODELAY of descriptor fd of process pid (pidfd_getfd(2) makes a
    copy here; the daemon's own descriptor is untouched)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        mine = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if mine < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd: %s" %
                          os.strerror(ctypes.get_errno()))
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=mine)
    try:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        s.close()


def case_1_nodelay(r):
    sg = r.sg
    want = "TCP_NODELAY set on %s" % sg.socket
    err = sg.stderr()
    r.tap.ok(re.search(r"^spfguard: %s$" % re.escape(want), err, re.M) is not None,
             "1. stderr says \"%s\"" % want, None if want in err else err[-300:])
    erru = r.sgu.stderr()
    ok = "TCP_NODELAY" not in erru and "listening on unix:" in erru
    r.tap.ok(ok, "1. no TCP_NODELAY line for the unix socket",
             None if ok else erru.strip()[-200:])

    if not hasattr(os, "pidfd_open"):
        r.tap.skip("1. TCP_NODELAY on the live sockets", "no os.pidfd_open")
        return
    pid = sg.proc.pid
    c = socket.create_connection(("127.0.0.1", sg.port), timeout=5)
    try:
        cport = c.getsockname()[1]
        lfd = _fd_of(pid, _tcp_inodes(sg.port))
        afd = None
        end = time.monotonic() + 3      # until libmilter has accepted it
        while afd is None and time.monotonic() < end:
            afd = _fd_of(pid, _tcp_inodes(sg.port, cport))
            if afd is None:
                time.sleep(0.02)
        if lfd is None or afd is None:
            r.tap.ok(False, "1. the daemon's listening socket and the accepted "
                     "connection are found in /proc", "listen fd %r, accepted fd %r"
                     % (lfd, afd))
            return
        try:
            on_l = nodelay_of(pid, lfd)
            on_a = nodelay_of(pid, afd)
        except OSError as e:
            r.tap.skip("1. TCP_NODELAY on the live sockets", str(e))
            return
        r.tap.ok(on_l, "1. TCP_NODELAY is set on the live listening socket (fd %d)" % lfd)
        r.tap.ok(on_a, "1. ... and on the connection it accepted (fd %d)" % afd)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# 2. SIGUSR1

def case_2_reopen(r):
    log = r.sg.decision_log
    rotated = log + ".1"
    a = r.sender("u-before", OK_DOMAIN)
    sa = r.send(a)
    la = r.wait_line(a)
    if not r.tap.ok(accepted(sa) and len(la) == 1,
                    "2. a message before the rotation: accepted, one decision line",
                    "%r, %d line(s)" % (sa.final(), len(la))):
        r.explain(sa)
        return
    r.settle([log])
    before = read_lines(log)
    os.rename(log, rotated)
    r.signal(signal.SIGUSR1)
    end = time.monotonic() + 5
    while not os.path.exists(log) and time.monotonic() < end:
        time.sleep(0.02)
    r.tap.ok(os.path.exists(log) and not read_lines(log),
             "2. SIGUSR1 after a rename: a new, empty decision log at the original path")
    b = r.sender("u-after", OK_DOMAIN)
    sb = r.send(b)
    lb = r.wait_line(b)
    r.settle([log, rotated])
    new = read_log(log)
    old = read_log(rotated)
    r.tap.ok(accepted(sb) and [d.get("sender") for d in new] == [b],
             "2. the next decision goes to the new file, and only it",
             "%r; new file: %r" % (sb.final(), [d.get("sender") for d in new]))
    r.tap.ok(read_lines(rotated) == before and not any(d.get("sender") == b for d in old),
             "2. the renamed file keeps the old lines only (%d)" % len(before),
             "renamed file: %r" % [d.get("sender") for d in old][-3:])
    bad = [d["_unparsed"][:100] for d in new + old if "_unparsed" in d]
    r.tap.ok(not bad and len(lb) == 1, "2. every line of both files is a JSON object",
             repr(bad[:2]))

    # the path cannot be opened (a directory there): logged, old file kept
    os.rename(log, rotated + "2")
    os.mkdir(log)
    start = r.err_len()
    r.signal(signal.SIGUSR1)
    m = r.wait_err(r"decision log %s: cannot reopen, keeping the old file" %
                   re.escape(log), start)
    c = r.sender("u-dir", OK_DOMAIN)
    sc = r.send(c)
    lc = r.wait_line(c, path=rotated + "2")
    r.tap.ok(m is not None and accepted(sc) and len(lc) == 1 and r.sg.alive(),
             "2. SIGUSR1 when the path is a directory: logged (\"cannot reopen, "
             "keeping the old file\"), the next decision goes to the old file",
             "%s; %r; %d line(s)" % ("logged" if m else "not logged", sc.final(), len(lc)))
    os.rmdir(log)
    os.rename(rotated + "2", log)      # as it was: one log at the path
    # a SIGUSR1 without rotation: the same file, nothing lost or doubled
    r.signal(signal.SIGUSR1)
    end = time.monotonic() + 5
    while not os.path.exists(log) and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(0.1)
    d = r.sender("u-again", OK_DOMAIN)
    sd = r.send(d)
    r.wait_line(d)
    r.settle([log])
    got = [x.get("sender") for x in read_log(log)]
    r.tap.ok(accepted(sd) and got == [b, c, d],
             "2. SIGUSR1 without a rotation: appends to the same file, nothing lost "
             "or doubled", repr(got))


# ---------------------------------------------------------------------------
# 3. SIGHUP applies a changed policy

def case_3_reload(r):
    a = r.sender("h-before", SIG_DOMAIN)
    sa = r.send(a)
    if not r.tap.ok(accepted(sa) and len(r.delivered(sa)) == 1,
                    "3. the first policy (default accept): %s accepted and delivered"
                    % SIG_DOMAIN, repr(sa.final())):
        r.explain(sa)
    # a session opened before the reload (Postfix's milter connect is at
    # XCLIENT: its snapshot is taken there)
    old = pfh.Client(r.pf.port)
    try:
        x = old.xclient(CLIENT, CLIENT_NAME)
        e = old.ehlo(HELO)
        ok, text = r.reload(r.conf(rules=reject_rules("block-sig")))
        r.tap.ok(ok, "3. SIGHUP: stderr says \"configuration reloaded from %s\""
                 % os.path.basename(r.sg.conf_path), None if ok else text.strip()[-300:])
        b = r.sender("h-after", SIG_DOMAIN)
        sb = r.send(b)
        if not r.tap.ok(refused_by_reload(sb),
                        "3. the next message is refused by the new rule: 550 5.7.1 %s"
                        % REPLY_TEXT, repr(sb.final())):
            r.explain(sb)
        lb = r.wait_line(b)
        ok = len(lb) == 1 and lb[0].get("rule") == "block-sig" and \
            lb[0].get("action") == "reject" and REPLY_TEXT in repr(lb[0].get("reply"))
        r.tap.ok(ok, "3. its decision line: rule block-sig, action reject, the new reply",
                 None if ok else repr(lb)[:300])
        o = r.sender("h-old", SIG_DOMAIN)
        m = old.mail(o)
        rc = old.rcpt(DEST)
        ok_old = x.code == 220 and e.code == 250 and m.code == 250 and rc.code == 250
        if rc.code == 250:
            text3, mid = pfh.make_message(o, [DEST])
            _, dd = old.data(text3)
            ok_old = ok_old and dd is not None and dd.code == 250
        with r.lock:
            r.sent.append(o)
        r.tap.ok(ok_old, "3. a session opened before the reload keeps its policy "
                 "(accepted)", None if ok_old else "xclient %r ehlo %r mail %r rcpt %r"
                 % (x, e, m, rc))
    finally:
        old.close()
    lo = r.wait_line(o)
    r.tap.ok(len(lo) == 1 and lo[0].get("rule") == "default",
             "3. ... its decision line names the old policy's rule (default)",
             repr([d.get("rule") for d in lo]))


# ---------------------------------------------------------------------------
# 4. SIGHUP with a broken file

def case_4_broken(r):
    good = r.conf(rules=[{"name": "default", "action": "accept"}])   # would accept
    base_text = r.conf_text(good)
    nlines = base_text.count("\n")
    variants = [
        ("syntax error (a value missing)", base_text + "broken = ;\n", nlines + 1,
         r"syntax error"),
        ("unknown key", base_text + "bogus_key = 1;\n", nlines + 1,
         r"unknown key \"?bogus_key"),
        ("a rule with an unknown action",
         base_text +
         "policy_sets = (\n  { name = \"bad\"; recipient_domains = [ \"x.example\" ];\n"
         "    rules = (\n      { name = \"r\"; action = \"explode\"; }\n    ); }\n);\n",
         nlines + 4, r"explode"),
    ]
    for label, text, line, what in variants:
        ok, err = r.reload(text=text, ok=False)
        rx = r"%s:(\d+): .*%s" % (re.escape(r.sg.conf_path), what)
        m = re.search(rx, err)
        r.tap.ok(ok and m is not None and int(m.group(1)) == line,
                 "4. %s: SIGHUP logs %s:%d and \"reload ... failed\""
                 % (label, os.path.basename(r.sg.conf_path), line),
                 err.strip().replace(r.work + "/", "")[-300:])
        a = r.sender("b-%s" % label.split()[0], SIG_DOMAIN)
        s = r.send(a)
        if not r.tap.ok(refused_by_reload(s) and r.sg.alive(),
                        "4. %s: the daemon lives and keeps the policy in use "
                        "(550 5.7.1, the reloaded rule)" % label, repr(s.final())):
            r.explain(s)
    # the good file back (the policy before the broken ones)
    ok, err = r.reload(r.conf(rules=reject_rules("block-sig")))
    r.tap.ok(ok, "4. a good file after the broken ones reloads",
             None if ok else err.strip()[-200:])


# ---------------------------------------------------------------------------
# 5. reload storm

FLOWS = 6          # sessions sent side by side during the storm
FLOW_MIN = 50      # each sends at least this many
FLOW_MAX = 120


def case_5_storm(r):
    conf_a = r.conf(rules=reject_rules("block-sig-a"))
    conf_b = r.conf(rules=reject_rules("block-sig-b"))
    text_a, text_b = r.conf_text(conf_a), r.conf_text(conf_b)
    start = r.err_len()
    lines_before = len(read_lines(r.sg.decision_log))
    storm_done = threading.Event()
    results = []                     # (sender, want_accept, ok, detail)
    rlock = threading.Lock()

    def check(sender, want_ok, s_or_replies):
        with rlock:
            results.append((sender, want_ok) + s_or_replies)

    def flow(k):
        i = 0
        while i < FLOW_MAX and (not storm_done.is_set() or i < FLOW_MIN):
            dom = OK_DOMAIN if (i + k) % 2 == 0 else SIG_DOMAIN
            snd = r.sender("s%d" % k, dom)
            s = r.send(snd)
            good = accepted(s) if dom == OK_DOMAIN else refused_by_reload(s)
            check(snd, dom == OK_DOMAIN, (good, repr(s.final())))
            i += 1

    def long_session():
        c = pfh.Client(r.pf.port)
        try:
            c.xclient(CLIENT, CLIENT_NAME)
            c.ehlo(HELO)
            i = 0
            while i < 40 and (not storm_done.is_set() or i < 4):
                dom = OK_DOMAIN if i % 2 == 0 else SIG_DOMAIN
                snd = r.sender("slong", dom)
                m = c.mail(snd)
                rc = c.rcpt(DEST)
                with r.lock:
                    r.sent.append(snd)
                if dom == OK_DOMAIN:
                    good = m.code == 250 and rc.code == 250
                    if good:
                        text, _ = pfh.make_message(snd, [DEST])
                        _, d = c.data(text)
                        good = d is not None and d.code == 250
                    else:
                        c.rset()
                else:
                    good = m.code == 250 and rc.code == 550 and REPLY_TEXT in (rc.text or "")
                    c.rset()
                check(snd, dom == OK_DOMAIN, (good, "mail %r rcpt %r" % (m, rc)))
                i += 1
                time.sleep(0.03)
        finally:
            c.close()

    threads = [threading.Thread(target=flow, args=(k,)) for k in range(FLOWS)]
    threads.append(threading.Thread(target=long_session))
    for t in threads:
        t.start()
    time.sleep(0.1)                  # mail is flowing
    broken = 0
    for i in range(20):
        # every fifth file is broken: the policy in force stays
        if i % 5 == 4:
            r.write_conf(text=text_a + "\nbogus_key = 1;\n")
            broken += 1
        else:
            r.write_conf(text=text_a if i % 2 == 0 else text_b)
        r.signal(signal.SIGHUP)
        time.sleep(0.05)
    last = "block-sig-a"              # i = 18 wrote text_a, 19 was broken
    storm_done.set()
    for t in threads:
        t.join(timeout=60)
    # the reloads are over when stderr has been quiet for 0.5 s
    n, since = -1, time.monotonic()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        k = r.sg.stderr()[start:].count("configuration reloaded from")
        if k != n:
            n, since = k, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            break
        time.sleep(0.05)
    err = r.sg.stderr()[start:]
    failed = err.count("reload of")
    r.tap.ok(r.sg.alive() and n >= 1 and failed >= 1 and n + failed <= 20,
             "5. 20 SIGHUPs 50 ms apart with mail flowing, %d of them broken files: "
             "spfguard lives, the broken ones are refused" % broken,
             "%d reload(s) logged, %d refused" % (n, failed))
    wrong = [(snd, detail) for snd, _w, good, detail in results if not good]
    r.tap.ok(len(results) >= 300,
             "5. several hundred transactions ran during the reloads (%d)" % len(results))
    r.tap.ok(results and not wrong,
             "5. every transaction during the storm got the right answer (%d: "
             "%s accepted, %s refused)" % (len(results), OK_DOMAIN, SIG_DOMAIN),
             repr(wrong[:3]))
    # after it: the last file is in force
    a = r.sender("after-storm", SIG_DOMAIN)
    s = r.send(a)
    la = r.wait_line(a)
    r.tap.ok(refused_by_reload(s) and len(la) == 1 and la[0].get("rule") == last,
             "5. after the storm the last file's policy decides (rule %s)" % last,
             "%r %r" % (s.final(), [d.get("rule") for d in la]))
    b = r.sender("after-storm", OK_DOMAIN)
    s = r.send(b)
    r.tap.ok(accepted(s) and len(r.delivered(s)) == 1,
             "5. ... and %s is still accepted and delivered" % OK_DOMAIN, repr(s.final()))
    # no decision lost or doubled
    r.settle([r.sg.decision_log])
    log = read_log(r.sg.decision_log)
    storm_senders = [x[0] for x in results] + [a, b]
    counts = {}
    for d in log:
        counts[d.get("sender")] = counts.get(d.get("sender"), 0) + 1
    off = ["%s: %d" % (snd, counts.get(snd, 0)) for snd in storm_senders
           if counts.get(snd, 0) != 1]
    r.tap.ok(not off and len(log) - lines_before == len(storm_senders),
             "5. one decision line per transaction (%d transactions, %d new lines)"
             % (len(storm_senders), len(log) - lines_before), "; ".join(off[:5]))
    rules = sorted({d.get("rule") for d in log[lines_before:]
                    if (d.get("sender") or "").endswith("@" + SIG_DOMAIN)})
    r.tap.ok(set(rules) <= {"block-sig", "block-sig-a", "block-sig-b"},
             "5. every refusal names a rule of one of the files", repr(rules))


# ---------------------------------------------------------------------------
# 6. SIGTERM and SIGINT

def case_6_stop(r):
    sg, sgu = r.sg, r.sgu
    for d, pf, label in ((sg, r.pidfile, "TCP"), (sgu, r.pidfile_u, "unix")):
        try:
            with open(pf) as f:
                content = f.read().strip()
        except OSError as e:
            content = str(e)
        r.tap.ok(content == str(d.proc.pid),
                 "6. (%s) the pid file holds the daemon's pid" % label,
                 "%r, pid %d" % (content, d.proc.pid))
    r.tap.ok(sg.accepts() and sgu.accepts(), "6. both sockets accept before the stop")
    t0 = time.monotonic()
    os.kill(sg.proc.pid, signal.SIGTERM)
    os.kill(sgu.proc.pid, signal.SIGINT)
    out = {}
    for d, label in ((sg, "TCP"), (sgu, "unix")):
        left = max(0.1, 10.0 - (time.monotonic() - t0))
        try:
            rc = d.proc.wait(timeout=left)
        except Exception:
            rc = None
        out[label] = (rc, time.monotonic() - t0)
    for d, pf, label, sig in ((sg, r.pidfile, "TCP", "SIGTERM"),
                              (sgu, r.pidfile_u, "unix", "SIGINT")):
        rc, took = out[label]
        r.tap.ok(rc == 0, "6. (%s) %s: exit status 0 within 10 s" % (label, sig),
                 "exit %s after %.1f s" % (rc, took))
        if rc is None:
            d.kill()
        else:
            d.stop()                 # reaped already: only the harness's cleanup
        r.tap.ok(not os.path.exists(pf), "6. (%s) the pid file is removed" % label)
        r.tap.ok(not d.accepts(), "6. (%s) the socket no longer accepts" % label)
        if d.unix:
            r.tap.ok(not os.path.exists(d.unix),
                     "6. (%s) the unix socket file is removed" % label)
        err = d.stderr()
        ok = re.search(r"^spfguard: stopping$", err, re.M) is not None
        r.tap.ok(ok, "6. (%s) stderr says \"stopping\"" % label,
                 None if ok else err.strip()[-200:])
        bad = crash_lines(err)
        r.tap.ok(not bad, "6. (%s) no sanitizer report or crash in spfguard's log" % label,
                 bad[0][:200] if bad else None)


# ---------------------------------------------------------------------------

def main():
    why = pfh.skip_reason()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    port = pfh.free_port()
    r = None
    with scratch_dir("spfg-sig.") as work:
        try:
            with TestServer(ZONE, lifetime=300) as dns, \
                    Postfix(milter="inet:127.0.0.1:%d" % port, lifetime=300) as pf:
                r = Run(tap, dns, pf, work)
                r.sg = Spfguard(r.conf(pidfile=r.pidfile), port=port, workdir=work,
                                lifetime=300)
                r.sgu = Spfguard(r.conf(pidfile=r.pidfile_u), workdir=work, lifetime=300,
                                 unix=os.path.join(work, "spfguard.sock"))
                rc, out = r.sg.check_config()
                if not tap.ok(rc == 0, "spfguard -n accepts the test configuration",
                              out.strip()[:300]):
                    return tap.done() or 1
                try:
                    r.sg.start()
                    r.sgu.start()
                except pfh.SpfguardError as e:
                    tap.ok(False, "spfguard starts", str(e)[:300])
                    return tap.done() or 1
                # the socket accepts a moment before the start-up is logged
                end = time.monotonic() + 5
                while time.monotonic() < end and not all(
                        " listening on " in d.stderr() for d in (r.sg, r.sgu)):
                    time.sleep(0.02)
                tap.diag("spfguard %s (pid %d on %s, pid %d on %s)" % (
                    pfh.spfguard_path(), r.sg.proc.pid, r.sg.socket, r.sgu.proc.pid,
                    r.sgu.socket))
                for fn in (case_1_nodelay, case_2_reopen, case_3_reload, case_4_broken,
                           case_5_storm):
                    fn(r)
                    if not r.sg.alive():
                        tap.ok(False, "spfguard is still running after %s" % fn.__name__,
                               "exit %s" % r.sg.proc.poll())
                        tap.diag(r.sg.stderr()[-3000:])
                        break
                # every line ever written, in the file at the path and the rotated one
                allx = read_log(r.sg.decision_log) + read_log(r.sg.decision_log + ".1")
                bad = [d["_unparsed"][:100] for d in allx if "_unparsed" in d]
                tap.ok(not bad, "every decision-log line is a JSON object", repr(bad[:2]))
                case_6_stop(r)
                tap.diag("run time %.1f s" % (time.monotonic() - t0))
        finally:
            for d in (r.sg, r.sgu) if r is not None else ():
                if d is not None and d.alive():
                    d.kill()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
