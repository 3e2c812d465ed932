"""sendmail.py - end-to-end test harness: a throwaway Sendmail on loopback.

    from sendmail import Sendmail, why_not_runnable

    with Sendmail(milter="unix:/path/spfguard.sock") as sm:
        r = postfix.smtp_session(sm.port, sender=..., rcpts=[...])
        msg = sm.sink.wait_for(r.message_id)

Debian's sendmail-bin conflicts with postfix, which the other end-to-end
tests need, so Sendmail is never installed: fetch() downloads sendmail-bin,
sendmail-cf and libwrap0 (a library sendmail needs that a postfix system
lacks) with `apt-get download` into a cache directory
($SPFTEST_SENDMAIL_CACHE, default /var/cache/spfguard-tests/sendmail; later
runs use it without apt) and unpacks them there with `dpkg-deb -x`.  The
unpacked binary loses its setgid bit (it is run as root, and a setgid
binary would ignore LD_LIBRARY_PATH, which points at the unpacked
libwrap).

Sendmail (a context manager) makes a private instance in a directory under
/run/spfguard-tests (not under /tmp: Sendmail refuses a milter socket, and
an alias database, below a world-writable directory): a .mc file turned
into sendmail.cf by m4 with the unpacked cf/m4/cf.m4, its own queue
directory, alias file, hosts file, service switch (files only) and pid
file; the daemon on a free port of 127.0.0.1 only (no MSA on 587), no DNS
(nocanonify, ResolverOptions -DNSRCH -DEFNAMES, accept_unresolvable_domains,
hosts from files), delivery mode interactive (the reply to the final dot
comes after the relay accepted the message), every message relayed
(Sendmail lets a client on 127.0.0.1 relay) to an SmtpSink (postfix.py) via
SMART_HOST [127.0.0.1] and the sink's port in the mailers' A= arguments,
and, when milter= is given, INPUT_MAIL_FILTER(`spfguard', `S=..., F=T,
T=S:30s;R:60s;E:5m') - F=T tempfails mail when the filter is unavailable.

Sendmail, before it reads its configuration, wants a qualified name for
its host: with an unqualified hostname that neither /etc/hosts nor DNS
qualifies it logs "My unqualified host name (x) unknown; sleeping for
retry" and sleeps 60 s.  So it runs under `unshare --uts --mount` with the
hostname mx.test.example and, bind-mounted in that private mount namespace
only, a hosts file that names it and an nsswitch.conf with hosts: files (no
DNS query at all).  It runs as root in the foreground (`-bD`), its own
process group, label -L spfg-sendmail, SMTP traffic logged by -X to
DIR/traffic.log (there is no syslog here: Sendmail's own log goes
nowhere); it is stopped by SIGTERM to its pid (it passes it on to its
children), then SIGKILL to its process group, on leaving the with-block, on
an exception, at exit and on SIGTERM (spftest_lib.install_signal_handlers);
a watchdog process does the same if this process dies, or after `lifetime`
seconds.

Needs root, m4, apt-get (once) and unshare.  SPFTEST_KEEP=1 keeps the
directory.  `python3 sendmail.py --fetch` only fills the cache.

Run with --watchdog ... only as the harness's own helper process.
"""

import atexit
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import postfix as pfh  # noqa: E402
from postfix import SmtpSink, free_port, pid_alive  # noqa: E402

PYTHON = pfh.PYTHON
KEEP = pfh.KEEP
CACHE = os.environ.get("SPFTEST_SENDMAIL_CACHE") or "/var/cache/spfguard-tests/sendmail"
RUNBASE = "/run/spfguard-tests"
# sendmail-bin: the binary; sendmail-cf: the m4 files; libwrap0: a library
# it links that a system with postfix may lack (sendmail-base holds only
# Debian's scripts and /etc/mail files: not needed)
PACKAGES = ("sendmail-bin", "sendmail-cf", "libwrap0")
SM_BINARY = "usr/libexec/sendmail/sendmail"
CF_M4 = "usr/share/sendmail/cf/m4/cf.m4"
LIBDIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu",
           "lib/aarch64-linux-gnu", "usr/lib")
HOSTNAME = "mx.test.example"
UNSHARE = "/usr/bin/unshare"
M4 = "/usr/bin/m4"


