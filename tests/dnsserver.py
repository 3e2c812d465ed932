#!/usr/bin/python3
"""dnsserver.py - a small DNS server for spfguard's tests.

It answers, over UDP and TCP on the same port of 127.0.0.1, from a JSON zone
file that it re-reads whenever the file changes, so a test can change the
data while the server runs.  It looks authoritative (AA) and recursive (RA),
so a stub or forwarding resolver can use it as its only upstream.  Every
query is answered in its own thread: a delayed or never-answered name does
not hold up answers for other names.

Usage:
  /usr/bin/python3 tests/dnsserver.py --zone FILE [--port N] [--portfile FILE]
      [--querylog FILE] [--lifetime SECONDS]

Zone file (JSON): an object mapping names (case-insensitive, final dot
optional) to objects with these keys, all optional:

  "records":  list of {"type": T, "data": D[, "ttl": N]}
                A / AAAA:        "192.0.2.1" / "2001:db8::1"
                MX:              [10, "mx.example.com"]
                PTR, CNAME, NS:  "target.example.com"
                TXT / SPF:       "one string" or ["several", "strings"]
                                 (a list = the character-strings of ONE
                                 record; strings are UTF-8 encoded and split
                                 into 255-byte pieces); or instead of "data",
                                 "hex": ["76...", ...] for arbitrary bytes
  "ttl":      default TTL of this name's records (else 300)
  "timeout":  true: never answer this name; or a list of types never answered
  "timeout_except": list of types: never answer any OTHER type
  "servfail": true or a list of types: answer SERVFAIL
  "delay_ms": answer only this many milliseconds after the first query
              for the name and type (retransmissions are answered at that
              same moment, as by a caching resolver)
  "truncate": true (or a list of types): over UDP answer TC=1 without
              records (the client must retry over TCP); TCP answers normally
  "any_type": true: the name's records answer whatever type is asked
              (wrong answer types: TXT records to an A query, and so on)
  "owner":    the answer's records carry this owner name instead of the
              name asked (an answer for a name nobody asked about)
  "rcode":    answer with this RCODE (a number or a name such as "REFUSED")
              and no records
  "trickle_ms": over TCP, send the answer one byte every this many
              milliseconds (with "truncate", a UDP client is made to wait
              for it)

A record may give "rdata_hex" instead of "data": its RDATA as raw bytes,
well-formed or not (a TXT whose length byte runs past its end).

A name in the zone (or with descendants in it) that lacks the type asked
answers NOERROR/NODATA, an unknown name NXDOMAIN; both carry a made-up SOA
(TTL and minimum 60) in the authority section.  CNAMEs are followed inside
the zone (10 hops at most, loops stop).  A UDP answer larger than the
client's EDNS payload size (512 without EDNS) is sent with TC=1 and no
records.

--querylog gets one line per query received, flushed at once:
  "<udp|tcp> <qname, lowercase, no final dot> <QTYPE>"
"""

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

from dnslib import (AAAA, CNAME, DNSHeader, DNSLabel, DNSQuestion, DNSRecord,
                    EDNS0, MX, NS, PTR, QTYPE, RCODE, RD, RR, SOA, TXT, A)

DEFAULT_TTL = 300
NEG_TTL = 60
EDNS_PAYLOAD = 1232
MAX_CNAME_HOPS = 10
TCP_IDLE = 30.0

# Types the zone file may hold, and their numbers (dnslib lacks SPF's).
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "AAAA": 28, "SPF": 99}
ANY = 255


class ZoneError(Exception):
    pass


def name_key(name):
    """Zone or query name (str) -> tuple of lowercase byte labels."""
    return tuple(label.lower() for label in name_labels(name))


def name_labels(name):
    """str -> tuple of byte labels, original case, no final dot."""
    if isinstance(name, DNSLabel):
        return tuple(name.label)
    if not isinstance(name, str):
        raise ZoneError("name must be a string: %r" % (name,))
    name = name.strip()
    if name.endswith("."):
        name = name[:-1]
    if name == "":
        return ()
    return tuple(name.encode("utf-8").split(b"."))


def label_text(labels):
    """Byte labels -> presentation text: lowercase, no final dot; a dot or
    backslash inside a label is escaped, spaces and non-printables are \\DDD
    (so a query log line always splits into three fields)."""
    out = []
    for label in labels:
        s = []
        for b in label.lower():
            if b in (0x2E, 0x5C):
                s.append("\\" + chr(b))
            elif 0x21 <= b < 0x7F:
                s.append(chr(b))
            else:
                s.append("\\%03d" % b)
        out.append("".join(s))
    return ".".join(out) if out else "."


