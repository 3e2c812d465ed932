"""decision_log_fixture.py - a real decision log, made through Postfix.

    from decision_log_fixture import make_decision_log, why_not_runnable

    why = why_not_runnable()            # None, or why it cannot run (SKIP)
    path, sent = make_decision_log(workdir)

make_decision_log() starts the test DNS server (tests/dnsserver.py),
spfguard ($SPFGUARD, or the binary given) and a private Postfix
(tests/e2e/postfix.py) on 127.0.0.1, sends a known mix of mail with
XCLIENT, stops spfguard (so that every line is written) and returns the
decision log's path (in workdir, which the caller owns) and `sent`: one
dict per decision line, in the order sent.  Tests compute what they
expect from `sent`; nothing about the mix is hard-coded elsewhere.

The mix, in two groups at least a second apart (a time filter can split
them): SPF pass, fail (IPv4 and, where Postfix has IPv6, IPv6), softfail
(tagged), temperror (the TXT never answers: tempfail), a trusted client
(no SPF check), a client on a DNS blocklist (testbl: reject) and one
whose blocklist answers SERVFAIL (sfbl: unknown, accepted), an SPF fail
to a recipient of a monitor-mode policy set (accepted, would reject), and
hostile senders: "<script>alert(1)</script>"@..., an <img onerror>, and
control characters in the sender and the HELO.

Each entry of `sent`:
    label, group (1 or 2), t0 and t1 (time.time() around the session),
    sender, rcpts, client_ip (as logged), helo,
    action, would, rule, result (the deciding SPF result, None when SPF
    was not checked), mode ("enforce" or "monitor"), code (the RCPT
    reply), queue_id (Postfix's, for delivered mail, else None),
    lists ({list: status} of the blocklist results other than clean).

Every answer is checked as it comes (the RCPT code) and the log is checked
against `sent` at the end (one line per entry, same action, would, rule,
result, mode and queue id); a difference raises FixtureError, so a test
never compares its tool against a log that is not what it thinks.  So do
a spfguard that does not exit 0 or that prints a sanitizer report.

Needs root, postfix and python3-dnslib (why_not_runnable() says which is
missing) and a built spfguard.  Takes about 8 s (the temperror deadline
and spfguard's stop: libmilter looks at its stop flag every 5 s).
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))

import postfix as pfh  # noqa: E402
from postfix import Postfix, Spfguard, smtp_session  # noqa: E402
from spftest_lib import crash_lines, PYTHON, TestServer  # noqa: E402

AUTHSERV = "mx.test.example"
HELO = "mail.client.example"          # not in the zone: HELO SPF none
DEST = "user@dest.example"
WATCH = "user@watch.example"          # the monitor-mode policy set

ZONE = {
    "pass.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "fail.example": {"records": [{"type": "TXT", "data": "v=spf1 -all"}]},
    "fail6.example": {"records": [{"type": "TXT", "data": "v=spf1 ip4:192.0.2.0/24 -all"}]},
    "soft.example": {"records": [{"type": "TXT", "data": "v=spf1 ~all"}]},
    "temp.example": {"timeout": True},
    # testbl lists 192.0.2.66; sfbl cannot answer for 192.0.2.77
    "66.2.0.192.bl.test": {"records": [{"type": "A", "data": "127.0.0.2"}]},
    "77.2.0.192.sf.test": {"servfail": True},
}

CONF = {
    "dns": {"resolvers": [], "timeout_ms": 500},
    "spf": {"deadline_ms": 1000, "receiver": AUTHSERV, "helo_check": True},
    "headers": {"authserv_id": AUTHSERV, "tag_header": "X-Spfguard-Tag"},
    "mode": "enforce",
    "trusted_networks": ["127.0.0.0/8", "::1/128", "198.51.100.0/24"],
    "dnsbl": [{"name": "testbl", "zone": "bl.test", "codes": ["127.0.0.2"]},
              {"name": "sfbl", "zone": "sf.test"}],
    "rules": [
        {"name": "trusted", "match": {"client": "trusted"}, "action": "accept"},
        {"name": "blocklisted", "match": {"dnsbl": "testbl"}, "action": "reject"},
        {"name": "spf-fail", "match": {"spf": "fail"}, "action": "reject"},
        {"name": "spf-temp", "match": {"spf": "temperror"}, "action": "tempfail"},
        {"name": "spf-soft", "match": {"spf": ["softfail", "permerror"]}, "action": "tag"},
        {"name": "default", "action": "accept"},
    ],
    "policy_sets": [
        {"name": "watch", "recipient_domains": ["watch.example"], "mode": "monitor",
         "rules": [
             {"name": "watch-fail", "match": {"spf": "fail"}, "action": "reject"},
             {"name": "default", "action": "accept"},
         ]},
    ],
}

CODES = {"accept": 250, "tag": 250, "reject": 550, "tempfail": 451}

# (label, group, sender, client, what it must give:
#  action, would, rule, result, mode, lists); rcpts DEST unless said
MIX = [
    ("pass-1", 1, "p1@pass.example", "192.0.2.1", "accept", "default", "pass"),
    ("pass-2", 1, "p2@pass.example", "192.0.2.2", "accept", "default", "pass"),
    ("fail-1", 1, "f1@fail.example", "203.0.113.5", "reject", "spf-fail", "fail"),
    ("soft-1", 1, "s1@soft.example", "203.0.113.6", "tag", "spf-soft", "softfail"),
    ("trusted-1", 1, "t1@fail.example", "198.51.100.7", "accept", "trusted", None),
    ("temp-1", 1, "x1@temp.example", "192.0.2.9", "tempfail", "spf-temp", "temperror"),
    ("listed-1", 1, "l1@pass.example", "192.0.2.66", "reject", "blocklisted", "pass"),
    ("pass-3", 2, "p3@pass.example", "192.0.2.3", "accept", "default", "pass"),
    ("fail-2", 2, "f2@fail.example", "203.0.113.77", "reject", "spf-fail", "fail"),
    ("fail-v6", 2, "f6@fail6.example", "2001:db8:1::5", "reject", "spf-fail", "fail"),
    ("soft-2", 2, "s2@soft.example", "192.0.2.4", "tag", "spf-soft", "softfail"),
    ("monitor-1", 2, "m1@fail.example", "203.0.113.8", "accept", "watch-fail", "fail"),
    ("unknown-1", 2, "u1@pass.example", "192.0.2.77", "accept", "default", "pass"),
    ("script", 2, '"<script>alert(1)</script>"@fail.example', "203.0.113.5",
     "reject", "spf-fail", "fail"),
    ("img", 2, '"<img src=x onerror=document.title=1>"@fail.example', "203.0.113.9",
     "reject", "spf-fail", "fail"),
    ("control", 2, '"ctl\x01\x1b[31m\x7f"@fail.example', "203.0.113.5",
     "reject", "spf-fail", "fail"),
]
HOSTILE_HELO = {"control": "evil\x01\x1b.example"}
RCPTS = {"monitor-1": [WATCH]}
LISTS = {"listed-1": {"testbl": "listed"}, "unknown-1": {"sfbl": "unknown"}}

class FixtureError(RuntimeError):
    pass


def why_not_runnable():
    """None when make_decision_log() can run here, else why not."""
    why = pfh.why_not_runnable()
    if why:
        return why
    if not pfh.spfguard_built():
        return "spfguard not built (%s)" % pfh.spfguard_path()
    r = subprocess.run([PYTHON, "-c", "import dnslib"], capture_output=True)
    if r.returncode != 0:
        return "python3-dnslib is not installed (tests/install-test-deps.sh)"
    return None


def _send(pf, label, group, sender, client, action, rule, result):
    rcpts = RCPTS.get(label, [DEST])
    monitor = label.startswith("monitor")
    addr = "IPV6:" + client if ":" in client else client
    helo = HOSTILE_HELO.get(label, HELO)
    t0 = time.time()
    s = smtp_session(pf.port, sender, rcpts, addr=addr, name="client.example", helo=helo)
    t1 = time.time()
    entry = {
        "label": label, "group": group, "t0": t0, "t1": t1, "sender": sender,
        "rcpts": rcpts, "client_ip": client, "helo": helo,
        "action": action, "would": "reject" if monitor else action, "rule": rule,
        "result": result, "mode": "monitor" if monitor else "enforce",
        "code": CODES[action], "queue_id": None, "lists": LISTS.get(label, {}),
    }
    return s, entry


def _check_log(lines, sent):
    """Every entry of sent has exactly one line saying what it should."""
    wrong = []
    if len(lines) != len(sent):
        wrong.append("%d lines for %d decisions" % (len(lines), len(sent)))
    for e in sent:
        ls = [d for d in lines if d.get("sender") == e["sender"]]
        if len(ls) != 1:
            wrong.append("%s: %d lines" % (e["label"], len(ls)))
            continue
        d = ls[0]
        spf = d.get("spf")
        got = {"action": d.get("action"), "would": d.get("would"), "rule": d.get("rule"),
               "result": spf.get("result") if isinstance(spf, dict) else None,
               "mode": d.get("mode"), "queue_id": d.get("queue_id"),
               "client_ip": d.get("client_ip"), "helo": d.get("helo"),
               "lists": {x.get("list"): x.get("status") for x in d.get("lists") or []
                         if x.get("status") != "clean"}}
        want = {k: e[k] for k in got}
        if got != want:
            wrong.append("%s: got %r want %r" % (e["label"], got, want))
    if wrong:
        raise FixtureError("the decision log is not what was sent: " + "; ".join(wrong))


def make_decision_log(workdir, spfguard=None, lifetime=300, diag=None):
    """Send the mix through Postfix and spfguard; returns (log path, sent).
    diag: a function given progress lines (e.g. Tap.diag)."""
    say = diag or (lambda _text: None)
    sent = []
    with TestServer(ZONE, lifetime=lifetime, workdir=workdir) as dns:
        conf = pfh.merge(CONF, {"dns": {"resolvers": [dns.addr]}})
        sg = Spfguard(conf, workdir=workdir, binary=spfguard, lifetime=lifetime)
        rc, out = sg.check_config()
        if rc != 0:
            raise FixtureError("spfguard -n refuses the fixture's config: " + out[-500:])
        sg.start()
        try:
            with Postfix(milter=sg.spec, lifetime=lifetime) as pf:
                last_group = 1
                for label, group, sender, client, action, rule, result in MIX:
                    if group != last_group:
                        time.sleep(1.2)     # a gap a time filter can use
                        last_group = group
                    s, e = _send(pf, label, group, sender, client, action, rule, result)
                    if s.xclient is not None and s.xclient.code == 501 and ":" in client:
                        say("no IPv6 in this Postfix: %s not sent" % label)
                        continue
                    r = s.rcpts[0] if s.rcpts else None
                    if r is None or r.code != e["code"]:
                        raise FixtureError("%s: RCPT answered %r, want %d (session %r)"
                                           % (label, r, e["code"], s))
                    if e["code"] == 250:
                        if s.data is None or s.data.code != 250 or not s.queue_id:
                            raise FixtureError("%s: not queued: %r" % (label, s))
                        e["queue_id"] = s.queue_id
                    sent.append(e)
        finally:
            rc, took = sg.stop()
        err = sg.stderr()
        if rc != 0 or crash_lines(err):
            raise FixtureError("spfguard exit %s after %.1f s: %s" % (rc, took, err[-2000:]))
    _check_log(sg.decisions(), sent)
    say("decision log %s: %d decisions" % (sg.decision_log, len(sent)))
    return sg.decision_log, sent


if __name__ == "__main__":
    import json
    import tempfile
    why = why_not_runnable()
    if why:
        sys.exit("cannot run: " + why)
    d = tempfile.mkdtemp(prefix="spfg-declog.")
    os.chmod(d, 0o755)
    p, s = make_decision_log(d, diag=print)
    print(p)
    print(json.dumps(s, indent=1))
