"""postfix.py - end-to-end test harness: a throwaway Postfix on loopback.

    from postfix import Postfix, Spfguard, smtp_session

    with Postfix(milter="inet:127.0.0.1:%d" % port) as pf:
        r = smtp_session(pf.port, addr="192.0.2.1", helo="mail.example",
                         sender="a@example", rcpts=["b@dest.example"])
        r.rcpts[0].code == 250; msg = pf.sink.wait_for(r.message_id)

Postfix (a context manager) makes a private instance in a temporary
directory: its own config_directory (main.cf and master.cf written here),
queue_directory and data_directory; smtpd on a free port of 127.0.0.1 with
chroot off, XCLIENT allowed from 127.0.0.0/8, smtpd_milters, milter
protocol 6 and milter_default_action = tempfail; no local delivery: every
message is relayed to an SMTP sink (SmtpSink, 127.0.0.1, a thread of this
process) that saves each message, so tests read the delivered headers.
Postfix's own DNS use is off (numeric relayhost, smtp_dns_support_level =
disabled, no client name lookups).  The log goes to DIR/maillog through
postlogd.  It is started with `postfix -c DIR start` and stopped as
`postfix stop` does it, by SIGTERM to its master's pid (without the 1 s
sleep of postfix-script), on leaving the with-block, on an exception, at
exit and on SIGTERM (spftest_lib.install_signal_handlers); a watchdog
process stops it if this process dies without doing so, or after
`lifetime` seconds.

Spfguard runs filter/spfguard in the foreground on a loopback port with a
config written from a Python dict (libconfig text by to_libconfig()), and
stops it by its pid (SIGTERM, then SIGKILL after 7 s: libmilter looks at
its stop flag every 5 s).

smtp_session() is the client: XCLIENT (ADDR, NAME, HELO, LOGIN) first, then
EHLO/HELO, MAIL, RCPT..., DATA; it returns every reply.

Needs root (Postfix's master runs as root) and the postfix package
(tests/install-test-deps.sh).  Set SPFTEST_KEEP=1 to keep the directories.

Run with --watchdog ... only as the harness's own helper process.
"""

import atexit
import email.utils
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import spftest_lib  # noqa: E402

PYTHON = spftest_lib.PYTHON
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
KEEP = os.environ.get("SPFTEST_KEEP") is not None


# ---------------------------------------------------------------------------
# small helpers

