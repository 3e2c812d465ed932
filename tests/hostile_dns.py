#!/usr/bin/python3
"""hostile_dns.py - hostile DNS data against the SPF evaluator (TAP).

  /usr/bin/python3 tests/hostile_dns.py [--only TEXT] [-v]
      (SPFGUARDCTL: the binary, default filter/spfguardctl)

Each case is one run of

  spfguardctl spf --ip 192.0.2.77 --helo helo.example --from SENDER
      --dns 127.0.0.1:PORT --json --timeout 1000 --deadline 2000

against one tests/dnsserver.py whose zone holds every case's names: include
and redirect loops, include, MX, PTR and void-lookup bombs, CNAME chains and
loops, TXT records over 512 and 4,000 bytes and near the 64 KiB message
limit, hundreds of strings and records, non-ASCII, invalid UTF-8 and NUL
bytes, answers that arrive just under (or just over) the per-query timeout,
TCP answers trickled byte by byte, SERVFAIL and other error storms, answers
of the wrong type or for another name, malformed RDATA.

A case passes when the tool exits 0 with the RFC 7208 result (where the RFC
leaves it to DNS, as for a CNAME loop or a malformed answer, any of the
results a resolver may lead to: none or temperror), within the deadline (the
case's --deadline plus 0.75 s for the process), with no raw control or
non-ASCII byte in its JSON, and, where the case says so, with the number of
queries reaching the server bounded.  Memory: each run's peak RSS (GNU
time) stays within BASE + 16 MiB, BASE being a plain pass (+ 64 MiB under
AddressSanitizer, whose quarantine keeps freed memory).

Cases run 4 at a time; the whole script takes about 4 s.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spftest_lib as lib  # noqa: E402

IP = "192.0.2.77"
OTHER = "192.0.2.1"
HELO = "helo.example"
TIMEOUT_MS = 1000
DEADLINE_MS = 2000
SLACK_S = 0.75              # process start and exit, on top of the deadline
RSS_SLACK_KIB = 16 * 1024
# ASan's allocator never reuses freed memory at once (its quarantine), so
# only a looser bound holds there: one that memory growing with the square
# of a record's length still exceeds
RSS_SLACK_ASAN_KIB = 64 * 1024
WORKERS = 4
GNU_TIME = "/usr/bin/time"
REC = "v=spf1 ip4:%s -all" % IP
ANY_DNS = ("none", "temperror")     # where the RFC leaves it to DNS


def txt(data):
    return {"type": "TXT", "data": data}


def txt_hex(*parts):
    return {"type": "TXT", "hex": list(parts)}


def hx(s):
    return s.encode("latin-1").hex()


def long_record(size, ip=IP):
    """A valid record of about size bytes: ip4: terms that do not match,
    then ip4:ip and -all at the very end."""
    tail = " ip4:%s -all" % ip
    terms, i = [], 1
    while len("v=spf1 " + " ".join(terms) + tail) < size:
        terms.append("ip4:198.51.%d.%d" % (100 + i // 250, i % 250 + 1))
        i += 1
    return "v=spf1 " + " ".join(terms) + tail


class Case:
    def __init__(self, label, domain, zone, want, max_queries=None, extra=(),
                 deadline_ms=DEADLINE_MS, min_s=None, ip=IP, want_tcp=False,
                 check=None):
        self.label = label
        self.domain = domain
        self.zone = zone            # names -> node specs of this case
        self.want = (want,) if isinstance(want, str) else tuple(want)
        self.max_queries = max_queries
        self.extra = list(extra)
        self.deadline_ms = deadline_ms
        self.min_s = min_s
        self.ip = ip
        self.want_tcp = want_tcp
        self.check = check          # fn(json) -> None or a complaint
        self.res = None


def chain(prefix, n, last, kind="CNAME"):
    """prefix0 -> prefix1 -> ... -> prefix<n> (= last's records)."""
    z = {}
    for i in range(n):
        z["%s%d.example" % (prefix, i)] = [{"type": kind, "data": "%s%d.example" % (prefix, i + 1)}]
    z["%s%d.example" % (prefix, n)] = last
    return z


def exp_printable(j):
    e = j.get("explanation")
    if e is None:
        return None
    if any(not (0x20 <= ord(ch) < 0x7F) for ch in e):
        return "explanation carries control or non-ASCII characters: %r" % e
    return None


def cases():
    c = []
    add = c.append
    # --- loops and bombs -------------------------------------------------
    add(Case("include loop a -> b -> a: permerror", "iloop-a.example", {
        "iloop-a.example": [txt("v=spf1 include:iloop-b.example -all")],
        "iloop-b.example": [txt("v=spf1 include:iloop-a.example -all")]},
        "permerror", max_queries=11))
    add(Case("include of itself: permerror", "iself.example", {
        "iself.example": [txt("v=spf1 include:iself.example -all")]},
        "permerror", max_queries=11))
    add(Case("redirect to itself: permerror", "rself.example", {
        "rself.example": [txt("v=spf1 redirect=rself.example")]},
        "permerror", max_queries=11))
    add(Case("redirect loop a -> b -> a: permerror", "rloop-a.example", {
        "rloop-a.example": [txt("v=spf1 redirect=rloop-b.example")],
        "rloop-b.example": [txt("v=spf1 redirect=rloop-a.example")]},
        "permerror", max_queries=11))
    z = {}
    for i in range(50):
        z["deep%d.example" % i] = [txt("v=spf1 include:deep%d.example -all" % (i + 1))]
    z["deep50.example"] = [txt(REC)]
    add(Case("include chain 50 deep: permerror after 10 terms", "deep0.example", z,
             "permerror", max_queries=11))
    z = {"mxbomb.example": {"records": [txt("v=spf1 mx -all")] + [
        {"type": "MX", "data": [i, "mx%d.mxbomb.example" % i]} for i in range(40)]}}
    for i in range(40):
        z["mx%d.mxbomb.example" % i] = [{"type": "A", "data": "198.51.100.%d" % (i + 1)}]
    add(Case("mx with 40 MX names: permerror (more than 10)", "mxbomb.example", z,
             "permerror", max_queries=14))
    z = {"voidbomb.example": [txt("v=spf1 " + " ".join("a:v%d.voidbomb.example" % i
                                                         for i in range(9)) + " -all")]}
    add(Case("nine a: terms naming nothing: permerror at the third void lookup",
             "voidbomb.example", z, "permerror", max_queries=5))
    z = {"ptrbomb.example": [txt("v=spf1 ptr -all")],
         "77.2.0.192.in-addr.arpa": [{"type": "PTR", "data": "p%d.ptrbomb.example" % i}
                                      for i in range(60)]}
    for i in range(60):
        z["p%d.ptrbomb.example" % i] = [{"type": "A", "data": "198.51.100.9"}]
    # (none validates: the resolver may shuffle the 60, so which are the
    # first 10 is not known; the query count shows the limit)
    add(Case("ptr with 60 PTR names in the target domain: fail, at most 10 of "
             "them looked up", "ptrbomb.example", z, "fail", max_queries=12))

    # --- CNAME -----------------------------------------------------------
    add(Case("CNAME chain of 5 to the record: pass", "cn0.example",
             chain("cn", 5, [txt(REC)]), "pass"))
    add(Case("CNAME chain of 30: a DNS error (temperror), queries bounded",
             "cnlong0.example", chain("cnlong", 30, [txt(REC)]), "temperror",
             max_queries=20))
    add(Case("CNAME loop a -> b -> a: a DNS error (temperror)", "cloop-a.example", {
        "cloop-a.example": [{"type": "CNAME", "data": "cloop-b.example"}],
        "cloop-b.example": [{"type": "CNAME", "data": "cloop-a.example"}]},
        "temperror", max_queries=20))
    add(Case("CNAME to itself: temperror", "cself.example", {
        "cself.example": [{"type": "CNAME", "data": "cself.example"}]},
        "temperror", max_queries=20))
    add(Case("include: of a CNAME loop: temperror", "cinc.example", {
        "cinc.example": [txt("v=spf1 include:cinc-a.example -all")],
        "cinc-a.example": [{"type": "CNAME", "data": "cinc-b.example"}],
        "cinc-b.example": [{"type": "CNAME", "data": "cinc-a.example"}]},
        "temperror", max_queries=21))

    # --- size ------------------------------------------------------------
    add(Case("4,500-byte record (TCP): pass, -all at its end parsed", "big4k.example",
             {"big4k.example": [txt(long_record(4500))]}, "pass", want_tcp=True))
    add(Case("4,500-byte record not matching: fail", "big4kf.example",
             {"big4kf.example": [txt(long_record(4500, OTHER))]}, "fail", want_tcp=True))
    add(Case("60,000-byte record (near the 64 KiB message limit): pass", "big60k.example",
             {"big60k.example": [txt(long_record(60000))]}, "pass", want_tcp=True))
    add(Case("60,000-byte record not matching: fail", "big60kf.example",
             {"big60kf.example": [txt(long_record(60000, OTHER))]}, "fail", want_tcp=True))
    add(Case("record in %d one-byte strings: pass" % len(REC), "onebyte.example",
             {"onebyte.example": [txt([ch for ch in REC])]}, "pass"))
    add(Case("record in 402 strings (ip4: terms): pass", "strings.example",
             {"strings.example": [txt(["v=spf1 "] + ["ip4:198.51.100.%d " % (i % 250 + 1)
                                                     for i in range(400)]
                                      + ["ip4:%s -all" % IP])]}, "pass"))
    add(Case("300 TXT records, one of them SPF: pass", "manyrec.example",
             {"manyrec.example": [txt("junk %03d %s" % (i, "x" * 40)) for i in range(300)]
              + [txt(REC)]}, "pass", want_tcp=True))
    add(Case("300 TXT records, two of them SPF: permerror", "manyrec2.example",
             {"manyrec2.example": [txt("junk %03d" % i) for i in range(300)]
              + [txt(REC), txt("v=spf1 -all")]}, "permerror"))

    # --- bytes -----------------------------------------------------------
    add(Case("UTF-8 in a domain-spec: permerror", "utf8.example",
             {"utf8.example": [txt("v=spf1 a:caf\u00e9.example ip4:%s -all" % IP)]},
             "permerror"))
    add(Case("invalid UTF-8 (ff fe) as a term: permerror", "badutf.example",
             {"badutf.example": [txt_hex(hx("v=spf1 ip4:%s " % IP) + "fffe" + hx(" -all"))]},
             "permerror"))
    add(Case("NUL inside the record: permerror (not cut at the NUL into a pass)",
             "nul.example",
             {"nul.example": [txt_hex(hx("v=spf1 ip4:%s " % IP) + "00" + hx(" -all"))]},
             "permerror"))
    add(Case("NUL right after v=spf1: not an SPF record (none)", "nulv.example",
             {"nulv.example": [txt_hex(hx("v=spf1") + "00" + hx(" ip4:%s +all" % IP))]},
             "none"))
    add(Case("CR LF inside a term: permerror", "crlf.example",
             {"crlf.example": [txt("v=spf1 a:x\r\nX-Injected: yes ip4:%s -all" % IP)]},
             "permerror"))
    add(Case("binary TXT (NUL, ff, control bytes) beside the record: pass",
             "binother.example",
             {"binother.example": [txt_hex("00ff010d0a7f"), txt(REC)]}, "pass"))
    add(Case("exp= text with NUL, CR, LF, ff: fail, explanation printable or none",
             "exphostile.example", {
                 "exphostile.example": [txt("v=spf1 -all exp=exph.example")],
                 "exph.example": [txt_hex(hx("You are ") + "00ff0d0a" +
                                          hx("X-Injected: yes %{s}"))]},
             "fail", check=exp_printable))
    add(Case("exp= text of 300 one-byte strings with %{i} macros: fail, printable",
             "expmany.example", {
                 "expmany.example": [txt("v=spf1 -all exp=expm.example")],
                 "expm.example": [txt(["%{i}"[k % 4] for k in range(300)])]},
             "fail", check=exp_printable))

    # --- timing ----------------------------------------------------------
    add(Case("answer 800 ms late, timeout 1000: pass", "slow800.example",
             {"slow800.example": {"delay_ms": 800, "records": [txt(REC)]}},
             "pass", min_s=0.75))
    add(Case("answer 1300 ms late, timeout 1000: temperror at the timeout",
             "slow1300.example",
             {"slow1300.example": {"delay_ms": 1300, "records": [txt(REC)]}},
             "temperror", extra=["--deadline", "1000"], deadline_ms=1000, min_s=0.9))
    z = {}
    for i in range(6):
        nxt = ("include:trk%d.example -all" % (i + 1)) if i < 5 else ("ip4:%s -all" % IP)
        z["trk%d.example" % i] = {"delay_ms": 700, "records": [txt("v=spf1 " + nxt)]}
    add(Case("6 includes each answered 700 ms late, deadline 2500: temperror at the "
             "deadline", "trk0.example", z, "temperror",
             extra=["--deadline", "2500"], deadline_ms=2500, min_s=2.3))
    add(Case("TCP answer trickled 1 byte / 2 ms: pass", "trickle.example",
             {"trickle.example": {"truncate": True, "trickle_ms": 2, "records": [txt(REC)]}},
             "pass", want_tcp=True))
    add(Case("TCP answer trickled 1 byte / 100 ms (5 s): temperror at the timeout",
             "trickle100.example",
             {"trickle100.example": {"truncate": True, "trickle_ms": 100,
                                     "records": [txt(REC)]}},
             "temperror", min_s=0.9))

    # --- error storms ----------------------------------------------------
    z = {"sfinc.example": [txt("v=spf1 " + " ".join("include:sf%d.sfinc.example" % i
                                                    for i in range(10)) + " -all")]}
    for i in range(10):
        z["sf%d.sfinc.example" % i] = {"servfail": True}
    add(Case("10 includes answering SERVFAIL: temperror, retries bounded",
             "sfinc.example", z, "temperror", max_queries=12))
    add(Case("SERVFAIL on an MX host's address: temperror", "sfmx.example", {
        "sfmx.example": [txt("v=spf1 mx -all"), {"type": "MX", "data": [10, "m.sfmx.example"]}],
        "m.sfmx.example": {"servfail": True}}, "temperror", max_queries=12))
    for rc in ("REFUSED", "FORMERR", "NOTIMP"):
        add(Case("%s for the record: temperror, retries bounded" % rc,
                 "rc-%s.example" % rc.lower(),
                 {"rc-%s.example" % rc.lower(): {"rcode": rc}}, "temperror",
                 max_queries=12))

    # --- wrong answers ---------------------------------------------------
    add(Case("TXT query answered with A records: none", "wt-a.example",
             {"wt-a.example": {"any_type": True,
                               "records": [{"type": "A", "data": IP}]}}, "none"))
    add(Case("TXT query answered with an MX record: none", "wt-mx.example",
             {"wt-mx.example": {"any_type": True,
                                "records": [{"type": "MX", "data": [10, "mx.example"]}]}},
             "none"))
    add(Case("A and MX queries answered with TXT records: no match, fail", "wt-txt.example", {
        "wt-txt.example": [txt("v=spf1 a:wt-t.example mx:wt-t.example -all")],
        "wt-t.example": {"any_type": True, "records": [txt(IP)]}}, "fail"))
    add(Case("the record under another owner name: none", "wt-owner.example",
             {"wt-owner.example": {"owner": "elsewhere.example", "records": [txt(REC)]}},
             "none"))
    add(Case("TXT RDATA whose length byte runs past its end: none or temperror",
             "rd-txt.example",
             {"rd-txt.example": [{"type": "TXT", "rdata_hex": "ff" + hx("v=spf1 +all")}]},
             ANY_DNS))
    add(Case("TXT with empty RDATA: none or temperror", "rd-empty.example",
             {"rd-empty.example": [{"type": "TXT", "rdata_hex": ""}]}, ANY_DNS))
    add(Case("3-byte A RDATA for an a: term: no match (fail) or temperror",
             "rd-a.example", {
                 "rd-a.example": [txt("v=spf1 a:rd-a3.example -all")],
                 "rd-a3.example": [{"type": "A", "rdata_hex": "c00002"}]},
             ("fail", "temperror")))
    return c


# ---------------------------------------------------------------------------

_asan = None


def is_asan(path):
    """Is the binary built with AddressSanitizer?"""
    global _asan
    if _asan is None:
        try:
            with open(path, "rb") as f:
                _asan = b"__asan_init" in f.read()
        except OSError:
            _asan = False
    return _asan


class Run:
    def __init__(self, rc, out, err, elapsed, rss_kib):
        self.rc, self.out, self.err = rc, out, err
        self.elapsed, self.rss = elapsed, rss_kib
        self.json = None
        try:
            self.json = json.loads(out.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass

    @property
    def result(self):
        if self.rc != 0 or not isinstance(self.json, dict):
            return None
        return self.json.get("result")

    def describe(self):
        if self.rc is None:
            return "killed after %.1f s" % self.elapsed
        if self.result is None:
            first = (self.err.decode("utf-8", "replace").strip().splitlines() or [""])[0]
            return "exit %s: %s" % (self.rc, first[:160])
        return "%s (%s)" % (self.result, self.json.get("problem"))


_procs = set()
_plock = threading.Lock()


def run_spf(addr, sender, extra, ip=IP, limit=30.0):
    """spfguardctl spf; returns a Run with its own peak RSS.  The RSS comes
    from GNU time (-f %M): a child of this Python process would inherit
    its RSS as ru_maxrss at exec, a grandchild of the small time process
    does not."""
    cmd = [lib.spfguardctl()] + lib.spf_args(
        ip, HELO, sender, addr, ["--timeout", str(TIMEOUT_MS), "--deadline",
                                 str(DEADLINE_MS)] + list(extra))
    rss_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="hostile-dns-rss.")
        os.close(fd)
        cmd = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    with _plock:
        _procs.add(p)
    try:
        out, err = p.communicate(timeout=limit)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        rc = None
    elapsed = time.monotonic() - t0
    with _plock:
        _procs.discard(p)
    rss = None
    if rss_file is not None:
        try:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            rss = None
        os.unlink(rss_file)
    if rc is not None and rc < 0:
        rc = None
    return Run(rc, out, err, elapsed, rss)


def kill_group(p):
    try:
        os.killpg(p.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def kill_runs():
    with _plock:
        ps = list(_procs)
    for p in ps:
        if p.poll() is None:
            kill_group(p)


def clean_output(out):
    """The JSON text is printable ASCII (plus the final newline)."""
    return all(0x20 <= b < 0x7F for b in out.rstrip(b"\n"))


def queries_for(queries, c):
    names = {n.lower() for n in c.zone}
    suffixes = tuple("." + n for n in names)
    return [q for q in queries if len(q) == 3 and (q[1] in names or q[1].endswith(suffixes))]


def judge(tap, c, queries):
    r = c.res
    why = []
    if r.result not in c.want:
        why.append("got %s, want %s" % (r.describe(), "/".join(c.want)))
    limit = c.deadline_ms / 1000.0 + SLACK_S
    if r.elapsed > limit:
        why.append("took %.2f s (limit %.2f s)" % (r.elapsed, limit))
    if c.min_s is not None and r.elapsed < c.min_s:
        why.append("took %.2f s, expected the wait (>= %.2f s)" % (r.elapsed, c.min_s))
    if not clean_output(r.out):
        why.append("raw control or non-ASCII bytes in the output")
    mine = queries_for(queries, c)
    if c.max_queries is not None and len(mine) > c.max_queries:
        why.append("%d queries reached the server (max %d)" % (len(mine), c.max_queries))
    if c.want_tcp and not any(q[0] == "tcp" for q in mine):
        why.append("no TCP query")
    if c.check is not None and r.json is not None:
        w = c.check(r.json)
        if w:
            why.append(w)
    tap.ok(not why, c.label, "; ".join(why) if why else
           "%s in %.2f s, %d queries, peak RSS %s KiB" % (r.result, r.elapsed, len(mine), r.rss))


def main():
    lib.install_signal_handlers()
    lib.require_ctl()
    only = None
    if "--only" in sys.argv:
        only = sys.argv[sys.argv.index("--only") + 1]
    try:
        import dnslib  # noqa: F401
    except ImportError:
        print("1..0 # SKIP python3-dnslib is not installed (tests/install-test-deps.sh)")
        return 0
    all_cases = [c for c in cases() if only is None or only in c.label]
    zone = {"base.example": [txt(REC)]}
    for c in all_cases:
        for name, spec in c.zone.items():
            assert name not in zone, name
            zone[name] = spec
    tap = lib.Tap()
    t0 = time.monotonic()
    asan = is_asan(lib.spfguardctl())
    try:
        with lib.TestServer(zone, lifetime=120) as srv:
            base = run_spf(srv.addr, "u@base.example", [])
            if not tap.ok(base.result == "pass", "baseline: a plain pass",
                          base.describe()):
                return tap.done() or 1
            srv.clear_log()
            # each case uses only its own names; the server logs them all,
            # so the queries are attributed afterwards by name
            with concurrent.futures.ThreadPoolExecutor(WORKERS) as ex:
                futs = {ex.submit(run_spf, srv.addr, "user@" + c.domain, c.extra, c.ip): c
                        for c in all_cases}
                for f in futs:
                    futs[f].res = f.result()
            queries = srv.queries()
        for c in all_cases:
            judge(tap, c, queries)
        name = "memory: every run's peak RSS within baseline + %d MiB" % (RSS_SLACK_KIB // 1024)
        measured = [c for c in all_cases if c.res.rss is not None]
        if base.rss is None or not measured:
            tap.skip(name, "no GNU time (%s) to measure it" % GNU_TIME)
        else:
            worst = max(measured, key=lambda c: c.res.rss)
            text = "baseline %d KiB, largest %d KiB (%s)" % (base.rss, worst.res.rss,
                                                            worst.label)
            slack = RSS_SLACK_ASAN_KIB if asan else RSS_SLACK_KIB
            if asan:
                name = ("memory (AddressSanitizer build): every run's peak RSS within "
                        "baseline + %d MiB" % (slack // 1024))
            tap.ok(worst.res.rss <= base.rss + slack and len(measured) == len(all_cases),
                   name, text)
        if "-v" in sys.argv:
            for c in all_cases:
                tap.diag("%-60.60s %6.2f s %7s KiB" % (c.label, c.res.elapsed, c.res.rss))
        tap.diag("run time %.1f s" % (time.monotonic() - t0))
    except KeyboardInterrupt:
        print("Bail out! interrupted")
        return 130
    finally:
        kill_runs()
        lib.stop_all_servers()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
