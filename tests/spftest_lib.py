"""spftest_lib.py - helpers shared by spfguard's Python test scripts.

  TestServer   runs tests/dnsserver.py on 127.0.0.1 (a free port) with a zone
               given as a dict, rewrites the zone, reads the query log, and
               stops the server by its pid (also at exit and on SIGTERM).
  run_ctl()    runs spfguardctl and decodes its JSON output.
  Tap          prints a TAP stream.
  crash_lines() / check_no_crash()  find what a sanitizer, the stack
               protector or a fatal signal left in a daemon's stderr.
  scratch_dir()  a test's working directory, kept with SPFTEST_KEEP=1.

Scripts run with /usr/bin/python3 (dnslib and yaml come from Debian).
"""

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DNSSERVER = os.path.join(HERE, "dnsserver.py")

_live = set()
_live_lock = threading.Lock()


def spfguardctl():
    """The spfguardctl to test: $SPFGUARDCTL, else filter/spfguardctl."""
    return os.environ.get("SPFGUARDCTL") or os.path.join(REPO, "filter", "spfguardctl")


def tap_escape(s):
    """Text safe inside a TAP line (no newline, no '#' directive)."""
    return str(s).replace("\\", "\\\\").replace("#", "\\#").replace("\n", "\\n").replace("\r", "\\r")


class Tap:
    """A TAP stream; planned up front or at the end (done())."""

    def __init__(self, plan=None):
        self.n = 0
        self.failed = 0
        self.lock = threading.Lock()
        if plan is not None:
            self.emit("1..%d" % plan)
        self.planned = plan is not None

    @staticmethod
    def emit(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def ok(self, cond, desc, comment=None):
        with self.lock:
            self.n += 1
            line = "%s %d - %s" % ("ok" if cond else "not ok", self.n, tap_escape(desc))
            if comment:
                line += " # " + tap_escape(comment)
            if not cond:
                self.failed += 1
            self.emit(line)
        return cond

    def skip(self, desc, why):
        with self.lock:
            self.n += 1
            self.emit("ok %d - %s # SKIP %s" % (self.n, tap_escape(desc), tap_escape(why)))

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            self.emit("# " + line)

    def done(self):
        if not self.planned:
            self.emit("1..%d" % self.n)
        return 1 if self.failed else 0


# what ASan/LSan/UBSan, the stack protector and a fatal signal write
CRASH = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|stack smashing|"
                   r"Segmentation|Aborted")


def crash_lines(text):
    """The lines of a daemon's stderr that report a crash or a sanitizer finding."""
    return [line for line in text.splitlines() if CRASH.search(line)]


def check_no_crash(tap, text, desc="no sanitizer report or crash in spfguard's log"):
    """One TAP line: nothing in text (a daemon's stderr) reports a crash; on
    failure the end of text follows as a diagnostic."""
    bad = crash_lines(text)
    if not tap.ok(not bad, desc, bad[0][:200] if bad else None):
        tap.diag(text[-4000:])
    return not bad


