#!/usr/bin/python3
"""rfc7208.py - run the openspf.org RFC 7208 conformance suite against
spfguardctl and print TAP.

  /usr/bin/python3 tests/rfc7208.py [--engine NAME] [--only TEXT]
  /usr/bin/python3 tests/rfc7208.py --diff ENGINE_A ENGINE_B

Environment:
  SPF_TESTSUITE  directory holding rfc7208-tests.yml
                 (default: ../shared/spf-testsuite next to the repository)
  SPFGUARDCTL    the spfguardctl binary (default: filter/spfguardctl)

Each scenario's zonedata is served by its own tests/dnsserver.py on
127.0.0.1; each test runs

  spfguardctl spf --ip HOST --helo HELO --from MAILFROM --dns 127.0.0.1:PORT
      --default-explanation DEFAULT --receiver receiver.example
      --timeout 2000 --json [--engine NAME]

and passes when the result is one of the test's results and, if the test
names an explanation, the explanation equals it.  --diff runs every test
under two engines and reports (without failing) where they differ.
"""

import argparse
import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spftest_lib as lib  # noqa: E402

WORKERS = 4
PER_QUERY_TIMEOUT_MS = 2000  # a loaded machine and a Python DNS server


def suite_path():
    d = os.environ.get("SPF_TESTSUITE") or os.path.join(
        os.path.dirname(lib.REPO), "shared", "spf-testsuite")
    return os.path.join(d, "rfc7208-tests.yml")


def load_suite(path):
    import yaml
    with open(path, "rb") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def txt_data(v):
    """A TXT/SPF value of the suite -> the server's "data"."""
    if isinstance(v, list):
        # one record, several strings.  No strings at all ("null text",
        # RDLENGTH 0) is not a valid TXT RR on the wire: resolvers reject
        # the whole answer (unbound: SERVFAIL).  The suite means "a record
        # with no text", so serve one empty string instead.
        return [str(x) for x in v] or [""]
    return str(v)


def convert_zone(zonedata):
    """The suite's zonedata -> dnsserver.py's JSON zone.

    SPF records are copied to TXT where a name has no TXT entry at all;
    {TXT: NONE} means no TXT record; TIMEOUT means the name never answers,
    except for the types that have records listed before it.
    """
    zone = {}
    for name, entries in (zonedata or {}).items():
        records = []
        has_txt = False
        timeout = False
        for e in entries or []:
            if e == "TIMEOUT":
                timeout = True
                break
            if not isinstance(e, dict) or len(e) != 1:
                raise ValueError("%s: unexpected zonedata entry %r" % (name, e))
            (rtype, value), = e.items()
            rtype = rtype.upper()
            if rtype == "TXT":
                has_txt = True
            if value == "NONE":
                continue
            if rtype in ("TXT", "SPF"):
                records.append({"type": rtype, "data": txt_data(value)})
            elif rtype == "MX":
                records.append({"type": "MX", "data": [int(value[0]), str(value[1])]})
            else:
                records.append({"type": rtype, "data": str(value)})
        if not has_txt:
            records += [{"type": "TXT", "data": r["data"]}
                        for r in records if r["type"] == "SPF"]
        node = {"records": records}
        if timeout:
            answered = sorted({r["type"] for r in records})
            if answered:
                node["timeout_except"] = answered
            else:
                node["timeout"] = True
        key = name.lower().rstrip(".")
        if key in zone:                      # same name spelt differently
            zone[key]["records"] += node["records"]
        else:
            zone[key] = node
    return zone


def want_list(result):
    return [result] if isinstance(result, str) else list(result)


class Case:
    def __init__(self, num, scenario, sidx, name, spec):
        self.num = num
        self.scenario = scenario
        self.sidx = sidx
        self.name = name
        self.spec = spec
        self.want = want_list(spec["result"])
        self.exp = spec.get("explanation")

    @property
    def label(self):
        return "%s/%s" % (self.scenario, self.name)

    def args(self, addr, engine):
        a = lib.spf_args(str(self.spec["host"]), str(self.spec["helo"]),
                         str(self.spec["mailfrom"]), addr,
                         ["--default-explanation", "DEFAULT",
                          "--receiver", "receiver.example",
                          "--timeout", str(PER_QUERY_TIMEOUT_MS)])
        if engine:
            a += ["--engine", engine]
        return a

    def judge(self, r):
        # exit status 0 too: under the sanitizers a leak or an error
        # report changes it even when the JSON came out right
        if r.rc != 0 or r.result not in self.want:
            return False
        if self.exp is not None and r.explanation != self.exp:
            return False
        return True


