"""milterclient.py - the MTA side of the milter protocol (version 6), in
Python, for tests that must send what no MTA would: NUL, CR and LF inside
strings, 64 KiB arguments, commands out of order, a connection closed at
any stage, bytes that are not a milter packet at all.

    with MilterClient(port) as m:              # 127.0.0.1:port, negotiated
        m.connect("mail.example", "192.0.2.1")  -> Reply
        m.helo("mail.example"); m.mail("<a@b.example>", macros={"i": "Q1"})
        r = m.rcpt("<c@d.example>")   r.code: "c" continue, "r" reject,
                                      "t" tempfail, "y" reply (r.text),
                                      "a" accept, None: connection closed
        m.header("From", "..."); m.eoh(); r = m.eom()
        r.mods: [("i", index, name, value) | ("h", name, value) |
                 ("m", index, name, value) | ("q", reason)]
        m.abort(); m.quit(); m.close()

Strings may be str (UTF-8) or bytes, sent as they are.  Commands the
filter asked not to see (SMFIP_NO*) are skipped and answered "c" here,
as an MTA does; a command whose reply the filter asked to omit (SMFIP_NR_*)
gets none.  Every read has a timeout (a hung filter fails the test; it
never hangs it).
"""

import socket
import struct
import time

SMFIF_ALL = 0x1FF
SMFIP_ALL = 0x1FFFFF
NO = {"C": 0x1, "H": 0x2, "M": 0x4, "R": 0x8, "B": 0x10, "L": 0x20, "N": 0x40,
      "U": 0x100, "T": 0x200}
NR = {"C": 0x1000, "H": 0x2000, "M": 0x4000, "R": 0x8000, "T": 0x10000,
      "U": 0x20000, "N": 0x40000, "B": 0x80000, "L": 0x80}
FINAL = set("acdrtyfs4")        # replies that end a command
MODS = set("ihmq+-2eblp")       # replies before the final one (eom)


def _b(s):
    if s is None:
        return b""
    return s if isinstance(s, bytes) else s.encode("utf-8")


class Reply:
    def __init__(self, code, data=b"", mods=None):
        self.code = code            # a letter, or None: no reply (closed)
        self.data = data
        self.mods = mods or []

    @property
    def text(self):
        """The text of an 'y' reply ("550 5.7.23 ..."), as bytes."""
        return self.data.rstrip(b"\0") if self.code == "y" else b""

    @property
    def smtp_code(self):
        t = self.text
        return int(t[:3]) if t[:3].isdigit() else None

    def __repr__(self):
        s = "<reply %s" % self.code
        if self.code == "y":
            s += " %r" % self.text[:120]
        if self.mods:
            s += " mods=%d" % len(self.mods)
        return s + ">"


