#!/usr/bin/python3
"""test_ctl_replay.py - `spfguardctl replay` over a real decision log (TAP).

The decision log comes from tests/e2e/decision_log_fixture.py (a known mix
of mail through Postfix and spfguard).  Replayed with the configuration
that made it, nothing changes; with softfail rejected instead of tagged,
exactly the softfail decisions change, tag -> reject, with the new rule and
reply; a blocklist the new configuration adds is reported as never looked
up; filters narrow what is replayed; --json gives the same counts; the
replay makes no DNS query (the test DNS server is gone by then).

    /usr/bin/python3 tests/e2e/test_ctl_replay.py

Skips (1..0 # SKIP) where the fixture cannot run (no Postfix, not root).
"""

import collections
import copy
import gzip
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import decision_log_fixture as fx  # noqa: E402
import postfix as pfh  # noqa: E402
from spftest_lib import install_signal_handlers, scratch_dir, spfguardctl, Tap  # noqa: E402


def ctl(*args, stdin=None):
    r = subprocess.run([spfguardctl()] + list(args), capture_output=True,
                       input=stdin, timeout=60)
    return r.returncode, r.stdout.decode("utf-8", "replace"), \
        r.stderr.decode("utf-8", "replace")


def write_conf(work, name, conf):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(pfh.to_libconfig(conf))
    return path


def summary_of(out):
    """The --json summary object (the last line)."""
    for line in reversed(out.splitlines()):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "summary" in j:
            return j["summary"], [json.loads(x) for x in out.splitlines()
                                  if x.strip() and "summary" not in json.loads(x)]
    return None, []


def main():
    why = fx.why_not_runnable()
    if why:
        print("1..0 # SKIP %s" % why)
        return 0
    if not pfh.spfguard_built():
        print("1..0 # SKIP filter/spfguard not built (%s)" % pfh.spfguard_path())
        return 0
    install_signal_handlers()
    tap = Tap()
    with scratch_dir("spfg-replay.") as work:
        log, sent = fx.make_decision_log(work, diag=tap.diag)
        run(tap, work, log, sent)
    return tap.done()