def type_number(t):
    if isinstance(t, int):
        return t
    if not isinstance(t, str):
        raise ZoneError("bad type %r" % (t,))
    u = t.upper()
    if u in TYPES:
        return TYPES[u]
    if u.startswith("TYPE") and u[4:].isdigit():
        return int(u[4:])
    try:
        return getattr(QTYPE, u)
    except Exception:
        raise ZoneError("unknown type %r" % (t,))


def type_name(n):
    for k, v in TYPES.items():
        if v == n:
            return k
    try:
        s = QTYPE.get(n)
        if isinstance(s, str) and s and not s.isdigit():
            return s
    except Exception:
        pass
    return "TYPE%d" % n


def split255(b):
    if len(b) <= 255:
        return [b]
    return [b[i:i + 255] for i in range(0, len(b), 255)]


def txt_strings(rec):
    """The character-strings (bytes) of one TXT/SPF record."""
    if "hex" in rec:
        h = rec["hex"]
        items = [h] if isinstance(h, str) else h
        if not isinstance(items, list):
            raise ZoneError("TXT hex must be a string or a list")
        raw = []
        for x in items:
            try:
                raw.append(bytes.fromhex(x))
            except (TypeError, ValueError):
                raise ZoneError("bad hex %r" % (x,))
    else:
        d = rec.get("data")
        items = [d] if isinstance(d, str) else d
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ZoneError("TXT data must be a string or a list of strings")
        raw = [x.encode("utf-8") for x in items]
    out = []
    for b in raw:
        out.extend(split255(b))
    return out


class Flag:
    """A per-name condition: for all types, or for a set of types."""

    def __init__(self, value, key, invert=False):
        self.all = False
        self.types = set()
        self.invert = invert
        if value is True:
            self.all = True
        elif value is False or value is None:
            pass
        elif isinstance(value, list):
            self.types = {type_number(t) for t in value}
        elif isinstance(value, str):
            self.types = {type_number(value)}
        else:
            raise ZoneError("%s: expected true/false or a list of types" % key)

    def hit(self, qtype):
        if self.invert:
            return qtype not in self.types
        return self.all or qtype in self.types


class Node:
    KEYS = {"records", "ttl", "timeout", "timeout_except", "servfail",
            "delay_ms", "truncate", "any_type", "owner", "rcode", "trickle_ms"}

    def __init__(self, name, spec):
        if isinstance(spec, list):          # shorthand: just the records
            spec = {"records": spec}
        if not isinstance(spec, dict):
            raise ZoneError("%s: expected an object" % name)
        bad = set(spec) - self.KEYS
        if bad:
            raise ZoneError("%s: unknown keys %s" % (name, sorted(bad)))
        self.labels = name_labels(name)
        ttl = spec.get("ttl", DEFAULT_TTL)
        if not isinstance(ttl, int) or ttl < 0:
            raise ZoneError("%s: bad ttl" % name)
        self.timeout = Flag(spec.get("timeout"), "timeout")
        self.timeout_except = None
        if "timeout_except" in spec:
            self.timeout_except = Flag(spec["timeout_except"], "timeout_except",
                                       invert=True)
        self.servfail = Flag(spec.get("servfail"), "servfail")
        self.truncate = Flag(spec.get("truncate"), "truncate")
        delay = spec.get("delay_ms", 0)
        if not isinstance(delay, (int, float)) or delay < 0:
            raise ZoneError("%s: bad delay_ms" % name)
        self.delay = delay / 1000.0
        self.any_type = spec.get("any_type") is True
        self.owner = name_labels(spec["owner"]) if "owner" in spec else None
        self.rcode = None
        if "rcode" in spec:
            rc = spec["rcode"]
            if isinstance(rc, str):
                rc = getattr(RCODE, rc.upper(), None)
            if not isinstance(rc, int) or not 0 <= rc <= 15:
                raise ZoneError("%s: bad rcode" % name)
            self.rcode = rc
        trickle = spec.get("trickle_ms", 0)
        if not isinstance(trickle, (int, float)) or trickle < 0:
            raise ZoneError("%s: bad trickle_ms" % name)
        self.trickle = trickle / 1000.0
        self.rrs = []           # (rtype, ttl, rdata)
        self.cname = None       # target labels
        records = spec.get("records", [])
        if not isinstance(records, list):
            raise ZoneError("%s: records must be a list" % name)
        for rec in records:
            self.rrs.append(self._record(name, rec, ttl))

    def _record(self, name, rec, default_ttl):
        if not isinstance(rec, dict) or "type" not in rec:
            raise ZoneError("%s: bad record %r" % (name, rec))
        t = str(rec["type"]).upper()
        ttl = rec.get("ttl", default_ttl)
        if not isinstance(ttl, int) or ttl < 0:
            raise ZoneError("%s: bad ttl in %r" % (name, rec))
        d = rec.get("data")
        try:
            if "rdata_hex" in rec:
                rtype = type_number(t)
                try:
                    raw = bytes.fromhex(rec["rdata_hex"])
                except (TypeError, ValueError):
                    raise ZoneError("bad rdata_hex")
                return (rtype, ttl, RD(raw))
            if t in ("TXT", "SPF"):
                rd = TXT(txt_strings(rec))
            elif t == "A":
                rd = A(d)
            elif t == "AAAA":
                rd = AAAA(d)
            elif t == "MX":
                if not (isinstance(d, list) and len(d) == 2 and isinstance(d[0], int)):
                    raise ZoneError("MX data must be [preference, name]")
                rd = MX(DNSLabel(list(name_labels(d[1]))), d[0])
            elif t in ("PTR", "CNAME", "NS"):
                target = name_labels(d)
                rd = {"PTR": PTR, "CNAME": CNAME, "NS": NS}[t](DNSLabel(list(target)))
                if t == "CNAME":
                    if self.cname is not None:
                        raise ZoneError("two CNAMEs")
                    self.cname = target
            else:
                raise ZoneError("unsupported record type %s" % t)
        except ZoneError as e:
            raise ZoneError("%s: %s" % (name, e))
        except Exception as e:
            raise ZoneError("%s: bad %s data %r: %s" % (name, t, d, e))
        return (TYPES[t], ttl, rd)