def free_port():
    """A TCP port of 127.0.0.1 that was free a moment ago, taken below
    Linux's ephemeral range (32768-60999) so that the client ports of
    other connections cannot take it before the server binds it."""
    import random
    for _ in range(50):
        port = random.randrange(20000, 32000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_accepts(port, host="127.0.0.1", timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """Is the process there (a zombie awaiting its reaper counts as gone:
    Postfix's master is a daemon, reaped by init whenever init does)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2:].split()[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return True


def group_pids(pgid):
    """Live (not zombie) processes of process group pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return out


def why_not_runnable():
    """None if Postfix tests can run here, else the reason (for a SKIP)."""
    if not os.path.exists(POSTFIX) or not os.path.exists("/usr/lib/postfix/sbin/master"):
        return "postfix is not installed (run tests/install-test-deps.sh as root)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    try:
        import pwd
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


def spfguard_path():
    """The daemon to test: $SPFGUARD, else next to $SPFGUARDCTL, else
    filter/spfguard of this checkout."""
    p = os.environ.get("SPFGUARD")
    if p:
        return p
    ctl = os.environ.get("SPFGUARDCTL")
    if ctl:
        return os.path.join(os.path.dirname(ctl), "spfguard")
    return os.path.join(REPO, "filter", "spfguard")


def spfguard_built():
    p = spfguard_path()
    return os.path.isfile(p) and os.access(p, os.X_OK)


def skip_reason():
    """None if an end-to-end test of spfguard through Postfix can run here
    (root, Postfix, a built filter/spfguard, python3-dnslib for the test
    DNS server), else the reason, for "1..0 # SKIP reason"."""
    return why_not_runnable() or daemon_skip_reason()


def daemon_skip_reason():
    """The same for a test of the daemon alone (a built filter/spfguard and
    the test DNS server's python3-dnslib; no Postfix)."""
    if not spfguard_built():
        return "filter/spfguard not built (%s)" % spfguard_path()
    try:
        import dnslib  # noqa: F401  (tests/dnsserver.py needs it)
    except ImportError:
        return "python3-dnslib is not installed (run tests/install-test-deps.sh)"
    return None


# ---------------------------------------------------------------------------
# watchdog: stops what the harness started if the harness cannot

_watchdogs = set()


def start_watchdog(lifetime, postfix_conf=None, pids=(), rmtree=None):
    """A detached helper that, when this process is gone or `lifetime`
    seconds have passed, stops the Postfix of postfix_conf (by its master's
    pid), SIGKILLs pids and removes rmtree.  Returns its Popen; kill it (by
    its pid) once the harness has cleaned up itself."""
    cmd = [PYTHON, os.path.abspath(__file__), "--watchdog",
           "--parent", str(os.getpid()), "--lifetime", str(int(lifetime))]
    if postfix_conf:
        cmd += ["--postfix-conf", postfix_conf]
    for p in pids:
        cmd += ["--pid", str(p)]
    if rmtree:
        cmd += ["--rmtree", rmtree]
    w = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    _watchdogs.add(w)
    return w


def stop_watchdog(w):
    if w is None:
        return
    if w.poll() is None:
        try:
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        w.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    _watchdogs.discard(w)


def _master_pid(conf_dir):
    """The pid of the master of the instance in conf_dir, or None."""
    try:
        q = subprocess.run([POSTCONF, "-c", conf_dir, "-h", "queue_directory"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
        with open(os.path.join(q, "pid", "master.pid")) as f:
            pid = int(f.read().split()[0])
        return pid if pid > 1 else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _watchdog_main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchdog", action="store_true")
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--lifetime", type=float, required=True)
    ap.add_argument("--postfix-conf")
    ap.add_argument("--pid", type=int, action="append", default=[])
    ap.add_argument("--rmtree")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    end = time.monotonic() + a.lifetime
    while time.monotonic() < end and pid_alive(a.parent):
        time.sleep(0.5)
    if a.postfix_conf:
        pid = _master_pid(a.postfix_conf)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
            t = time.monotonic() + 5
            while pid and pid_alive(pid) and time.monotonic() < t:
                time.sleep(0.2)
            if pid and pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    for pid in a.pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if a.rmtree and not KEEP:
        time.sleep(0.5)
        shutil.rmtree(a.rmtree, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------------
# the SMTP sink

class Message:
    """One message the sink received."""

    def __init__(self, path, d):
        self.path = path
        self.mail_from = d["mail_from"]
        self.rcpts = d["rcpts"]
        self.helo = d.get("helo")
        self.raw = d["data"]            # str (latin-1 decoded bytes), CRLF
        self.time = d.get("time")
        head = self.raw.split("\r\n\r\n", 1)[0]
        self.headers = []               # [(name, value)], in order, unfolded
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + "\r\n" + line)
            elif ":" in line:
                n, v = line.split(":", 1)
                self.headers.append((n, v.lstrip(" ")))

    def get_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def get(self, name):
        v = self.get_all(name)
        return v[0] if v else None

    @staticmethod
    def unfold(v):
        return re.sub(r"\r?\n[ \t]+", " ", v)

    def message_id(self):
        v = self.get("Message-ID")
        return v.strip() if v else None

    def __repr__(self):
        return "<Message from=%r rcpts=%r %d headers>" % (self.mail_from, self.rcpts,
                                                         len(self.headers))


class SmtpSink:
    """A small SMTP server on 127.0.0.1 that saves each message to dir as
    NNNNNN.json ({mail_from, rcpts, helo, data, time}).  Threads of this
    process; it ends with stop() or after lifetime seconds."""

    def __init__(self, directory, lifetime=900, reply_rcpt=None):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.lifetime = lifetime
        self.reply_rcpt = reply_rcpt    # fn(addr) -> reply line or None
        self.sock = None
        self.port = None
        self._n = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(32)
        s.settimeout(0.2)
        self.sock = s
        self.port = s.getsockname()[1]
        self._end = time.monotonic() + self.lifetime
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass

    def _loop(self):
        while not self._stop.is_set() and time.monotonic() < self._end:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._session, args=(c,), daemon=True).start()
        self.stop()

    def _save(self, d):
        with self._lock:
            self._n += 1
            n = self._n
        path = os.path.join(self.dir, "%06d.json" % n)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(d, f)
        os.replace(tmp, path)

    def _session(self, c):
        c.settimeout(60)
        f = c.makefile("rb")

        def send(line):
            c.sendall(line.encode("latin-1") + b"\r\n")

        helo = None
        mail_from = None
        rcpts = []
        try:
            send("220 sink.test ESMTP")
            while not self._stop.is_set():
                line = f.readline(65536)
                if not line:
                    break
                line = line.decode("latin-1").rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                arg = line[len(verb):].strip()
                if verb in ("EHLO", "HELO"):
                    helo = arg
                    mail_from, rcpts = None, []
                    if verb == "EHLO":
                        send("250-sink.test")
                        send("250-8BITMIME")
                        send("250-SMTPUTF8")
                        send("250 ENHANCEDSTATUSCODES")
                    else:
                        send("250 sink.test")
                elif verb == "MAIL":
                    m = re.match(r"(?i)FROM:\s*<(.*?)>(\s|$)", arg) or \
                        re.match(r"(?i)FROM:\s*<(.*)>", arg)
                    mail_from = m.group(1) if m else arg[5:]
                    rcpts = []
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    m = re.match(r"(?i)TO:\s*<(.*)>", arg)
                    addr = m.group(1) if m else arg[3:]
                    r = self.reply_rcpt(addr) if self.reply_rcpt else None
                    if r:
                        send(r)
                    else:
                        rcpts.append(addr)
                        send("250 2.1.5 ok")
                elif verb == "DATA":
                    if mail_from is None or not rcpts:
                        send("503 5.5.1 no recipients")
                        continue
                    send("354 go ahead")
                    lines = []
                    while True:
                        dl = f.readline(1 << 20)
                        if not dl:
                            return
                        if dl in (b".\r\n", b".\n"):
                            break
                        if dl.startswith(b"."):
                            dl = dl[1:]
                        lines.append(dl)
                    data = b"".join(lines).decode("latin-1")
                    self._save({"mail_from": mail_from, "rcpts": rcpts, "helo": helo,
                                "data": data, "time": time.time()})
                    send("250 2.0.0 saved")
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    send("250 2.0.0 ok")
                elif verb == "NOOP":
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    break
                else:
                    send("502 5.5.2 not implemented")
        except OSError:
            pass
        finally:
            try:
                f.close()
                c.close()
            except OSError:
                pass

    # -- reading ---------------------------------------------------------
    def messages(self):
        out = []
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))
        except OSError:
            return out
        for n in names:
            p = os.path.join(self.dir, n)
            try:
                with open(p, encoding="utf-8") as fh:
                    out.append(Message(p, json.load(fh)))
            except (OSError, ValueError):
                pass
        return out

    def find(self, message_id):
        return [m for m in self.messages() if m.message_id() == message_id]

    def wait_for(self, message_id, timeout=15.0, count=1):
        """The messages carrying this Message-ID once `count` arrived, or
        what arrived by the timeout (a shorter list)."""
        end = time.monotonic() + timeout
        while True:
            found = self.find(message_id)
            if len(found) >= count or time.monotonic() >= end:
                return found
            time.sleep(0.05)


# ---------------------------------------------------------------------------
# Postfix

MASTER_CF = """\
# written by tests/e2e/postfix.py: every service chroot = n
{smtpd_addr} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    pass


class Postfix:
    """A private Postfix instance.  Attributes once started: dir, conf_dir,
    port (smtpd), sink (SmtpSink), maillog (path), start_seconds."""

    def __init__(self, milter=None, main=None, lifetime=900, hostname="mx.test.example"):
        self.milter = milter            # smtpd_milters value, or None
        self.extra_main = dict(main or {})
        self.lifetime = lifetime
        self.hostname = hostname
        self.dir = None
        self.port = None
        self.sink = None
        self.watchdog = None
        self.started = False
        self.start_seconds = None

    # -- configuration ---------------------------------------------------
    def main_cf(self):
        d = self.dir
        p = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(d, "spool"),
            "data_directory": os.path.join(d, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydomain": "test.example",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:5.1.1 local delivery disabled",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "regexp:" + os.path.join(self.conf_dir, "relay_domains"),
            "relayhost": "[127.0.0.1]:%d" % self.sink.port,
            "default_transport": "smtp",
            "inet_interfaces": "127.0.0.1",
            # all: XCLIENT ADDR=IPV6:... is refused (501) under ipv4 only
            "inet_protocols": "all",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP",
            "smtpd_peername_lookup": "no",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "100",
            "smtpd_hard_error_limit": "200",
            "smtpd_milters": self.milter or "",
            "non_smtpd_milters": "",
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "20s",
            "milter_content_timeout": "60s",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtp_connect_timeout": "5s",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "biff": "no",
            "append_dot_mydomain": "no",
            "delay_warning_time": "0",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "in_flow_delay": "0",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": d,
            "syslog_name": "postfix-test",
        }
        p.update(self.extra_main)
        return "".join("%s = %s\n" % (k, v) for k, v in p.items())

    # -- life ------------------------------------------------------------
    def start(self):
        why = why_not_runnable()
        if why:
            raise PostfixError(why)
        t0 = time.monotonic()
        self.dir = tempfile.mkdtemp(prefix="spfg-postfix.")
        os.chmod(self.dir, 0o755)       # the postfix user walks into it
        self.conf_dir = os.path.join(self.dir, "etc")
        os.mkdir(self.conf_dir)
        self._make_dirs()
        self.maillog = os.path.join(self.dir, "maillog")
        self.sink = SmtpSink(os.path.join(self.dir, "sink"), lifetime=self.lifetime).start()
        # the watchdog first: it covers a start that hangs or half-works
        self.watchdog = start_watchdog(self.lifetime, postfix_conf=self.conf_dir,
                                       rmtree=self.dir)
        _live.add(self)
        for attempt in range(3):
            self.port = free_port()
            self._write_config()
            open(os.path.join(self.dir, "spool", "quick-start"), "w").close()
            r = subprocess.run([POSTFIX, "-c", self.conf_dir, "start"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=60)
            if r.returncode == 0:
                break
            log = self.log()
            if "Address already in use" in log + r.stderr and attempt < 2:
                continue            # another test took the port meanwhile
            self.stop()
            raise PostfixError("postfix start failed (%d): %s%s\n%s" % (
                r.returncode, r.stdout, r.stderr, log[-3000:]))
        self.started = True
        end = time.monotonic() + 10
        while not port_accepts(self.port):
            if time.monotonic() > end:
                log = self.log()
                self.stop()
                raise PostfixError("smtpd does not listen on port %d\n%s" % (
                    self.port, log[-3000:]))
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - t0
        return self

    def _make_dirs(self):
        """The queue and data directories as `post-install create-missing`
        makes them; with them, a quick-start flag (written before each
        start) lets `postfix start` skip its integrity checks (~0.5 s)."""
        import grp
        import pwd
        pf_uid = pwd.getpwnam("postfix").pw_uid
        pd_gid = grp.getgrnam("postdrop").gr_gid
        spool = os.path.join(self.dir, "spool")
        os.mkdir(spool)
        os.chmod(spool, 0o755)
        for name in ("active", "bounce", "corrupt", "defer", "deferred", "flush",
                     "hold", "incoming", "private", "saved", "trace"):
            p = os.path.join(spool, name)
            os.mkdir(p)
            os.chown(p, pf_uid, 0)
            os.chmod(p, 0o700)
        for name, mode in (("maildrop", 0o730), ("public", 0o710)):
            p = os.path.join(spool, name)
            os.mkdir(p)
            os.chown(p, pf_uid, pd_gid)
            os.chmod(p, mode)
        os.mkdir(os.path.join(spool, "pid"))
        os.chmod(os.path.join(spool, "pid"), 0o755)
        data = os.path.join(self.dir, "data")
        os.mkdir(data)
        os.chown(data, pf_uid, 0)
        os.chmod(data, 0o700)

    def _write_config(self):
        self._write_file("relay_domains", "/./ OK\n")
        self._write_file("main.cf", self.main_cf())
        self._write_file("master.cf", MASTER_CF.format(smtpd_addr="127.0.0.1:%d" % self.port))

    def _write_file(self, name, text):
        """Write a configuration file dated 3 s back: Postfix does not read
        a table or main.cf changed in the last second, it waits (polling
        every 0.3 s) until it is older; this saves ~2 s per start."""
        path = os.path.join(self.conf_dir, name)
        with open(path, "w") as f:
            f.write(text)
        t = time.time() - 3
        os.utime(path, (t, t))

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "spool", "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def set_main(self, **params):
        """Change main.cf parameters and reload; waits until the master has
        reloaded (its log line) and every smtpd of the old configuration is
        gone."""
        self.extra_main.update({k: str(v) for k, v in params.items()})
        before = self.log().count("reload -- version")
        self._write_file("main.cf", self.main_cf())
        old = self._smtpd_pids()
        subprocess.run([POSTFIX, "-c", self.conf_dir, "reload"], capture_output=True,
                       timeout=30, check=True)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.log().count("reload -- version") > before and \
                    not (old & self._smtpd_pids()):
                return
            time.sleep(0.05)
        raise PostfixError("postfix reload did not finish")

    def _smtpd_pids(self):
        """Pids of this instance's smtpd processes (children of the master)."""
        m = self.master_pid()
        out = set()
        if not m:
            return out
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                comm = st[st.index("(") + 1:st.rindex(")")]
                ppid = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            if ppid == m and comm == "smtpd":
                out.add(int(d))
        return out

    def stop(self):
        if self.dir is None:
            return
        if self.started or self.master_pid():
            # what `postfix stop` does, without its first 1 s sleep: SIGTERM
            # to the master (it passes it on to its process group), wait,
            # SIGKILL after 7 s
            pid = self.master_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            else:
                try:
                    subprocess.run([POSTFIX, "-c", self.conf_dir, "stop"],
                                   stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=30)
                except subprocess.SubprocessError:
                    pass
            end = time.monotonic() + 7
            while pid and pid_alive(pid) and time.monotonic() < end:
                time.sleep(0.05)
            if pid and pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            # the master's children got its SIGTERM; let them finish
            end = time.monotonic() + 3
            while pid and group_pids(pid) and time.monotonic() < end:
                time.sleep(0.02)
            self.started = False
        if self.sink:
            self.sink.stop()
        stop_watchdog(self.watchdog)
        self.watchdog = None
        _live.discard(self)
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            sys.stderr.write("postfix.py: kept %s\n" % self.dir)
        self.dir = None

    def __enter__(self):
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- reading -----------------------------------------------------------
    def log(self):
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_for(self, queue_id):
        return "\n".join(line for line in self.log().splitlines()
                         if (" %s:" % queue_id) in line)

    def wait_log(self, pattern, timeout=10.0, start=0):
        """Wait until the maillog (from offset start) matches the regex."""
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            text = self.log()[start:]
            m = rx.search(text)
            if m or time.monotonic() >= end:
                return m
            time.sleep(0.05)

    def queue_empty(self):
        for q in ("incoming", "active", "deferred", "maildrop"):
            p = os.path.join(self.dir, "spool", q)
            for _root, _dirs, files in os.walk(p):
                if files:
                    return False
        return True


_live = set()


def _cleanup_all():
    for s in list(_live):
        try:
            s.stop()
        except Exception:
            pass
    for w in list(_watchdogs):
        stop_watchdog(w)


atexit.register(_cleanup_all)


# ---------------------------------------------------------------------------
# libconfig text from Python data

def _lc_value(v, indent):
    pad = "  " * indent
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    if isinstance(v, dict):
        inner = "".join("%s  %s = %s;\n" % (pad, k, _lc_value(x, indent + 1))
                        for k, x in v.items())
        return "{\n%s%s}" % (inner, pad)
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, dict) for x in v):     # a list of groups
            return "(\n%s\n%s)" % (",\n".join(pad + "  " + _lc_value(x, indent + 1)
                                             for x in v), pad)
        return "[ %s ]" % ", ".join(_lc_value(x, indent + 1) for x in v)
    raise TypeError("no libconfig form for %r" % (v,))