class SendmailError(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# the packages

def _run(cmd, cwd=None, timeout=120):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C"))
    return r.returncode, (r.stdout + r.stderr).strip()


def unpacked_root():
    """The cache's unpacked tree if it is complete, else None."""
    root = os.path.join(CACHE, "root")
    if os.path.exists(os.path.join(root, ".complete")) and \
            os.path.isfile(os.path.join(root, SM_BINARY)):
        return root
    return None


def fetch():
    """The directory holding the unpacked packages (downloaded on first
    use).  Raises SendmailError saying why it cannot be had."""
    root = unpacked_root()
    if root:
        return root
    if os.geteuid() != 0:
        raise SendmailError("the Sendmail packages are not in %s and only root may "
                            "fetch them" % CACHE)
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SendmailError("no apt-get/dpkg-deb to fetch the Sendmail packages")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)          # one download at a time
        root = unpacked_root()
        if root:
            return root
        debs = os.path.join(CACHE, "debs")
        shutil.rmtree(debs, ignore_errors=True)
        os.makedirs(debs)
        # as root, without the _apt sandbox user (it could not write here)
        cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root"] + list(PACKAGES)
        rc, out = _run(cmd, cwd=debs)
        if rc != 0:
            # a fresh machine may have no package lists yet
            _run(["apt-get", "update", "-qq"], timeout=300)
            rc, out = _run(cmd, cwd=debs)
        if rc != 0:
            raise SendmailError("apt-get download %s failed: %s" % (
                " ".join(PACKAGES), out[-300:]))
        tmp = os.path.join(CACHE, "root.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        names = sorted(n for n in os.listdir(debs) if n.endswith(".deb"))
        for n in names:
            rc, out = _run(["dpkg-deb", "-x", os.path.join(debs, n), tmp])
            if rc != 0:
                raise SendmailError("dpkg-deb -x %s: %s" % (n, out[-300:]))
        binary = os.path.join(tmp, SM_BINARY)
        if not os.path.isfile(binary):
            raise SendmailError("no %s in %s" % (SM_BINARY, " ".join(names)))
        # run as root: setgid would make ld.so ignore LD_LIBRARY_PATH
        os.chmod(binary, 0o755)
        with open(os.path.join(tmp, ".complete"), "w") as f:
            f.write("\n".join(names) + "\n")
        old = os.path.join(CACHE, "root")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, old)
        return old


def lib_path(root):
    return ":".join(os.path.join(root, d) for d in LIBDIRS if os.path.isdir(os.path.join(root, d)))


def missing_libs(root):
    """Shared libraries the unpacked sendmail cannot find."""
    env = dict(os.environ, LD_LIBRARY_PATH=lib_path(root))
    r = subprocess.run(["ldd", os.path.join(root, SM_BINARY)], capture_output=True,
                       text=True, env=env, timeout=30)
    return [line.split()[0] for line in r.stdout.splitlines() if "not found" in line]


def why_not_runnable():
    """None if a private Sendmail can run here (fetching the packages if
    needed), else the reason (for a SKIP)."""
    if os.geteuid() != 0:
        return "a private Sendmail (daemon on a port, bind mounts) needs root"
    if not os.access(M4, os.X_OK):
        return "no m4 (packaging/debian-test-deps) to make sendmail.cf"
    if not os.access(UNSHARE, os.X_OK):
        return "no unshare (util-linux)"
    try:
        root = fetch()
    except (SendmailError, OSError, subprocess.SubprocessError) as e:
        return "cannot fetch Sendmail: %s" % e
    miss = missing_libs(root)
    if miss:
        return "the unpacked sendmail lacks %s" % ", ".join(miss)
    # the namespace Sendmail runs in (hostname, bind mounts), with `true`
    d = tempfile.mkdtemp(prefix="sendmail-check.")
    try:
        Sendmail.write_ns_files(d, HOSTNAME)
        r = subprocess.run(Sendmail.ns_cmd(["/bin/true"]), capture_output=True, text=True,
                           timeout=30, env=dict(os.environ, SM_DIR=d, SM_HOSTNAME=HOSTNAME))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if r.returncode != 0:
        return "cannot give Sendmail a private hostname and hosts file " \
            "(unshare --uts --mount, mount --bind): %s" % r.stderr.strip()[:200]
    return None


# ---------------------------------------------------------------------------
# watchdog

