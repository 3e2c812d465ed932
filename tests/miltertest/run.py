#!/usr/bin/python3
"""run.py - spfguard's miltertest scripts as one TAP test.

    /usr/bin/python3 tests/miltertest/run.py [SCRIPT.lua ...]
    /usr/bin/python3 tests/miltertest/valgrind.py [SCRIPT.lua ...]

valgrind.py runs the same with spfguard under valgrind's memcheck (the
plain build; skipped for a sanitizer build): no memory error, and nothing
definitely or indirectly lost when it exits on SIGTERM.

Starts tests/dnsserver.py and filter/spfguard (one daemon for all scripts,
config as in tests/e2e/test_postfix.py), runs each script with OpenDKIM's
miltertest:

    miltertest -D sock=inet:PORT@127.0.0.1 -D dir=tests/miltertest -s SCRIPT

and after each, checks what miltertest cannot see: the decision log (reply
codes and texts, queue id, one line per decision) and the DNS query log
(no lookups for trusted or authenticated clients).  Skips (1..0 # SKIP)
without miltertest or until filter/spfguard is built.  Takes about 7 s,
5 of them stopping spfguard (libmilter looks at its stop flag every 5 s).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "e2e"))
sys.path.insert(0, TESTS)

import postfix as pfh  # noqa: E402
from spftest_lib import check_no_crash, install_signal_handlers, Tap, TestServer  # noqa: E402
from test_postfix import BASE  # noqa: E402

MILTERTEST = "/usr/bin/miltertest"
VALGRIND = "/usr/bin/valgrind"

ZONE = {
    "pass.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "pass6.example": {"records": [{"type": "TXT", "data": "v=spf1 ip6:2001:db8::/32 -all"}]},
    "fail.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "soft.example": {"records": [{"type": "TXT", "data": "v=spf1 ~all"}]},
    "auth.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "trusted.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
}

SCRIPTS = ["pass.lua", "fail.lua", "trusted.lua", "auth.lua", "nomacros.lua",
           "postfix_macros.lua", "mail_twice.lua", "abort.lua", "forged.lua",
           "unspec.lua", "noreply.lua"]


def lines_for(sg, sender):
    return [d for d in sg.decisions() if d.get("sender") == sender]


def txt_queries(dns, domain):
    return [q for q in dns.queries() if q[1] == domain and q[2] in ("TXT", "SPF")]


def reply_of(d):
    r = d.get("reply") if d else None
    if isinstance(r, dict):
        return "%s %s %s" % (r.get("code"), r.get("xcode"), r.get("text"))
    return str(r)


# checks after a script: fn(tap, sg, dns) -----------------------------------

def after_pass(tap, sg, dns):
    ls = lines_for(sg, "mt-pass@pass.example")
    tap.ok(len(ls) == 1 and ls[0].get("action") == "accept",
           "pass: one decision-log line, action accept",
           repr([(d.get("rule"), d.get("action")) for d in ls]))
    tap.ok(bool(txt_queries(dns, "pass.example")), "pass: pass.example's TXT was looked up")


def after_fail(tap, sg, dns):
    ls = lines_for(sg, "mt-fail@fail.example")
    texts = [reply_of(d) for d in ls]
    tap.ok(len(ls) >= 1 and all(t.startswith("550 5.7.23 ") for t in texts),
           "fail: the decision log gives the reply 550 5.7.23", repr(texts))
    rc = [sorted(d.get("recipients") or []) for d in ls]
    allr = sorted(r for x in rc for r in x)
    tap.ok(allr == ["other@dest.example", "user@dest.example"],
           "fail: both refused recipients are logged", repr(rc))


def after_trusted(tap, sg, dns):
    q = txt_queries(dns, "trusted.example")
    tap.ok(not q, "trusted: no TXT query for the sender's domain", repr(q[:3]))
    ls = lines_for(sg, "mt-trusted@trusted.example")
    tap.ok(len(ls) == 1 and ls[0].get("rule") == "trusted" and
           ls[0].get("action") == "accept",
           "trusted: one line, rule trusted, action accept",
           repr([(d.get("rule"), d.get("action")) for d in ls]))


def after_auth(tap, sg, dns):
    q = txt_queries(dns, "auth.example")
    tap.ok(not q, "auth: no TXT query for the sender's domain", repr(q[:3]))
    ls = lines_for(sg, "mt-auth@auth.example")
    tap.ok(len(ls) == 1 and ls[0].get("rule") == "auth" and ls[0].get("auth") == "mt-user",
           "auth: one line, rule auth, auth mt-user",
           repr([(d.get("rule"), d.get("auth")) for d in ls]))


def after_nomacros(tap, sg, dns):
    ls = lines_for(sg, "mt-nomacros@pass.example")
    d = ls[0] if len(ls) == 1 else {}
    tap.ok(len(ls) == 1 and d.get("queue_id") is None and d.get("auth") is None and
           d.get("client_ip") == "192.0.2.1",
           "nomacros: one line, queue_id and auth null, client_ip from connect",
           repr({k: d.get(k) for k in ("queue_id", "auth", "client_ip")}))


def after_postfix_macros(tap, sg, dns):
    ls = lines_for(sg, "mt-postfix@pass.example")
    d = ls[0] if len(ls) == 1 else {}
    tap.ok(len(ls) == 1 and d.get("queue_id") == "4F2C1A72300" and
           sorted(d.get("recipients") or []) == ["two@dest.example", "user@dest.example"],
           "postfix macros: one line for both recipients, with the queue id "
           "sent at the second RCPT",
           repr({k: d.get(k) for k in ("queue_id", "recipients")}))


def after_mail_twice(tap, sg, dns):
    got = {s: [(d.get("action"), reply_of(d)[:10]) for d in lines_for(sg, s)]
           for s in ("mt-twice1@pass.example", "mt-twice2@fail.example",
                     "mt-twice3@fail.example", "mt-twice4@pass.example")}
    ok = (not got["mt-twice1@pass.example"] and not got["mt-twice3@fail.example"] and
          [a for a, _ in got["mt-twice2@fail.example"]] == ["reject"] and
          [a for a, _ in got["mt-twice4@pass.example"]] == ["accept"])
    tap.ok(ok, "mail twice: lines for the second sender of each transaction only",
           repr(got))


def after_abort(tap, sg, dns):
    got = {s: [d.get("action") for d in lines_for(sg, s)]
           for s in ("mt-abort1@pass.example", "mt-abort2@soft.example",
                     "mt-abort3@pass.example", "mt-abort4@pass.example",
                     "mt-abort5@pass.example")}
    want = {"mt-abort1@pass.example": ["accept"], "mt-abort2@soft.example": ["tag"],
            "mt-abort3@pass.example": [], "mt-abort4@pass.example": [],
            "mt-abort5@pass.example": ["accept"]}
    tap.ok(got == want, "abort: one line per decision made at RCPT (an aborted "
           "message's too), none without RCPT", repr(got))


def after_noreply(tap, sg, dns):
    # connect, HELO, MAIL and end of headers were not answered, yet seen
    got = {s: [{k: d.get(k) for k in ("client_ip", "helo", "queue_id", "action")}
               for d in lines_for(sg, s)]
           for s in ("mt-nr-fail@fail.example", "mt-nr-pass@pass.example")}
    seen = {"client_ip": "192.0.2.1", "helo": "mail.client.example"}
    want = {"mt-nr-fail@fail.example": [dict(seen, queue_id=None, action="reject")],
            "mt-nr-pass@pass.example": [dict(seen, queue_id="NRQ2", action="accept")]}
    tap.ok(got == want, "noreply: client, HELO and the queue id of end of headers "
           "logged, though not answered", repr(got))


AFTER = {"pass.lua": after_pass, "fail.lua": after_fail, "trusted.lua": after_trusted,
         "auth.lua": after_auth, "nomacros.lua": after_nomacros,
         "postfix_macros.lua": after_postfix_macros, "mail_twice.lua": after_mail_twice,
         "abort.lua": after_abort, "noreply.lua": after_noreply}


def run_script(sg, script, timeout=60):
    cmd = [MILTERTEST, "-D", "sock=" + sg.socket, "-D", "dir=" + HERE,
           "-s", os.path.join(HERE, script)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = None, "timed out after %d s\n%s" % (timeout, e.stdout or "")
    return rc, out, time.monotonic() - t0


def sanitized(path):
    """Is the binary built with AddressSanitizer (no valgrind then)?"""
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def valgrind_cmd(log):
    """spfguard under memcheck: every error, and definite or indirect
    leaks at exit, make valgrind exit 99 and are listed in log."""
    return [VALGRIND, "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--num-callers=30", "--log-file=" + log]


def valgrind_report(tap, log, rc):
    """The valgrind checks after spfguard stopped."""
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    leaks = {k: int(v.replace(",", "")) for k, v in re.findall(
        r"(definitely|indirectly) lost: ([\d,]+) bytes", text)}
    ok = m is not None and m.group(1) == "0" and rc == 0 and \
        leaks.get("definitely", 0) == 0 and leaks.get("indirectly", 0) == 0
    if not tap.ok(ok, "valgrind: no memory error, nothing definitely or indirectly lost",
                  "%s; %s; exit %s" % (m.group(0) if m else "no summary",
                                       ", ".join("%s lost %d bytes" % kv
                                                 for kv in leaks.items()) or "no leak",
                                       rc)):
        tap.diag(text[-6000:])


def main(valgrind=False):
    scripts = [a for a in sys.argv[1:] if a.endswith(".lua")] or SCRIPTS
    if not os.access(MILTERTEST, os.X_OK):
        print("1..0 # SKIP miltertest is not installed (tests/install-test-deps.sh)")
        return 0
    if not pfh.spfguard_built():
        print("1..0 # SKIP filter/spfguard not built (%s)" % pfh.spfguard_path())
        return 0
    if valgrind and not os.access(VALGRIND, os.X_OK):
        print("1..0 # SKIP valgrind is not installed (tests/install-test-deps.sh)")
        return 0
    if valgrind and sanitized(pfh.spfguard_path()):
        print("1..0 # SKIP spfguard is built with the sanitizers (valgrind runs on "
              "the plain build)")
        return 0
    install_signal_handlers()
    tap = Tap()
    work = tempfile.mkdtemp(prefix="spfg-mt.")
    try:
        with TestServer(ZONE, lifetime=300) as dns:
            conf = pfh.merge(BASE, {"dns": {"resolvers": [dns.addr]}})
            vlog = os.path.join(work, "valgrind.log")
            sg = pfh.Spfguard(conf, workdir=work, lifetime=600,
                              wrapper=valgrind_cmd(vlog) if valgrind else None)
            rc, out = sg.check_config()
            if not tap.ok(rc == 0, "spfguard -n accepts the configuration", out.strip()[:200]):
                tap.diag(out)
                return tap.done()
            try:
                sg.start(wait=120.0 if valgrind else 10.0)
            except pfh.SpfguardError as e:
                tap.ok(False, "spfguard starts", str(e)[:300])
                return tap.done()
            try:
                for script in scripts:
                    dns.clear_log()
                    rc, out, took = run_script(sg, script)
                    fail = [line[6:] for line in out.splitlines() if line.startswith("FAIL: ")]
                    if not tap.ok(rc == 0, "miltertest %s" % script,
                                  "%s (%.1f s)" % (fail[0][:200] if fail else "exit %s" % rc,
                                                   took) if rc != 0 else "%.1f s" % took):
                        tap.diag(out.strip()[-2000:])
                        tap.diag("spfguard (end):\n" +
                                 "\n".join(sg.stderr().splitlines()[-10:]))
                    if not sg.alive():
                        tap.ok(False, "spfguard still runs after %s" % script)
                        tap.diag(sg.stderr()[-3000:])
                        break
                    if script in AFTER:
                        time.sleep(0.1)     # let the last line be written
                        AFTER[script](tap, sg, dns)
                alive = sg.alive()
                tap.ok(alive, "spfguard still runs after every script")
                bad = [d for d in sg.decisions() if "_unparsed" in d]
                tap.ok(not bad, "every decision-log line is JSON", repr(bad[:2]))
            finally:
                rc, took = sg.stop(timeout=120.0 if valgrind else 7.0)
            tap.ok(rc == 0, "spfguard exits 0 on SIGTERM", "exit %s after %.1f s" % (rc, took))
            if valgrind:
                valgrind_report(tap, vlog, rc)
            check_no_crash(tap, sg.stderr())
    finally:
        if os.environ.get("SPFTEST_KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            sys.stderr.write("kept %s\n" % work)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