def to_libconfig(d):
    """A libconfig file's text from a dict: str, int, bool, float, dict (a
    group), a list of scalars (an array) or a list of dicts (a list)."""
    return "".join("%s = %s;\n" % (k, _lc_value(v, 0)) for k, v in d.items())


def merge(base, over):
    """A deep copy of base with over's keys applied (dicts merged, the rest
    replaced; a value None deletes the key)."""
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = json.loads(json.dumps(v))
    return out


# ---------------------------------------------------------------------------
# spfguard

class SpfguardError(RuntimeError):
    pass


SETPRIV = "/usr/bin/setpriv"


def die_with_me(cmd):
    """cmd, run so that it gets SIGKILL when this process dies (setpriv
    --pdeathsig, util-linux; it execs, so the pid stays the daemon's)."""
    if os.access(SETPRIV, os.X_OK):
        return [SETPRIV, "--pdeathsig", "KILL", "--"] + list(cmd)
    return list(cmd)


class Spfguard:
    """filter/spfguard in the foreground on 127.0.0.1:port.

        sg = Spfguard(conf_dict, port=N, workdir=D).start()
        sg.spec (Postfix smtpd_milters value), sg.stop(), sg.kill(),
        sg.decisions() -> list of JSON objects from the decision log,
        sg.stderr() -> its log text
    The config dict is written as libconfig; its "socket" and
    "decision_log" are set here."""

    def __init__(self, conf, port=None, workdir=None, binary=None, lifetime=900,
                 unix=None, dns=None, wrapper=None):
        """unix: a socket path (instead of a TCP port); conf may then set
        socket_mode and socket_group.  dns: "127.0.0.1:PORT" of the test
        DNS server (spftest_lib.TestServer.addr), put in dns.resolvers.
        wrapper: a command the daemon runs under (e.g. valgrind ...)."""
        self.binary = binary or spfguard_path()
        self.wrapper = list(wrapper or [])
        self.unix = unix
        self.port = None if unix else (port or free_port())
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="spfg-daemon.")
        tag = "unix-%d" % os.getpid() if unix else str(self.port)
        self.conf_path = os.path.join(self.dir, "spfguard-%s.conf" % tag)
        self.decision_log = os.path.join(self.dir, "decisions-%s.log" % tag)
        self.err_path = os.path.join(self.dir, "spfguard-%s.err" % tag)
        conf = merge(conf, {"socket": self.socket, "decision_log": self.decision_log})
        if dns is not None:
            conf = merge(conf, {"dns": {"resolvers": [dns]}})
        self.conf = conf
        with open(self.conf_path, "w") as f:
            f.write(to_libconfig(conf))
        self.proc = None
        self.lifetime = lifetime
        self._timer = None

    @property
    def spec(self):
        """The Postfix smtpd_milters value."""
        if self.unix:
            return "unix:" + self.unix
        return "inet:127.0.0.1:%d" % self.port

    @property
    def socket(self):
        """The libmilter (-p) form."""
        if self.unix:
            return "unix:" + self.unix
        return "inet:%d@127.0.0.1" % self.port

    def accepts(self):
        """Does the socket accept a connection?"""
        if not self.unix:
            return port_accepts(self.port)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect(self.unix)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def check_config(self):
        """spfguard -n -c CONF: (exit status, output)."""
        r = subprocess.run([self.binary, "-n", "-c", self.conf_path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def start(self, wait=10.0):
        self._err = open(self.err_path, "ab")
        self.proc = subprocess.Popen(
            die_with_me(self.wrapper +
                        [self.binary, "-f", "-c", self.conf_path, "-p", self.socket]),
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)
        _live_daemons.add(self)
        # bounded in time even if this process hangs
        self._timer = threading.Timer(self.lifetime, self.kill)
        self._timer.daemon = True
        self._timer.start()
        end = time.monotonic() + wait
        while not self.accepts():
            if self.proc.poll() is not None or time.monotonic() > end:
                rc = self.proc.poll()
                self.stop()
                raise SpfguardError("spfguard did not start (exit %s): %s" % (
                    rc, self.stderr()[-2000:]))
            time.sleep(0.02)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=7.0):
        """SIGTERM, wait up to timeout seconds, then SIGKILL.  Returns the
        exit status (negative: killed by that signal) and how long it took."""
        t0 = time.monotonic()
        p = self.proc
        rc = None
        if p is not None:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
            rc = p.returncode
        self._finish()
        return rc, time.monotonic() - t0

    def kill(self):
        """SIGKILL at once (a crash, as the MTA sees it)."""
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        self._finish()

    def _finish(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _live_daemons.discard(self)
        try:
            self._err.close()
        except Exception:
            pass

    def cleanup(self):
        """Stop, and remove the directory if this object made it."""
        self.stop()
        if self.own_dir and not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def stderr(self):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def decision_lines(self):
        try:
            with open(self.decision_log, encoding="utf-8", errors="replace") as f:
                return [line.rstrip("\n") for line in f if line.strip()]
        except OSError:
            return []

    def decisions(self):
        """The decision log as objects (a line that is not JSON gives
        {"_unparsed": line})."""
        out = []
        for line in self.decision_lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"_unparsed": line})
        return out


