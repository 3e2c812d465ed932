#!/usr/bin/python3
"""ctl_test.py - `spfguardctl test`: the whole policy on one envelope (TAP).

  /usr/bin/python3 tests/ctl_test.py      (SPFGUARDCTL: the binary,
                                           default filter/spfguardctl)

Against a private tests/dnsserver.py and a policy written here: SPF fail
and pass (replies, headers, the deciding rule and the trace), two
recipients in different policy sets, an authenticated client (no sender
lookup), a blocklisted client, greylisting against an empty store that is
never the daemon's, the null sender, and usage errors. --json output is
parsed and checked; the text output is checked for what an operator reads.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spftest_lib as lib  # noqa: E402

ZONE = {
    "fail.example": {"records": [{"type": "TXT",
                                  "data": "v=spf1 ip4:192.0.2.1 -all"}]},
    "pass.example": {"records": [{"type": "TXT",
                                  "data": "v=spf1 ip4:203.0.113.5 -all"}]},
    "soft.example": {"records": [{"type": "TXT", "data": "v=spf1 ~all"}]},
    # the client 198.51.100.9 on the blocklist bl.test
    "9.100.51.198.bl.test": {"records": [{"type": "A", "data": "127.0.0.2"}]},
}

POLICY = """
spf = { deadline_ms = 3000; receiver = "mx.test"; };
dns = { timeout_ms = 2000; };
headers = { authserv_id = "mx.test"; };
store = { backend = "lmdb"; path = "%(store)s"; };
greylist = { delay = 300; };
dnsbl = ( { name = "testbl"; zone = "bl.test"; } );
trusted_networks = [ "127.0.0.0/8" ];
rules = (
  { name = "trusted-client"; match = { client = "trusted"; }; action = "accept"; },
  { name = "authenticated"; match = { authenticated = true; }; action = "accept"; },
  { name = "listed"; match = { dnsbl = "testbl"; }; action = "reject"; },
  { name = "spf-fail"; match = { spf = "fail"; }; action = "reject"; },
  { name = "grey"; match = { spf = "softfail"; }; action = "greylist"; },
  { name = "default"; action = "accept"; }
);
policy_sets = ( { name = "strict"; recipient_domains = [ "strict.example" ];
  rules = ( { name = "only-pass"; match = { spf = [ "none", "neutral",
    "softfail" ]; }; action = "reject"; reply = "strict: {result} from {ip}"; } ); } );
