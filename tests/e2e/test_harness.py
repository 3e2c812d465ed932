#!/usr/bin/python3
"""test_harness.py - checks of the end-to-end harness itself (TAP).

No spfguard here: a private Postfix alone, then with minimilter.py (a
small Python milter), then with a milter port nobody listens on.  These
pin down the Postfix facts spfguard relies on (where an inserted header
lands, which macros arrive when, how XCLIENT looks to a milter, the 451
when the milter is down) and that the harness cleans up after itself,
also when the test process is killed.

    /usr/bin/python3 tests/e2e/test_harness.py

Skips without Postfix or root.  Takes about 5 s.
"""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
from minimilter import MiniMilter  # noqa: E402
from postfix import Postfix, smtp_session  # noqa: E402
from spftest_lib import Tap, install_signal_handlers  # noqa: E402

CLIENT = "192.0.2.1"
NAME = "mail.client.example"


def listening_addrs(port):
    """Local addresses (hex, as in /proc/net/tcp*) listening on port."""
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    addr, p = parts[1].split(":")
                    if int(p, 16) == port and parts[3] == "0A":
                        out.append(addr)
        except OSError:
            pass
    return out


def group_alive(pgid):
    return bool(pfh.group_pids(pgid))


def t_plain(tap):
    with Postfix() as pf:
        tap.ok(pf.start_seconds < 3.0, "Postfix starts in under 3 s",
               "%.2f s" % pf.start_seconds)
        addrs = listening_addrs(pf.port)
        tap.ok(addrs == ["0100007F"], "smtpd listens on 127.0.0.1 only", repr(addrs))
        s = smtp_session(pf.port, "a@sender.example", ["b@dest.example", "c@dest.example"],
                         addr=CLIENT, name=NAME, helo="helo.client.example")
        msgs = pf.sink.wait_for(s.message_id)
        ok = tap.ok(s.data is not None and s.data.code == 250 and len(msgs) == 1,
                    "no milter: XCLIENT session accepted and relayed to the sink",
                    repr(s.final()))
        if ok:
            m = msgs[0]
            tap.ok(m.mail_from == "a@sender.example" and
                   m.rcpts == ["b@dest.example", "c@dest.example"],
                   "the sink has the envelope", "%r %r" % (m.mail_from, m.rcpts))
            rcv = m.headers[0]
            tap.ok(rcv[0] == "Received" and
                   rcv[1].startswith("from helo.client.example (%s [%s])" % (NAME, CLIENT)),
                   "Postfix's Received: names the HELO and the XCLIENT client",
                   rcv[1][:120])
        else:
            tap.diag(pf.log()[-2000:])
        q = s.queue_id
        tap.ok(q is not None and pf.wait_log(r"%s: removed" % q, timeout=5) is not None,
               "the maillog (postlogd) shows the queue id's life", q)
        pid = pf.master_pid()
        d = pf.dir
    tap.ok(pid is not None and not pfh.pid_alive(pid) and not group_alive(pid),
           "stopped: the master and its process group are gone", str(pid))
    tap.ok(not os.path.exists(d), "stopped: the instance directory is removed", d)