def run(tap, work, log, sent):
    n_rcpts = sum(len(e["rcpts"]) for e in sent)
    same = write_conf(work, "same.conf", fx.CONF)

    # the configuration that made the log: nothing changes
    rc, out, err = ctl("replay", "-c", same, "--json", log)
    summ, changes = summary_of(out)
    tap.ok(rc == 0 and summ is not None and summ["decisions"] == len(sent)
           and summ["recipients"] == n_rcpts and summ["changed"] == 0 and not changes,
           "the same configuration: %d decisions, %d recipients, none changes"
           % (len(sent), n_rcpts), (err or out)[-300:] if summ is None or rc else
           json.dumps(summ))
    want = collections.Counter()
    for e in sent:
        want[(e["would"], e["would"])] += len(e["rcpts"])
    got = collections.Counter({(t["from"], t["to"]): t["count"]
                               for t in (summ or {}).get("transitions", [])})
    tap.ok(got == want, "... and counts every action as itself",
           "got %s want %s" % (dict(got), dict(want)))

    # softfail rejected instead of tagged: exactly those decisions change
    strict = copy.deepcopy(fx.CONF)
    for r in strict["rules"]:
        if r["name"] == "spf-soft":
            r["name"] = "soft-reject"
            r["action"] = "reject"
            r["reply"] = "softfail from {domain} refused"
    new = write_conf(work, "strict.conf", strict)
    rc, out, err = ctl("replay", "-c", new, "--json", log)
    summ, changes = summary_of(out)
    soft = [e for e in sent if e["result"] == "softfail" and e["mode"] == "enforce"]
    tap.ok(rc == 0 and summ is not None and len(soft) >= 2
           and summ["changed"] == sum(len(e["rcpts"]) for e in soft),
           "softfail -> reject: %d recipients change" % sum(len(e["rcpts"]) for e in soft),
           json.dumps(summ))
    tap.ok(sorted(c["sender"] for c in changes) == sorted(e["sender"] for e in soft)
           and all(c["old"]["action"] == "tag" and c["old"]["rule"] == "spf-soft"
                   and c["new"]["action"] == "reject" and c["new"]["rule"] == "soft-reject"
                   and c["new"]["reply"]["code"] == 550
                   and c["new"]["reply"]["text"].startswith("softfail from soft.example")
                   for c in changes),
           "... each one tag (spf-soft) -> reject (soft-reject) with the new reply",
           json.dumps(changes)[:300])
    trans = {(t["from"], t["to"]): t["count"] for t in summ["transitions"]} if summ else {}
    tap.ok(trans.get(("tag", "reject")) == sum(len(e["rcpts"]) for e in soft),
           "... counted as tag -> reject", repr(trans))

    # the text output says the same to a person
    rc, out, err = ctl("replay", "-c", new, log)
    tap.ok(rc == 0 and "tag (spf-soft) -> reject (soft-reject)" in out
           and "would change" in out and "<script>" not in out.replace(
               "\\x", ""),
           "text output: the changed decisions and the counts",
           out[-400:])

    # a blocklist the log never looked up is named, not guessed
    more = copy.deepcopy(fx.CONF)
    more["dnsbl"] = more["dnsbl"] + [{"name": "newbl", "zone": "new.test"}]
    more["rules"].insert(1, {"name": "newbl", "match": {"dnsbl": "newbl"},
                             "action": "reject"})
    path = write_conf(work, "newbl.conf", more)
    rc, out, err = ctl("replay", "-c", path, "--json", log)
    summ, _ = summary_of(out)
    tap.ok(rc == 0 and summ is not None and summ["changed"] == 0
           and 'dnsbl "newbl"' in err,
           "a new blocklist: not listed in the replay, and the warning names it",
           err.strip()[:200])

    # filters: group 2 only (a time between the groups), one client
    # half way between the groups (they are sent at least a second apart)
    t_split = (max(e["t1"] for e in sent if e["group"] == 1)
               + min(e["t0"] for e in sent if e["group"] == 2)) / 2
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_split)) + \
        ".%03dZ" % int((t_split % 1) * 1000)
    g2 = [e for e in sent if e["group"] == 2]
    rc, out, err = ctl("replay", "-c", new, "--json", "--since", since, log)
    summ, _ = summary_of(out)
    tap.ok(rc == 0 and summ is not None and summ["decisions"] == len(g2),
           "--since: only the second group is replayed (%d)" % len(g2),
           json.dumps(summ))
    rc, out, err = ctl("replay", "-c", new, "--json", "--action", "tag", log)
    summ, _ = summary_of(out)
    tags = [e for e in sent if e["would"] == "tag"]
    tap.ok(rc == 0 and summ is not None and summ["decisions"] == len(tags)
           and summ["changed"] == sum(len(e["rcpts"]) for e in soft),
           "--action tag: the tagged decisions only (%d)" % len(tags), json.dumps(summ))

    # rotated and gzipped, and stdin
    gz = os.path.join(work, "decisions.log.1.gz")
    with open(log, "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read())
    rc, out, err = ctl("replay", "-c", new, "--json", gz)
    summ, _ = summary_of(out)
    tap.ok(rc == 0 and summ is not None and summ["decisions"] == len(sent),
           "a gzipped log replays the same", json.dumps(summ))
    with open(log, "rb") as f:
        data = f.read()
    rc, out, err = ctl("replay", "-c", new, "--json", "-", stdin=data)
    summ, _ = summary_of(out)
    tap.ok(rc == 0 and summ is not None and summ["decisions"] == len(sent),
           "the log on stdin replays the same", json.dumps(summ))

    # errors
    rc, out, err = ctl("replay", log)
    tap.ok(rc == 2, "no -c: usage error (2)", "rc %s" % rc)
    broken = os.path.join(work, "broken.conf")
    with open(broken, "w") as f:
        f.write("rules = ( { name = \"x\"; action = \"explode\"; } );\n")
    rc, out, err = ctl("replay", "-c", broken, log)
    tap.ok(rc == 1 and "broken.conf:1:" in err, "a broken configuration: 1 and file:line",
           err.strip()[:200])
    rc, out, err = ctl("replay", "-c", same, os.path.join(work, "none.log"))
    tap.ok(rc == 1, "a missing log: 1", "rc %s: %s" % (rc, err.strip()[:120]))


if __name__ == "__main__":
    sys.exit(main())