def got_text(r):
    s = r.describe()
    if r.rc != 0 and r.result is not None:
        s += " (exit status %s: %s)" % (r.rc, (r.err.strip().splitlines() or [""])[0][:120])
    if r.result is not None and r.explanation is not None:
        s += " exp=%s" % r.explanation
    return s


def want_text(c):
    s = ",".join(c.want)
    if c.exp is not None:
        s += " exp=%s" % c.exp
    return s


def main():
    ap = argparse.ArgumentParser(description="RFC 7208 conformance suite (TAP)")
    ap.add_argument("--engine", help="spfguardctl --engine NAME")
    ap.add_argument("--only", help="run only tests whose name contains this")
    ap.add_argument("--diff", nargs=2, metavar=("ENGINE_A", "ENGINE_B"),
                    help="compare two engines (never fails)")
    ap.add_argument("--jobs", type=int, default=WORKERS, help="parallel runs (max 4)")
    opts = ap.parse_args()
    jobs = max(1, min(WORKERS, opts.jobs))

    path = suite_path()
    if not os.path.exists(path):
        print("1..0 # SKIP rfc7208-tests.yml not found (set SPF_TESTSUITE)")
        return 0
    lib.install_signal_handlers()
    lib.require_ctl()
    scenarios = load_suite(path)

    cases = []
    zones = []
    for sidx, sc in enumerate(scenarios):
        zones.append(convert_zone(sc.get("zonedata")))
        for name, spec in (sc.get("tests") or {}).items():
            if opts.only and opts.only not in name:
                continue
            cases.append(Case(len(cases) + 1, sc.get("description", "scenario %d" % sidx),
                              sidx, name, spec))
    if not cases:
        print("1..0 # SKIP no test matches --only %s" % opts.only)
        return 0

    engines = list(opts.diff) if opts.diff else [opts.engine]
    servers = {}
    pool = None
    try:
        for sidx in sorted({c.sidx for c in cases}):
            servers[sidx] = lib.TestServer(zones[sidx], lifetime=600).start()

        # an engine the tool does not know: skip, do not fail
        probe = cases[0]
        for eng in engines:
            if eng is None:
                continue
            r = lib.run_ctl(probe.args(servers[probe.sidx].addr, eng), timeout=60)
            if r.unknown_engine():
                print("1..0 # SKIP engine %s not available: %s" % (
                    eng, lib.tap_escape((r.err or r.out).strip()[:200])))
                return 0

        tap = lib.Tap(plan=len(cases))

        def run(c):
            addr = servers[c.sidx].addr
            return [lib.run_ctl(c.args(addr, eng), timeout=60) for eng in engines]

        differ = []
        failed = []
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
        futures = [pool.submit(run, c) for c in cases]
        for c, fut in zip(cases, futures):
            rs = fut.result()
            if opts.diff:
                a, b = rs
                note = None
                if a.describe() != b.describe():
                    note = "differs: %s=%s %s=%s want %s" % (
                        engines[0], a.describe(), engines[1], b.describe(),
                        ",".join(c.want))
                    differ.append((c, a, b))
                tap.ok(True, c.label, note)
            else:
                r = rs[0]
                good = c.judge(r)
                if not good:
                    failed.append(c.label)
                tap.ok(good, c.label,
                       None if good else "got %s want %s" % (got_text(r), want_text(c)))

        if opts.diff:
            tap.diag("%d of %d results differ between %s and %s" % (
                len(differ), len(cases), engines[0], engines[1]))
            for c, a, b in differ:
                tap.diag("  %s: %s=%s %s=%s want %s%s" % (
                    c.label, engines[0], a.describe(), engines[1], b.describe(),
                    ",".join(c.want),
                    "" if c.judge(a) == c.judge(b) else
                    " (right: %s)" % (engines[0] if c.judge(a) else engines[1])))
        elif failed:
            tap.diag("%d of %d tests failed" % (len(failed), len(cases)))
        return 0 if opts.diff else (1 if failed else 0)
    except KeyboardInterrupt:
        print("Bail out! interrupted")
        return 130
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        lib.kill_children()
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    sys.exit(main())