_live_daemons = set()


def _stop_daemons():
    for d in list(_live_daemons):
        try:
            d.kill()
        except Exception:
            pass


atexit.register(_stop_daemons)


# ---------------------------------------------------------------------------
# the SMTP client

class Reply:
    def __init__(self, code, text):
        self.code = code
        self.text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text

    @property
    def enhanced(self):
        m = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", self.text or "")
        return m.group(1) if m else None

    def __repr__(self):
        lines = (self.text or "").splitlines() or [""]
        more = " (+%d lines)" % (len(lines) - 1) if len(lines) > 1 else ""
        return "%s %s%s" % (self.code, lines[0], more)

    def __str__(self):
        return self.__repr__()


class RcptReply(Reply):
    def __init__(self, addr, code, text):
        Reply.__init__(self, code, text)
        self.addr = addr

    def __repr__(self):
        return "<%s> %s %s" % (self.addr, self.code, self.text)


class Session:
    """Every reply of one smtp_session(): greeting, xclient, helo, mail,
    rcpts (list of RcptReply), data_cmd (reply to DATA), data (reply to
    the final dot), message_id, error (text of an exception, if any)."""

    def __init__(self):
        self.greeting = self.xclient = self.helo = self.mail = None
        self.rcpts = []
        self.data_cmd = self.data = None
        self.message_id = None
        self.error = None
        self.elapsed = None

    @property
    def queue_id(self):
        if self.data is None:
            return None
        m = re.search(r"queued as ([0-9A-Za-z]+)", self.data.text)
        return m.group(1) if m else None

    def rcpt(self, addr):
        for r in self.rcpts:
            if r.addr == addr:
                return r
        return None

    def final(self):
        """The reply that decided the transaction: the first refused stage,
        else DATA's."""
        for r in [self.xclient, self.helo, self.mail]:
            if r is not None and r.code >= 400:
                return r
        if self.rcpts and all(r.code >= 400 for r in self.rcpts):
            return self.rcpts[0]
        return self.data or self.data_cmd

    def __repr__(self):
        return ("xclient=%r helo=%r mail=%r rcpts=%r data=%r%s" % (
            self.xclient, self.helo, self.mail, self.rcpts, self.data,
            (" error=%s" % self.error) if self.error else ""))