"""


def main():
    lib.require_ctl()
    lib.install_signal_handlers()
    tap = lib.Tap()
    work = tempfile.mkdtemp(prefix="spfguard-ctltest.")
    store = os.path.join(work, "store")
    conf = os.path.join(work, "t.conf")
    with open(conf, "w") as f:
        f.write(POLICY % {"store": store})
    srv = lib.TestServer(ZONE).start()
    try:
        run(tap, srv, conf, store)
    finally:
        srv.stop()
        for root, dirs, files in os.walk(work, topdown=False):
            for n in files:
                os.unlink(os.path.join(root, n))
            for n in dirs:
                os.rmdir(os.path.join(root, n))
        os.rmdir(work)
    return tap.done()


def test(srv, conf, ip, helo, sender, rcpts=(), extra=(), json_out=True):
    args = ["test", "-c", conf, "--dns", srv.addr, "--ip", ip, "--helo", helo,
            "--from", sender]
    for r in rcpts:
        args += ["--rcpt", r]
    args += list(extra)
    if json_out:
        args.append("--json")
    return lib.run_ctl(args)


def decision_for(j, rcpt):
    for d in j["decisions"]:
        if rcpt in d["recipients"]:
            return d
    return None


def run(tap, srv, conf, store):
    # SPF fail: 550 5.7.23 at RCPT, not delivered, rule spf-fail, trace
    r = test(srv, conf, "192.0.2.99", "mail.fail.example", "ceo@fail.example",
             ["alice@example.org"])
    j = r.json if r.rc == 0 else None
    ok = (j is not None and len(j["recipients"]) == 1
          and j["recipients"][0]["refuse"] and j["recipients"][0]["code"] == 550
          and j["recipients"][0]["xcode"] == "5.7.23" and j["headers"] == [])
    tap.ok(ok, "fail: 550 5.7.23, no headers (not delivered)", r.describe() if not ok else None)
    d = decision_for(j, "alice@example.org") if j else None
    tap.ok(d is not None and d["rule"] == "spf-fail" and d["action"] == "reject"
           and d["spf_mfrom"]["result"] == "fail"
           and [t["rule"] for t in d["trace"]] == ["trusted-client", "authenticated",
                                                   "listed", "spf-fail"]
           and [t["matched"] for t in d["trace"]] == [False, False, False, True],
           "fail: decided by spf-fail, the trace lists the rules tried in order")

    # the text output says the same to a person
    r = test(srv, conf, "192.0.2.99", "mail.fail.example", "ceo@fail.example",
             ["alice@example.org"], json_out=False)
    out = r.out if r.rc == 0 else ""
    tap.ok("SPF MAIL FROM: fail" in out
           and "RCPT <alice@example.org>: 550 5.7.23 SPF fail: fail.example does not "
               "allow 192.0.2.99" in out
           and "decision: reject by rule spf-fail in set default" in out
           and "+ spf-fail: all conditions hold" in out
           and "- trusted-client: client 192.0.2.99 not in the client list" in out,
           "fail, text: the SPF result, the reply, the rule and the trace",
           out[:300] if not out else None)

    # SPF pass: accepted, Authentication-Results and Received-SPF
    r = test(srv, conf, "203.0.113.5", "mail.pass.example", "news@pass.example",
             ["alice@example.org", "bob@example.org"])
    j = r.json if r.rc == 0 else None
    hdrs = {h["name"]: h["value"] for h in j["headers"]} if j else {}
    tap.ok(j is not None and all(not x["refuse"] for x in j["recipients"])
           and hdrs.get("Authentication-Results") ==
           "mx.test; spf=pass smtp.mailfrom=news@pass.example"
           and hdrs.get("Received-SPF", "").startswith("pass ")
           and "client-ip=203.0.113.5;" in hdrs.get("Received-SPF", ""),
           "pass: both accepted, Authentication-Results and Received-SPF",
           r.describe() if j is None else json.dumps(hdrs)[:200])
    tap.ok(j is not None and len(j["decisions"]) == 1
           and j["decisions"][0]["recipients"] == ["alice@example.org", "bob@example.org"]
           and j["decisions"][0]["rule"] == "default",
           "pass: one decision for both recipients, rule default")

    # two policy sets in one transaction: softfail greylisted for one
    # recipient, refused by the strict set for the other
    r = test(srv, conf, "192.0.2.50", "h.soft.example", "x@soft.example",
             ["u@dest.example", "v@strict.example"])
    j = r.json if r.rc == 0 else None
    rc = {x["rcpt"]: x for x in j["recipients"]} if j else {}
    tap.ok(rc.get("u@dest.example", {}).get("code") == 451
           and rc["u@dest.example"]["xcode"] == "4.7.1"
           and "Greylisted" in rc["u@dest.example"]["text"]
           and rc.get("v@strict.example", {}).get("code") == 550
           and rc["v@strict.example"]["text"] == "strict: softfail from 192.0.2.50",
           "softfail: greylisted (first attempt, empty store) for one set, "
           "refused by the strict set for the other",
           json.dumps(rc)[:300])
    tap.ok(not os.path.exists(store),
           "the configured store was not touched (no %s)" % store)
    r2 = test(srv, conf, "192.0.2.50", "h.soft.example", "x@soft.example",
              ["u@dest.example"])
    tap.ok(r2.rc == 0 and r2.json["recipients"][0].get("code") == 451,
           "a second run is a first attempt again: nothing was remembered")

    # authenticated: accepted without looking the sender's domain up
    srv.clear_log()
    r = test(srv, conf, "192.0.2.99", "laptop", "ceo@fail.example",
             ["alice@example.org"], ["--auth", "alice"])
    names = [q[1] for q in srv.queries()]
    j = r.json if r.rc == 0 else None
    tap.ok(j is not None and not j["recipients"][0]["refuse"]
           and j["decisions"][0]["rule"] == "authenticated"
           and "fail.example" not in names,
           "authenticated: accepted by rule authenticated, no lookup of the "
           "sender's domain", "queries: %s" % names)

    # a blocklisted client: refused naming the list, the hit in the facts
    r = test(srv, conf, "198.51.100.9", "mx.pass.example", "news@pass.example",
             ["alice@example.org"])
    j = r.json if r.rc == 0 else None
    d = j["decisions"][0] if j else {}
    tap.ok(j is not None and j["recipients"][0].get("code") == 550
           and "blocked using testbl" in j["recipients"][0]["text"]
           and {"list": "testbl", "status": "listed"}.items()
           <= (d.get("lists") or [{}])[0].items(),
           "blocklisted client: 550 naming testbl, the hit in the decision",
           r.describe() if j is None else json.dumps(j["recipients"])[:200])

    # the null sender: the HELO identity decides
    r = test(srv, conf, "192.0.2.99", "fail.example", "<>", ["alice@example.org"])
    j = r.json if r.rc == 0 else None
    tap.ok(j is not None and j["recipients"][0].get("code") == 550
           and j["decisions"][0]["spf"]["identity"] == "helo",
           "null sender: HELO fail decides, 550",
           r.describe() if j is None else None)

    # usage errors: exit status 2
    for label, args in (("no --ip", ["test", "--helo", "h", "--from", "a@b"]),
                        ("bad --ip", ["test", "--ip", "300.1.1.1", "--helo", "h",
                                      "--from", "a@b"]),
                        ("unknown option", ["test", "--ip", "192.0.2.1", "--helo",
                                            "h", "--from", "a@b", "--bogus"])):
        r = lib.run_ctl(args)
        tap.ok(r.rc == 2, "usage error (%s): exit status 2" % label,
               "rc=%s" % r.rc)
    r = lib.run_ctl(["test", "-c", "/nonexistent.conf", "--ip", "192.0.2.1",
                     "--helo", "h", "--from", "a@b"])
    tap.ok(r.rc == 1 and "/nonexistent.conf" in r.err,
           "a configuration that does not load: exit status 1 and why",
           r.err.strip()[:120])


if __name__ == "__main__":
    sys.exit(main())
