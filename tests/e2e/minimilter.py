"""minimilter.py - a small milter (protocol version 6) in Python, for tests.

It is not spfguard: it exists to check the Postfix harness on its own (does
a milter's inserted header land where we think, which macros does Postfix
send at each stage, how does XCLIENT look to a milter) and to record what an
MTA sends.  It listens on 127.0.0.1 only, in threads of the test process,
and stops with it (stop(), or at the latest after `lifetime` seconds).

    with MiniMilter(actions) as m:
        m.port ... m.sessions() -> list of sessions, each a list of events
        {"cmd": "connect"|"helo"|"mail"|"rcpt"|"data"|"header"|"eoh"|"body"|
                "eom"|"abort"|"quit"|"unknown"|"quit_nc",
         "args": [...], "macros": {name: value}}   (macros sent for that stage)

`actions` maps a stage to what to answer:
    {"rcpt": lambda args, macros: ("reply", "550 5.7.1 no") or None,
     "eom_headers": [("insert", 0, "X-Name", "value"), ("add", "X-N", "v"),
                     ("change", 1, "X-Name", "")]}
Anything not listed is answered "continue" (and "accept" is never sent, so
every stage is seen).
"""

import socket
import struct
import threading
import time

# commands MTA -> milter
CMDS = {
    b"O": "optneg", b"D": "macro", b"C": "connect", b"H": "helo", b"M": "mail",
    b"R": "rcpt", b"T": "data", b"L": "header", b"N": "eoh", b"B": "body",
    b"E": "eom", b"A": "abort", b"Q": "quit", b"K": "quit_nc", b"U": "unknown",
}
# the stage a D (macro) packet belongs to
MACRO_STAGE = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt",
               b"T": "data", b"L": "header", b"N": "eoh", b"E": "eom",
               b"U": "unknown"}

SMFIF_ADDHDRS = 0x01
SMFIF_CHGHDRS = 0x10
SMFIF_QUARANTINE = 0x20


def _strings(data):
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "replace") for p in parts]


def _pack(code, data=b""):
    return struct.pack("!I", len(data) + 1) + code + data


class MiniMilter:
    def __init__(self, actions=None, lifetime=600):
        self.actions = actions or {}
        self.lifetime = lifetime
        self._sessions = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = None
        self.port = None
        self.connections = 0

    # -- life ---------------------------------------------------------
    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(32)
        s.settimeout(0.2)
        self.sock = s
        self.port = s.getsockname()[1]
        self._deadline = time.monotonic() + self.lifetime
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    @property
    def spec(self):
        """The Postfix smtpd_milters value."""
        return "inet:127.0.0.1:%d" % self.port

    def stop(self):
        self._stop.set()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def sessions(self):
        with self._lock:
            return [list(s) for s in self._sessions]

    def clear(self):
        with self._lock:
            self._sessions = []

    # -- protocol -----------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.stop()

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, conn):
        events = []
        with self._lock:
            self._sessions.append(events)
        pending_macros = {}
        conn.settimeout(60)
        try:
            while not self._stop.is_set():
                hdr = self._recv(conn, 4)
                if hdr is None:
                    break
                n = struct.unpack("!I", hdr)[0]
                if n < 1 or n > 1 << 20:
                    break
                pkt = self._recv(conn, n)
                if pkt is None:
                    break
                code, data = pkt[:1], pkt[1:]
                name = CMDS.get(code, "?" + code.decode("latin-1"))
                if code == b"O":
                    ver, act, proto = struct.unpack("!III", data[:12])
                    with self._lock:
                        events.append({"cmd": "optneg", "args": [ver, act, proto],
                                       "macros": {}})
                    # version 6, header actions, every step and every reply
                    conn.sendall(_pack(b"O", struct.pack(
                        "!III", 6, SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
                        0)))
                    continue
                if code == b"D":
                    stage = MACRO_STAGE.get(data[:1], data[:1].decode("latin-1"))
                    kv = _strings(data[1:])
                    pending_macros[stage] = dict(zip(kv[0::2], kv[1::2]))
                    continue
                if code == b"C":
                    host_end = data.index(b"\0")
                    host = data[:host_end].decode("utf-8", "replace")
                    fam = data[host_end + 1:host_end + 2].decode("latin-1")
                    args = [host, fam]
                    if fam in ("4", "6"):
                        port = struct.unpack("!H", data[host_end + 2:host_end + 4])[0]
                        addr = data[host_end + 4:].rstrip(b"\0").decode("latin-1")
                        args += [port, addr]
                    elif fam != "U":
                        args.append(data[host_end + 2:].rstrip(b"\0").decode("latin-1"))
                elif code == b"B":
                    args = [data.decode("utf-8", "replace")]
                else:
                    args = _strings(data)
                stage = name
                ev = {"cmd": name, "args": args,
                      "macros": pending_macros.pop(stage, {})}
                with self._lock:
                    events.append(ev)
                if code in (b"Q",):
                    break
                if code in (b"A", b"K"):
                    # no reply to abort; quit_nc: the MTA reuses the connection
                    pending_macros = {}
                    continue
                self._answer(conn, name, args, ev["macros"])
        except (OSError, ValueError, struct.error):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _answer(self, conn, name, args, macros):
        if name == "eom":
            for h in self.actions.get("eom_headers", []):
                if h[0] == "insert":
                    conn.sendall(_pack(b"i", struct.pack("!I", h[1]) + h[2].encode() +
                                       b"\0" + h[3].encode() + b"\0"))
                elif h[0] == "add":
                    conn.sendall(_pack(b"h", h[1].encode() + b"\0" + h[2].encode() + b"\0"))
                elif h[0] == "change":
                    conn.sendall(_pack(b"m", struct.pack("!I", h[1]) + h[2].encode() +
                                       b"\0" + h[3].encode() + b"\0"))
        fn = self.actions.get(name)
        verdict = fn(args, macros) if fn else None
        if verdict is None:
            conn.sendall(_pack(b"c"))
        elif verdict[0] == "reply":
            conn.sendall(_pack(b"y", verdict[1].encode() + b"\0"))
        elif verdict[0] == "reject":
            conn.sendall(_pack(b"r"))
        elif verdict[0] == "tempfail":
            conn.sendall(_pack(b"t"))
        elif verdict[0] == "accept":
            conn.sendall(_pack(b"a"))
        else:
            conn.sendall(_pack(b"c"))