def start_watchdog(lifetime, pgid, rmtree=()):
    """A detached helper that, when this process is gone or `lifetime`
    seconds have passed, stops process group pgid (SIGTERM, then SIGKILL)
    and, if this process is gone, removes the directories rmtree."""
    cmd = [PYTHON, os.path.abspath(__file__), "--watchdog", "--parent", str(os.getpid()),
           "--lifetime", str(int(lifetime)), "--pgid", str(pgid)]
    for d in rmtree:
        cmd += ["--rmtree", d]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _watchdog_main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchdog", action="store_true")
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--lifetime", type=float, required=True)
    ap.add_argument("--pgid", type=int, required=True)
    ap.add_argument("--rmtree", action="append", default=[])
    a = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    end = time.monotonic() + a.lifetime
    while time.monotonic() < end and pid_alive(a.parent) and pfh.group_pids(a.pgid):
        time.sleep(0.5)
    if pfh.group_pids(a.pgid):
        _kill_group(a.pgid, signal.SIGTERM)
        t = time.monotonic() + 3
        while pfh.group_pids(a.pgid) and time.monotonic() < t:
            time.sleep(0.2)
        _kill_group(a.pgid, signal.SIGKILL)
    if a.rmtree and not KEEP and not pid_alive(a.parent):
        time.sleep(0.5)
        for d in a.rmtree:
            shutil.rmtree(d, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------------
# Sendmail

MC = """\
divert(-1)
# written by tests/e2e/sendmail.py
divert(0)dnl
include(`{cf_m4}')dnl
VERSIONID(`spfguard e2e test')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{hostname}')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confSERVICE_SWITCH_FILE', `{d}/service.switch')dnl
define(`confHOSTS_FILE', `{d}/hosts')dnl
define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
define(`ALIAS_FILE', `{d}/aliases')dnl
define(`HELP_FILE', `{d}/helpfile')dnl
define(`STATUS_FILE', `{d}/statistics')dnl
define(`QUEUE_DIR', `{d}/queue')dnl
define(`confPID_FILE', `{d}/sendmail.pid')dnl
define(`confDELIVERY_MODE', `interactive')dnl
define(`confTO_IDENT', `0s')dnl
define(`confTO_CONNECT', `10s')dnl
define(`confTO_INITIAL', `10s')dnl
define(`SMART_HOST', `[127.0.0.1]')dnl
define(`RELAY_MAILER_ARGS', `TCP $h {sink}')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {sink}')dnl
define(`SMTP_MAILER_ARGS', `TCP $h {sink}')dnl
define(`SMTP8_MAILER_ARGS', `TCP $h {sink}')dnl
define(`DSMTP_MAILER_ARGS', `TCP $h {sink}')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Family=inet, Name=MTA')dnl
{milter}{extra}MAILER(`smtp')dnl
"""


class Sendmail:
    """A private Sendmail.  Attributes once started: dir, port (SMTP), sink
    (SmtpSink), pid, cf (path of sendmail.cf), start_seconds."""

    def __init__(self, milter=None, lifetime=300, hostname=HOSTNAME, extra_mc="",
                 milter_flags="F=T, T=S:30s;R:60s;E:5m", rmtree_also=()):
        """milter: "unix:/path" or "inet:PORT@127.0.0.1" (libmilter's form),
        or None; extra_mc: more .mc lines (before MAILER); rmtree_also:
        directories the watchdog removes too if the test process dies."""
        self.rmtree_also = list(rmtree_also)
        self.milter = milter
        self.milter_flags = milter_flags
        self.extra_mc = extra_mc
        self.lifetime = lifetime
        self.hostname = hostname
        self.dir = None
        self.port = None
        self.sink = None
        self.proc = None
        self.pid = None
        self.watchdog = None
        self.start_seconds = None
        self.root = None

    # -- setup -------------------------------------------------------------
    def mc_text(self):
        milter = ""
        if self.milter:
            milter = "INPUT_MAIL_FILTER(`spfguard', `S=%s, %s')dnl\n" % (self.milter,
                                                                        self.milter_flags)
        return MC.format(cf_m4=os.path.join(self.root, CF_M4), hostname=self.hostname,
                         d=self.dir, sink=self.sink.port, port=self.port, milter=milter,
                         extra=self.extra_mc)

    def _write(self, name, text, mode=0o644):
        p = os.path.join(self.dir, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def _env(self):
        return dict(os.environ, LD_LIBRARY_PATH=lib_path(self.root), LC_ALL="C")

    @staticmethod
    def write_ns_files(d, hostname):
        """The files bind-mounted on /etc/hosts and /etc/nsswitch.conf in
        Sendmail's mount namespace only."""
        for name, text in (
                ("etc-hosts", "127.0.0.1 localhost %s\n::1 localhost %s\n" % (hostname, hostname)),
                ("etc-nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\n"
                 "hosts: files\nnetworks: files\nservices: files\nprotocols: files\n")):
            p = os.path.join(d, name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o644)

    @staticmethod
    def ns_cmd(argv):
        """argv run in a private UTS and mount namespace, with the test's
        hostname and hosts/nsswitch files (see the module's doc); unshare
        and sh exec, so the pid is argv's."""
        script = ('hostname "$SM_HOSTNAME" && mount --bind "$SM_DIR/etc-hosts" /etc/hosts && '
                  'mount --bind "$SM_DIR/etc-nsswitch.conf" /etc/nsswitch.conf && exec "$@"')
        return [UNSHARE, "--uts", "--mount", "--", "/bin/sh", "-c", script, "sh"] + list(argv)

    def start(self, wait=15.0):
        t0 = time.monotonic()
        self.root = fetch()
        os.makedirs(RUNBASE, mode=0o755, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="sendmail.", dir=RUNBASE)
        os.chmod(self.dir, 0o755)
        _live.add(self)
        self.sink = SmtpSink(os.path.join(self.dir, "sink"), lifetime=self.lifetime).start()
        self.port = free_port()
        os.makedirs(os.path.join(self.dir, "queue"), mode=0o700)
        self._write("service.switch", "hosts files\naliases files\n")
        self._write("hosts", "127.0.0.1 localhost\n127.0.0.1 %s\n" % self.hostname)
        self.write_ns_files(self.dir, self.hostname)
        self._write("aliases", "postmaster: root\n")
        mc = self._write("sendmail.mc", self.mc_text())
        r = subprocess.run([M4, mc], capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or "Xspfguard" not in r.stdout and self.milter:
            raise SendmailError("m4 %s failed: %s" % (mc, r.stderr[-500:]))
        self.cf = self._write("sendmail.cf", r.stdout)
        self.m4_warnings = r.stderr.strip()
        binary = os.path.join(self.root, SM_BINARY)
        env = dict(self._env(), SM_HOSTNAME=self.hostname, SM_DIR=self.dir)
        # the alias database (sendmail -bi = newaliases)
        r = subprocess.run(self.ns_cmd([binary, "-C", self.cf, "-bi"]), capture_output=True,
                           text=True, timeout=30, env=env, cwd=self.dir)
        if r.returncode != 0:
            raise SendmailError("sendmail -bi: %s" % (r.stdout + r.stderr)[-500:])
        cmd = self.ns_cmd([binary, "-C", self.cf, "-bD", "-L", "spfg-sendmail",
                        "-X", os.path.join(self.dir, "traffic.log")])
        self._out = open(os.path.join(self.dir, "sendmail.out"), "ab")
        # unshare and sh exec: the pid is sendmail's, and its process group
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._out, env=env, cwd=self.dir,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.watchdog = start_watchdog(self.lifetime, self.pid,
                                       rmtree=[self.dir] + self.rmtree_also)
        # Sendmail writes its pid file once its socket listens (waiting for
        # that, not probing the port, spares a session that would reach the
        # milter)
        end = time.monotonic() + wait
        while self._pidfile_pid() != self.pid:
            if self.proc.poll() is not None or time.monotonic() > end:
                rc = self.proc.poll()
                out = self.output()
                self.stop()
                raise SendmailError("sendmail did not start (exit %s): %s" % (rc, out[-1500:]))
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - t0
        return self

    def _pidfile_pid(self):
        try:
            with open(os.path.join(self.dir, "sendmail.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    # -- teardown ----------------------------------------------------------
    def stop(self):
        """SIGTERM to the daemon (it stops its children), then SIGKILL to
        whatever is left of its process group; stop the sink and the
        watchdog; remove the directory (unless SPFTEST_KEEP)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            end = time.monotonic() + 2
            while pfh.group_pids(self.pid) and time.monotonic() < end:
                time.sleep(0.05)
            if pfh.group_pids(self.pid):
                _kill_group(self.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
            try:
                self._out.close()
            except Exception:
                pass
        if self.sink is not None:
            self.sink.stop()
        if self.watchdog is not None:
            pfh.stop_watchdog(self.watchdog)
            self.watchdog = None
        _live.discard(self)
        if self.dir is not None:
            if KEEP:
                sys.stderr.write("kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- reading -----------------------------------------------------------
    def _read(self, name):
        if self.dir is None:
            return ""
        try:
            with open(os.path.join(self.dir, name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def output(self):
        """What sendmail printed (it logs to syslog, which is not here)."""
        return self._read("sendmail.out")

    def traffic(self):
        """The -X log: every SMTP line in and out, prefixed by the pid."""
        return self._read("traffic.log")

    def queue_files(self):
        try:
            return sorted(os.listdir(os.path.join(self.dir, "queue")))
        except OSError:
            return []


_live = set()


def _cleanup_all():
    for s in list(_live):
        try:
            s.stop()
        except Exception:
            pass


atexit.register(_cleanup_all)


def queue_id_of(reply):
    """The queue id in Sendmail's reply to the final dot ("250 2.0.0
    4B2Ab1cd012345 Message accepted for delivery"), or None."""
    if reply is None or reply.text is None:
        return None
    m = re.match(r"(?:\d\.\d+\.\d+\s+)?([0-9A-Za-z]{8,20}) Message accepted", reply.text)
    return m.group(1) if m else None


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--watchdog":
        sys.exit(_watchdog_main(sys.argv[1:]))
    if len(sys.argv) > 1 and sys.argv[1] == "--fetch":
        try:
            print(fetch())
        except SendmailError as e:
            sys.stderr.write("sendmail.py: %s\n" % e)
            sys.exit(1)
        sys.exit(0)
    print(__doc__)