def t_minimilter(tap):
    acts = {"eom_headers": [("insert", 0, "X-Top", "inserted at 0")],
            "rcpt": lambda args, mac: ("reply", "550 5.7.23 refused by the test milter")
            if "refuse" in args[0] else None}
    with MiniMilter(acts) as m, Postfix(milter=m.spec) as pf:
        s = smtp_session(pf.port, "a@sender.example",
                         ["one@dest.example", "refuse@dest.example", "two@dest.example"],
                         addr=CLIENT, name=NAME, helo="helo.client.example", login="alice")
        msgs = pf.sink.wait_for(s.message_id)
        codes = [(r.code, r.text) for r in s.rcpts]
        tap.ok([c for c, _ in codes] == [250, 550, 250] and
               codes[1][1] == "5.7.23 refused by the test milter",
               "a milter's RCPT reply reaches the client as given", repr(codes))
        ok = tap.ok(len(msgs) == 1 and msgs[0].rcpts == ["one@dest.example",
                                                         "two@dest.example"],
                    "delivered to the recipients the milter accepted",
                    repr([x.rcpts for x in msgs]))
        if ok:
            h = msgs[0].headers
            tap.ok(h[0] == ("X-Top", "inserted at 0") and h[1][0] == "Received",
                   "a header inserted at index 0 lands above Postfix's Received:",
                   repr([n for n, _ in h[:3]]))
        sessions = [x for x in m.sessions() if any(e["cmd"] == "mail" for e in x)]
        ev = sessions[0] if len(sessions) == 1 else []
        by = {}
        for e in ev:
            by.setdefault(e["cmd"], []).append(e)
        conn = by.get("connect", [{}])[-1]
        tap.ok(conn.get("args") == [NAME, "4", conn.get("args", [0, 0, 0])[2], CLIENT],
               "after XCLIENT the milter session's connect has the XCLIENT name and "
               "address", repr(conn.get("args")))
        cm = conn.get("macros", {})
        tap.ok(all(k in cm for k in ("j", "{daemon_name}", "{daemon_addr}", "v", "_")),
               "connect macros: j {daemon_name} {daemon_addr} v _", repr(sorted(cm)))
        mail = by.get("mail", [{}])[0].get("macros", {})
        tap.ok(mail.get("{auth_authen}") == "alice" and mail.get("{auth_type}") == "XCLIENT"
               and "i" not in mail,
               "MAIL macros: {auth_authen} from XCLIENT LOGIN, {auth_type} XCLIENT, no i",
               repr(mail))
        rc = [e.get("macros", {}) for e in by.get("rcpt", [])]
        tap.ok(len(rc) == 3 and "i" not in rc[0] and "i" in rc[1] and
               rc[1].get("i") == s.queue_id,
               "RCPT macros: no i at the first RCPT, the queue id from the second on",
               repr([x.get("i") for x in rc]))
        later = [by.get(k, [{}])[0].get("macros", {}).get("i")
                 for k in ("data", "header", "eoh", "eom")]
        tap.ok(later == [s.queue_id] * 4, "i at DATA, header, end of header, end of message",
               repr(later))
        pre = [x for x in m.sessions() if not any(e["cmd"] == "mail" for e in x)]
        tap.ok(any(e["cmd"] == "connect" and e["args"][3] == "127.0.0.1" for x in pre
                   for e in x),
               "XCLIENT ends the first milter session (the real client, 127.0.0.1) and "
               "opens a new one", "%d other sessions" % len(pre))
        # an IPv4-mapped address comes to the milter as IPv4
        m.clear()
        s = smtp_session(pf.port, "b@sender.example", ["one@dest.example"],
                         addr="IPV6:::ffff:192.0.2.1", name=NAME)
        conns = [e["args"] for x in m.sessions() for e in x if e["cmd"] == "connect"]
        tap.ok(s.data is not None and ["4", CLIENT] in [[a[1], a[3]] for a in conns],
               "XCLIENT ADDR=IPV6:::ffff:192.0.2.1 reaches the milter as family 4, "
               "192.0.2.1", repr(conns))


def t_dead_milter(tap):
    port = pfh.free_port()
    with Postfix(milter="inet:127.0.0.1:%d" % port) as pf:
        s = smtp_session(pf.port, "a@sender.example", ["b@dest.example"], addr=CLIENT,
                         name=NAME)
        tap.ok(s.mail is not None and s.mail.code == 451 and s.mail.enhanced == "4.7.1",
               "milter port closed, milter_default_action = tempfail: MAIL gets 451 4.7.1",
               repr(s.final()))
        time.sleep(0.2)
        tap.ok(not pf.sink.messages(), "nothing was delivered")


def t_watchdog(tap):
    """The harness process dies (SIGKILL) with Postfix running: the
    watchdog stops Postfix and removes its directory."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import postfix, time\n"
            "pf = postfix.Postfix().start()\n"
            "print(pf.master_pid(), pf.dir, flush=True)\n"
            "time.sleep(60)\n") % HERE
    p = subprocess.Popen([pfh.PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    if len(line) != 2:
        tap.ok(False, "watchdog: the child started Postfix", repr(line))
        return
    pid, d = int(line[0]), line[1]
    end = time.monotonic() + 10
    while time.monotonic() < end and (pfh.pid_alive(pid) or os.path.exists(d)):
        time.sleep(0.1)
    tap.ok(not pfh.pid_alive(pid) and not os.path.exists(d),
           "watchdog: Postfix of a SIGKILLed harness process is stopped and removed",
           "master %s %s, %s %s" % (pid, "alive" if pfh.pid_alive(pid) else "gone", d,
                                    "left" if os.path.exists(d) else "removed"))
    if pfh.pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def main():
    why = pfh.why_not_runnable()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    install_signal_handlers()
    tap = Tap()
    t0 = time.monotonic()
    t_plain(tap)
    t_minimilter(tap)
    t_dead_milter(tap)
    t_watchdog(tap)
    tap.diag("run time %.1f s" % (time.monotonic() - t0))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