class Zone:
    def __init__(self, data):
        if not isinstance(data, dict):
            raise ZoneError("zone file must hold a JSON object")
        self.nodes = {}
        self.ents = set()
        for name, spec in data.items():
            key = name_key(name)
            if key in self.nodes:
                raise ZoneError("%s: listed twice" % name)
            self.nodes[key] = Node(name, spec)
        for key in self.nodes:
            for i in range(1, len(key) + 1):
                self.ents.add(key[i:])

    def exists(self, key):
        return key in self.nodes or key in self.ents


def soa_for(labels):
    apex = list(labels[-2:])
    return RR(DNSLabel(apex), QTYPE.SOA, ttl=NEG_TTL,
              rdata=SOA(DNSLabel([b"ns"] + apex), DNSLabel([b"hostmaster"] + apex),
                        (1, 3600, 600, 86400, NEG_TTL)))


class Answer:
    def __init__(self):
        self.drop = False
        self.rcode = RCODE.NOERROR
        self.rr = []
        self.auth = []
        self.delay = 0.0
        self.truncate = False
        self.trickle = 0.0


def resolve(zone, qlabels, qtype):
    """Look a question up in the zone."""
    ans = Answer()
    key = tuple(x.lower() for x in qlabels)
    owner = list(qlabels)
    seen = set()
    hops = 0
    while True:
        seen.add(key)
        node = zone.nodes.get(key)
        if node is not None:
            if node.timeout.hit(qtype) or (
                    node.timeout_except is not None and node.timeout_except.hit(qtype)):
                ans.drop = True
                return ans
            if node.servfail.hit(qtype):
                ans.rcode = RCODE.SERVFAIL
                ans.rr = []
                return ans
            ans.delay = max(ans.delay, node.delay)
            ans.trickle = max(ans.trickle, node.trickle)
            if node.rcode is not None:
                ans.rcode = node.rcode
                ans.rr = []
                return ans
            if node.truncate.hit(qtype):
                ans.truncate = True
            matches = [r for r in node.rrs
                       if qtype == ANY or r[0] == qtype or node.any_type]
            if matches:
                rr_owner = list(node.owner) if node.owner is not None else owner
                for rtype, ttl, rd in matches:
                    ans.rr.append(RR(DNSLabel(rr_owner), rtype, ttl=ttl, rdata=rd))
                return ans
            if node.cname is not None and qtype != TYPES["CNAME"]:
                cn = [r for r in node.rrs if r[0] == TYPES["CNAME"]][0]
                ans.rr.append(RR(DNSLabel(owner), cn[0], ttl=cn[1], rdata=cn[2]))
                hops += 1
                target = tuple(x.lower() for x in node.cname)
                if hops > MAX_CNAME_HOPS or target in seen:
                    return ans
                key = target
                owner = list(node.cname)
                continue
            ans.auth.append(soa_for(key))          # NODATA
            if qtype == TYPES["SOA"] and len(key) <= 2:
                ans.rr.append(ans.auth.pop())
            return ans
        if key in zone.ents:
            ans.auth.append(soa_for(key))          # empty non-terminal
            return ans
        ans.rcode = RCODE.NXDOMAIN
        ans.auth.append(soa_for(key))
        return ans