def make_message(sender, rcpts, headers=(), body="Test message.\r\n", message_id=None):
    """A message text (CRLF) with From, To, Subject, Date, Message-ID and the
    extra headers [(name, value)] (put first, as a forger would)."""
    mid = message_id or email.utils.make_msgid(domain="e2e.test")
    lines = ["%s: %s" % (n, v) for n, v in headers]
    lines += ["From: <%s>" % sender, "To: %s" % ", ".join("<%s>" % r for r in rcpts),
              "Subject: spfguard e2e", "Date: %s" % email.utils.formatdate(),
              "Message-ID: %s" % mid, ""]
    return "\r\n".join(lines) + "\r\n" + body, mid


class Client:
    """A step-by-step SMTP client for the unusual sessions (several
    transactions, a pause between commands).  Each method returns a Reply
    (never raises for SMTP answers; a broken connection gives a Reply with
    code None and the exception text)."""

    def __init__(self, port, timeout=60):
        self.c = smtplib.SMTP(timeout=timeout)
        code, text = self.c.connect("127.0.0.1", port)
        self.greeting = Reply(code, text)

    def cmd(self, verb, arg=""):
        try:
            return Reply(*self.c.docmd(verb, arg))
        except (smtplib.SMTPException, OSError) as e:
            return Reply(None, "%s: %s" % (type(e).__name__, e))

    def xclient(self, addr=None, name=None, helo=None, login=None):
        attrs = []
        for k, v in (("ADDR", addr), ("NAME", name), ("HELO", helo), ("LOGIN", login)):
            if v is not None:
                attrs.append("%s=%s" % (k, v))
        return self.cmd("XCLIENT", " ".join(attrs))

    def ehlo(self, name):
        return self.cmd("EHLO", name)

    def helo(self, name):
        return self.cmd("HELO", name)

    def mail(self, sender):
        return self.cmd("MAIL", "FROM:<%s>" % sender)

    def rcpt(self, addr):
        r = self.cmd("RCPT", "TO:<%s>" % addr)
        return RcptReply(addr, r.code, r.text)

    def rset(self):
        return self.cmd("RSET")

    def data(self, text):
        """DATA and the message; returns (reply to DATA, reply to the dot)."""
        d = self.cmd("DATA")
        if d.code != 354:
            return d, None
        payload = smtplib._fix_eols(text)
        payload = re.sub(r"(?m)^\.", "..", payload)
        if not payload.endswith("\r\n"):
            payload += "\r\n"
        try:
            self.c.send(payload.encode("utf-8") + b".\r\n")
            return d, Reply(*self.c.getreply())
        except (smtplib.SMTPException, OSError) as e:
            return d, Reply(None, "%s: %s" % (type(e).__name__, e))

    def close(self):
        try:
            self.c.docmd("QUIT")
        except (smtplib.SMTPException, OSError):
            pass
        try:
            self.c.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def smtp_session(port, sender, rcpts, addr=None, name=None, xhelo=None, login=None,
                 helo="client.test", ehlo=True, headers=(), body="Test message.\r\n",
                 data=True, timeout=60, raw_message=None, after_mail=None):
    """One SMTP session with the Postfix at 127.0.0.1:port.

    XCLIENT first (when addr/name/xhelo/login is given; Postfix answers it
    with a new greeting, and a HELO must follow), then EHLO (or HELO) helo,
    MAIL FROM:<sender> and RCPT TO:<r> for each r (raw text, no quoting
    done here), then DATA when a recipient was accepted and data is true.
    after_mail: a function called between MAIL and the first RCPT.
    Never raises for SMTP errors: every reply is in the returned Session."""
    s = Session()
    t0 = time.monotonic()
    try:
        c = Client(port, timeout=timeout)
    except (smtplib.SMTPException, OSError) as e:
        s.error = "%s: %s" % (type(e).__name__, e)
        s.elapsed = time.monotonic() - t0
        return s
    try:
        s.greeting = c.greeting
        if any(v is not None for v in (addr, name, xhelo, login)):
            s.xclient = c.xclient(addr, name, xhelo, login)
            if s.xclient.code != 220:
                return s
        s.helo = c.ehlo(helo) if ehlo else c.helo(helo)
        if s.helo.code != 250:
            return s
        s.mail = c.mail(sender)
        if s.mail.code != 250:
            return s
        if after_mail is not None:
            after_mail()
        for r in rcpts:
            s.rcpts.append(c.rcpt(r))
        if not data or not any(r.code == 250 for r in s.rcpts):
            return s
        if raw_message is not None:
            msg = raw_message
            m = re.search(r"(?im)^Message-ID:\s*(\S+)", raw_message)
            s.message_id = m.group(1) if m else None
        else:
            msg, s.message_id = make_message(sender, rcpts, headers, body)
        s.data_cmd, s.data = c.data(msg)
        return s
    finally:
        for r in [s.greeting, s.xclient, s.helo, s.mail, s.data_cmd, s.data] + s.rcpts:
            if r is not None and r.code is None and s.error is None:
                s.error = r.text
        s.elapsed = time.monotonic() - t0
        c.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--watchdog":
        sys.exit(_watchdog_main(sys.argv[1:]))
    print(__doc__)