class MilterClient:
    def __init__(self, port, host="127.0.0.1", timeout=15.0, negotiate=True,
                 version=6, actions=SMFIF_ALL, protocol=SMFIP_ALL):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.pflags = 0
        self.closed = False
        if negotiate:
            self.optneg(version, actions, protocol)

    # -- wire ---------------------------------------------------------
    def send_raw(self, data):
        """Bytes as they are (not a packet); False if the peer is gone."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def send(self, cmd, data=b""):
        return self.send_raw(struct.pack("!I", len(data) + 1) + cmd.encode() + data)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                raise TimeoutError("no answer from the filter in %.0f s" % self.timeout)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            buf += chunk
        return buf

    def read(self):
        """One packet: (code letter, data), or (None, b"") when closed."""
        hdr = self._recv_exact(4)
        if hdr is None:
            return None, b""
        n = struct.unpack("!I", hdr)[0]
        if n == 0 or n > 16 * 1024 * 1024:
            raise ValueError("bad packet length %d from the filter" % n)
        body = self._recv_exact(n)
        if body is None:
            return None, b""
        return chr(body[0]), body[1:]

    def reply(self):
        """Read up to a final reply, keeping the modifications on the way."""
        mods = []
        while True:
            code, data = self.read()
            if code is None:
                return Reply(None, b"", mods)
            if code in MODS:
                mods.append(self._mod(code, data))
                continue
            return Reply(code, data, mods)

    @staticmethod
    def _mod(code, data):
        if code in "im":
            idx = struct.unpack("!I", data[:4])[0]
            parts = data[4:].split(b"\0")
            return (code, idx, parts[0], parts[1] if len(parts) > 1 else b"")
        parts = data.split(b"\0")
        if code == "h":
            return (code, parts[0], parts[1] if len(parts) > 1 else b"")
        return (code, parts[0])

    def command(self, cmd, data=b"", macros=None):
        """Macros for cmd, then cmd; its reply (or "c" when skipped)."""
        if self.closed:
            return Reply(None)
        if macros:
            self.macro(cmd, macros)
        if cmd in NO and self.pflags & NO[cmd]:
            return Reply("c")
        if not self.send(cmd, data):
            return Reply(None)
        if cmd in NR and self.pflags & NR[cmd]:
            return Reply("c")
        return self.reply()

    # -- commands ------------------------------------------------------
    def optneg(self, version=6, actions=SMFIF_ALL, protocol=SMFIP_ALL):
        self.send("O", struct.pack("!III", version, actions, protocol))
        code, data = self.read()
        if code != "O" or len(data) < 12:
            raise ValueError("option negotiation failed: %r %r" % (code, data[:40]))
        _, self.actions, self.pflags = struct.unpack("!III", data[:12])
        return self

    def macro(self, cmd, macros):
        data = b""
        for k, v in macros.items():
            data += _b(k) + b"\0" + _b(v) + b"\0"
        return self.send("D", cmd.encode() + data)

    def connect(self, hostname, addr, family=None, port=25, macros=None):
        """family '4', '6', 'U' (unknown: no address) or 'L'; default from
        addr."""
        if family is None:
            family = "6" if addr is not None and ":" in _b(addr).decode("latin-1") else "4"
        data = _b(hostname) + b"\0" + family.encode()
        if family != "U":
            data += struct.pack("!H", port) + _b(addr) + b"\0"
        return self.command("C", data, macros)

    def helo(self, name, macros=None):
        return self.command("H", _b(name) + b"\0", macros)

    def mail(self, sender, *args, macros=None):
        data = b"".join(_b(x) + b"\0" for x in (sender,) + args)
        return self.command("M", data, macros)

    def rcpt(self, rcpt, *args, macros=None):
        data = b"".join(_b(x) + b"\0" for x in (rcpt,) + args)
        return self.command("R", data, macros)

    def data(self, macros=None):
        return self.command("T", b"", macros)

    def header(self, name, value, macros=None):
        return self.command("L", _b(name) + b"\0" + _b(value) + b"\0", macros)

    def eoh(self, macros=None):
        return self.command("N", b"", macros)

    def body(self, chunk):
        return self.command("B", _b(chunk))

    def eom(self, macros=None):
        if self.closed:
            return Reply(None)
        if macros:
            self.macro("E", macros)
        if not self.send("E"):
            return Reply(None)
        return self.reply()

    def abort(self):
        """No reply in the protocol."""
        return self.send("A")

    def quit(self):
        self.send("Q")
        self.close()

    def quit_nc(self):
        """Quit, keep the connection for a new session (no reply)."""
        return self.send("K")

    def message(self, headers, body=b"Test message.\r\n", macros=None):
        """DATA, the headers, end of headers, the body, end of message:
        the reply to end of message (with its modifications), or the first
        reply that is not "continue"."""
        for step in ([lambda: self.data()] +
                     [lambda h=h: self.header(h[0], h[1]) for h in headers] +
                     [lambda: self.eoh(), lambda: self.body(body)]):
            r = step()
            if r.code not in ("c", "s"):
                return r
        return self.eom(macros)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False