class Server:
    def __init__(self, args):
        self.zone_path = args.zone
        self.zone = None
        self.zone_sig = None
        self.zone_lock = threading.Lock()
        self.log = open(args.querylog, "a", encoding="utf-8") if args.querylog else None
        self.log_lock = threading.Lock()
        self.slow_lock = threading.Lock()
        self.slow_first = {}
        self.stop = threading.Event()
        self.load_zone(initial=True)
        self.udp, self.tcp = self.bind(args.port)
        self.port = self.udp.getsockname()[1]

    # --- zone ---------------------------------------------------------
    def delay_left(self, qn, delay):
        """How long to hold this answer: like a caching resolver, the
        answer to a delayed name is ready delay seconds after its FIRST
        query, and retransmissions get it then too (not a fresh delay
        each).  The clock restarts once an answer is due and 30 s pass."""
        key = (str(qn.qname).lower(), qn.qtype)
        now = time.monotonic()
        with self.slow_lock:
            first = self.slow_first.get(key)
            if first is None or now - first > delay + 30:
                first = self.slow_first[key] = now
        return max(0.0, first + delay - now)

    def load_zone(self, initial=False):
        try:
            st = os.stat(self.zone_path)
        except OSError as e:
            if initial:
                raise ZoneError("%s: %s" % (self.zone_path, e))
            return
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self.zone_sig:
            return
        with self.zone_lock:
            if sig == self.zone_sig:
                return
            try:
                with open(self.zone_path, "rb") as f:
                    data = json.loads(f.read().decode("utf-8"))
                zone = Zone(data)
            except (OSError, ValueError, ZoneError) as e:
                if initial:
                    raise ZoneError("%s: %s" % (self.zone_path, e))
                # keep serving the old data; a writer may be half-way
                print("dnsserver: zone not reloaded: %s" % e, file=sys.stderr)
                return
            self.zone = zone
            self.zone_sig = sig

    # --- sockets ------------------------------------------------------
    @staticmethod
    def bind(port):
        tries = 1 if port else 64
        last = None
        for _ in range(tries):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", u.getsockname()[1]))
                t.listen(64)
                return u, t
            except OSError as e:
                last = e
                u.close()
                t.close()
        raise OSError("cannot bind 127.0.0.1:%d for UDP and TCP: %s" % (port, last))

    # --- queries ------------------------------------------------------
    def logq(self, proto, q):
        if not self.log:
            return
        if q.questions:
            qn = q.questions[0]
            line = "%s %s %s\n" % (proto, label_text(qn.qname.label), type_name(qn.qtype))
        else:
            line = "%s - -\n" % proto
        with self.log_lock:
            if self.log:
                self.log.write(line)
                self.log.flush()

    def answer(self, data, proto, info=None):
        """Raw query -> raw response, or None to stay silent.  info (a
        dict), if given, gets "trickle": seconds between bytes over TCP."""
        try:
            q = DNSRecord.parse(data)
        except Exception:
            if len(data) >= 12:
                # FORMERR with the id copied and no question
                hdr = struct.unpack("!HH", data[:4])
                flags = 0x8000 | (hdr[1] & 0x7900) | 0x0080 | RCODE.FORMERR
                return struct.pack("!HHHHHH", hdr[0], flags, 0, 0, 0, 0)
            return None
        self.logq(proto, q)
        if q.header.qr:
            return None
        opt = None
        for rr in q.ar:
            if rr.rtype == QTYPE.OPT:
                opt = rr
        reply = DNSRecord(DNSHeader(id=q.header.id, qr=1, aa=1, ra=1,
                                    rd=q.header.rd, opcode=q.header.opcode))
        for qn in q.questions:
            reply.add_question(DNSQuestion(qn.qname, qn.qtype, qn.qclass))
        edns = None
        if opt is not None:
            edns = EDNS0(udp_len=EDNS_PAYLOAD)
        if q.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
            reply.header.aa = 0
        elif len(q.questions) != 1:
            reply.header.rcode = RCODE.FORMERR
            reply.header.aa = 0
        else:
            self.load_zone()
            qn = q.questions[0]
            ans = resolve(self.zone, tuple(qn.qname.label), qn.qtype)
            if ans.drop:
                return None
            if ans.delay:
                time.sleep(self.delay_left(qn, ans.delay))
            if info is not None:
                info["trickle"] = ans.trickle
            reply.header.rcode = ans.rcode
            reply.rr = ans.rr
            reply.auth = ans.auth
            if proto == "udp" and ans.truncate:
                reply.header.tc = 1
                reply.rr = []
                reply.auth = []
        if edns is not None:
            reply.add_ar(edns)
        try:
            wire = reply.pack()
        except Exception as e:
            print("dnsserver: cannot pack answer: %s" % e, file=sys.stderr)
            reply.rr, reply.auth = [], []
            reply.header.rcode = RCODE.SERVFAIL
            wire = reply.pack()
        if proto == "udp":
            limit = 512
            if opt is not None:
                limit = max(512, opt.rclass)
            if len(wire) > limit:
                reply.header.tc = 1
                reply.rr, reply.auth = [], []
                reply.ar = [edns] if edns is not None else []
                wire = reply.pack()
        elif len(wire) > 65535:
            reply.rr, reply.auth = [], []
            reply.header.rcode = RCODE.SERVFAIL
            wire = reply.pack()
        return wire

    def udp_one(self, data, addr):
        try:
            wire = self.answer(data, "udp")
            if wire is not None and not self.stop.is_set():
                self.udp.sendto(wire, addr)
        except Exception as e:
            print("dnsserver: udp: %s" % e, file=sys.stderr)

    def udp_loop(self):
        while not self.stop.is_set():
            try:
                data, addr = self.udp.recvfrom(65535)
            except OSError:
                if self.stop.is_set():
                    return
                continue
            threading.Thread(target=self.udp_one, args=(data, addr), daemon=True).start()

    @staticmethod
    def recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def tcp_one(self, conn, lock, data):
        try:
            info = {}
            wire = self.answer(data, "tcp", info)
            if wire is None:
                return
            out = struct.pack("!H", len(wire)) + wire
            with lock:
                if not info.get("trickle"):
                    conn.sendall(out)
                    return
                for i in range(len(out)):
                    if self.stop.is_set():
                        return
                    conn.sendall(out[i:i + 1])
                    time.sleep(info["trickle"])
        except Exception:
            pass

    def tcp_conn(self, conn):
        lock = threading.Lock()
        workers = []
        conn.settimeout(TCP_IDLE)
        try:
            while not self.stop.is_set():
                hdr = self.recv_exact(conn, 2)
                if hdr is None:
                    break
                msg = self.recv_exact(conn, struct.unpack("!H", hdr)[0])
                if msg is None:
                    break
                w = threading.Thread(target=self.tcp_one, args=(conn, lock, msg),
                                     daemon=True)
                w.start()
                workers = [x for x in workers if x.is_alive()] + [w]
        except OSError:
            pass
        finally:
            # answers still in flight for this connection go out first
            for w in workers:
                w.join()
            conn.close()

    def tcp_loop(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                if self.stop.is_set():
                    return
                continue
            threading.Thread(target=self.tcp_conn, args=(conn,), daemon=True).start()

    def run(self, lifetime, portfile):
        threading.Thread(target=self.udp_loop, daemon=True).start()
        threading.Thread(target=self.tcp_loop, daemon=True).start()
        if portfile:
            tmp = "%s.tmp.%d" % (portfile, os.getpid())
            with open(tmp, "w") as f:
                f.write("%d\n" % self.port)
            os.replace(tmp, portfile)
        self.stop.wait(lifetime)
        self.stop.set()
        for s in (self.udp, self.tcp):
            try:
                s.close()
            except OSError:
                pass
        if self.log:
            with self.log_lock:
                self.log.close()
                self.log = None


def main():
    ap = argparse.ArgumentParser(description="DNS server for spfguard's tests")
    ap.add_argument("--zone", required=True, help="JSON zone file")
    ap.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    ap.add_argument("--portfile", help="write the port here once listening")
    ap.add_argument("--querylog", help="append one line per query here")
    ap.add_argument("--lifetime", type=float, default=600.0,
                    help="exit after this many seconds (default 600)")
    args = ap.parse_args()
    try:
        server = Server(args)
    except (ZoneError, OSError) as e:
        print("dnsserver: %s" % e, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: server.stop.set())
    signal.signal(signal.SIGINT, lambda *_: server.stop.set())
    server.run(args.lifetime, args.portfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