@contextlib.contextmanager
def scratch_dir(prefix, parent=None):
    """A new directory for one test run, mode 0755 (Postfix, Sendmail and
    spfguard's own user read it); removed afterwards unless SPFTEST_KEEP is
    set, then its path goes to stderr."""
    work = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(work, 0o755)
    try:
        yield work
    finally:
        if os.environ.get("SPFTEST_KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            sys.stderr.write("kept %s\n" % work)


def write_json_atomic(path, data):
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


class TestServer:
    """tests/dnsserver.py in a private temporary directory.

        with TestServer(zone) as srv:
            srv.port, srv.addr ("127.0.0.1:PORT"), srv.set_zone(z),
            srv.queries() -> [(proto, qname, qtype)], srv.clear_log()
    """

    def __init__(self, zone, lifetime=300, workdir=None, port=0):
        """port: listen on this port (0: a free one)."""
        self.want_port = port
        self.dir = tempfile.mkdtemp(prefix="spfdns.", dir=workdir)
        self.zone_path = os.path.join(self.dir, "zone.json")
        self.log_path = os.path.join(self.dir, "query.log")
        self.port_path = os.path.join(self.dir, "port")
        self.proc = None
        self.port = None
        write_json_atomic(self.zone_path, zone)
        open(self.log_path, "w").close()
        self.lifetime = lifetime

    def start(self, wait=10.0):
        self.proc = subprocess.Popen(
            [PYTHON, DNSSERVER, "--zone", self.zone_path, "--port", str(self.want_port),
             "--portfile", self.port_path, "--querylog", self.log_path,
             "--lifetime", str(self.lifetime)],
            stdin=subprocess.DEVNULL)
        with _live_lock:
            _live.add(self)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if os.path.exists(self.port_path):
                with open(self.port_path) as f:
                    txt = f.read().strip()
                if txt.isdigit():
                    self.port = int(txt)
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("dnsserver.py did not start (zone %s)" % self.zone_path)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def set_zone(self, zone):
        """Replace the zone; the server re-reads it at its next query."""
        write_json_atomic(self.zone_path, zone)

    def queries(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return [tuple(line.split()) for line in f if line.strip()]

    def clear_log(self):
        # the server appends (O_APPEND), so truncating in place is safe
        with open(self.log_path, "w"):
            pass

    def stop(self):
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass
        with _live_lock:
            _live.discard(self)
        if self.dir and os.environ.get("SPFTEST_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def stop_all_servers():
    kill_children()
    with _live_lock:
        servers = list(_live)
    for s in servers:
        s.stop()


atexit.register(stop_all_servers)


def _on_term(signum, frame):
    # SystemExit unwinds the with-blocks; atexit stops what remains
    raise SystemExit(128 + signum)


def install_signal_handlers():
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)


class CtlResult:
    def __init__(self, rc, out, err, elapsed):
        self.rc = rc
        self.out = out
        self.err = err
        self.elapsed = elapsed      # wall clock, seconds
        self.json = None
        if out:
            try:
                self.json = json.loads(out)
            except ValueError:
                self.json = None

    @property
    def result(self):
        # a result counts only if the tool exited 0: under the sanitizers
        # an error or a leak report changes the status after the JSON
        if self.rc != 0 or not isinstance(self.json, dict):
            return None
        return self.json.get("result")

    @property
    def explanation(self):
        return self.json.get("explanation") if isinstance(self.json, dict) else None

    def unknown_engine(self):
        text = (self.out + self.err).lower()
        return self.rc != 0 and "engine" in text and (
            "unknown" in text or "not" in text or "unsupported" in text)

    def describe(self):
        """Short text of what happened, for TAP comments."""
        if self.result is not None:
            return self.result
        if self.rc not in (0, None) and isinstance(self.json, dict):
            first = (self.err.strip().splitlines() or [""])[0]
            return "%s but exit status %s: %s" % (self.json.get("result"), self.rc,
                                                  first[:160])
        if self.rc is None:
            return "hung (killed)"
        first = (self.err.strip().splitlines() or self.out.strip().splitlines() or [""])[0]
        return "error(rc=%s%s)" % (self.rc, (": " + first[:160]) if first else "")


_children = set()
_stopping = threading.Event()


def run_ctl(args, timeout=60):
    """Run spfguardctl with args; never raises for the tool's failures."""
    cmd = [spfguardctl()] + list(args)
    t0 = time.monotonic()
    with _live_lock:
        if _stopping.is_set():
            return CtlResult(None, "", "not run: stopping", 0.0)
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        except OSError as e:
            return CtlResult(127, "", str(e), time.monotonic() - t0)
        _children.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    finally:
        with _live_lock:
            _children.discard(p)
    elapsed = time.monotonic() - t0
    return CtlResult(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                     elapsed)


def kill_children():
    """Kill the spfguardctl runs still going (by pid); start no more."""
    with _live_lock:
        _stopping.set()
        kids = list(_children)
    for p in kids:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def spf_args(ip, helo, sender, dns, extra=()):
    return ["spf", "--ip", ip, "--helo", helo, "--from", sender, "--dns", dns,
            "--json"] + list(extra)


def require_ctl():
    """Exit with a TAP 'Bail out!' when spfguardctl cannot be run."""
    ctl = spfguardctl()
    if not (os.path.isfile(ctl) and os.access(ctl, os.X_OK)):
        print("Bail out! spfguardctl not found or not executable: %s (set SPFGUARDCTL)" % ctl)
        sys.exit(99)
    return ctl
