"""Client side of benchmarks/soak: one worker process running a pool of client threads against
every reactord listener, checking every reply.

Started by benchmarks/soak, one process per worker (several processes so the GIL does not cap the
load). It reads "stop" or EOF on stdin (so it never outlives the soak), prints one JSON line of
running totals to stdout every second, and a last one marked "final" when all its threads are done.

Each client thread runs scenarios back to back: a connection to one listener, a mode (short-lived,
long-lived pipelining, abrupt close mid-frame, reset with replies unread, half-close, malformed
input, idle until the server's timeout) and a bounded number of requests. A parker thread keeps a
varying set of mostly idle connections open and closes them in every way. Every loop is bounded in
count and every socket operation in time.
"""

import argparse
import ctypes
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time

TIMEOUT = 30.0  # one socket operation (the machine may be busy)
PR_SET_PDEATHSIG = 1

LINE_MAX = 4096  # the line-echo listener's max_line
LINE_IDLE_S = 4.0  # the line-echo listener's idle_timeout_ms / 1000
NETSTRING_MAX = 65536  # the netstrings listener's max_length
HTTP_MAX_HEADER = 8192  # the http listener's max_header_bytes
HTTP_MAX_BODY = 1 << 20  # the http listener's max_body
KEYS_PER_OWNER = 8
# A pipelined batch stops growing past this many request bytes, which bounds what the server
# holds for one client at a time (and so the peaks of its memory use).
BATCH_BYTES = 128 * 1024
SHARED_COUNTERS = 4

# Bytes of a line payload: anything but the delimiter and CR (stripped before a LF).
LINE_SAFE = bytes.maketrans(b"\n\r", b"NR")
PRINTABLE = bytes(range(0x21, 0x7F))


class Mismatch(Exception):
    """A reply that is not what the protocol and app promise."""


class Closed(Exception):
    """The server closed where a reply was due."""


class Counters:
    """Totals of one worker, shared by its threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.open = 0
        self.opened_total = 0
        self.samples = []  # error messages not yet reported
        self.sampled = 0

    def done(self, n=1):
        with self.lock:
            self.requests += n

    def error(self, text):
        with self.lock:
            self.errors += 1
            if self.sampled < 50:
                self.sampled += 1
                self.samples.append(text)

    def opened(self):
        with self.lock:
            self.open += 1
            self.opened_total += 1

    def closed(self):
        with self.lock:
            self.open -= 1

    def report(self, final=False):
        with self.lock:
            out = {"requests": self.requests, "errors": self.errors, "open": self.open,
                   "connections": self.opened_total, "samples": self.samples}
            self.samples = []
        if final:
            out["final"] = True
        return out


def short(data):
    """A reply or payload for an error message: long ones by length and edges."""
    if isinstance(data, (bytes, bytearray)) and len(data) > 80:
        return f"<{len(data)} bytes {bytes(data[:40])!r}...{bytes(data[-20:])!r}>"
    if isinstance(data, list):
        return "[" + ", ".join(short(x) for x in data[:6]) + (", ...]" if len(data) > 6 else "]")
    return repr(data)


class Conn:
    """A client connection with its own receive buffer. Every read has a deadline."""

    def __init__(self, ctx, port):
        self.counters = ctx.counters
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.counters.opened()
        self.buf = bytearray()
        self.is_open = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        if time.monotonic() > deadline:
            raise socket.timeout("read deadline passed")
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(f"EOF with {len(self.buf)} bytes buffered: {short(self.buf)}")
        self.buf += chunk

    def read_exact(self, n):
        deadline = time.monotonic() + TIMEOUT
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, terminator, limit):
        """The bytes up to terminator (dropped); Mismatch when limit bytes pass without it."""
        deadline = time.monotonic() + TIMEOUT
        start = 0
        while True:
            at = self.buf.find(terminator, start)
            if at >= 0:
                out = bytes(self.buf[:at])
                del self.buf[:at + len(terminator)]
                return out
            if len(self.buf) > limit:
                raise Mismatch(f"no {terminator!r} in {len(self.buf)} bytes: {short(self.buf)}")
            start = max(0, len(self.buf) - len(terminator) + 1)
            self._fill(deadline)

    def read_to_close(self, allow_reset):
        """What arrives before the server closes (EOF, or a reset when allow_reset)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self._fill(deadline)
            except Closed:
                break
            except ConnectionResetError:
                if not allow_reset:
                    raise
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def expect_close(self, allow_reset=False):
        extra = self.read_to_close(allow_reset)
        if extra:
            raise Mismatch(f"bytes before the server's close: {short(extra)}")

    def half_close(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        """Closes with a RST (SO_LINGER 0)."""
        if self.is_open:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close()

    def close(self):
        if self.is_open:
            self.is_open = False
            self.sock.close()
            self.counters.closed()


class Ctx:
    """One client thread's state: its random source, its share of the kv keyspace, its name."""

    def __init__(self, worker, name, seed, ports, counters, stop, admin_gate):
        self.rng = random.Random(seed)
        self.name = name
        self.worker = worker
        self.ports = ports
        self.counters = counters
        self.stop = stop
        self.admin_gate = admin_gate
        self.kv = KvModel(self, name)
        self.serial = 0

    def pause(self, low, high):
        """Waits a random time; True when the worker is stopping."""
        return self.stop.wait(self.rng.uniform(low, high))

    def tag(self):
        self.serial += 1
        return f"{self.name}-{self.serial}"

    def size(self, largest=65536):
        """Mostly small, sometimes up to largest."""
        r = self.rng.random()
        if r < 0.6:
            n = self.rng.randint(0, 64)
        elif r < 0.85:
            n = self.rng.randint(65, 1024)
        elif r < 0.97:
            n = self.rng.randint(1025, 16384)
        else:
            n = self.rng.randint(16385, 65536)
        return min(n, largest)


# ---- echo protocols: line, length, netstrings ----


class LineEcho:
    name = "line-echo"

    @staticmethod
    def payload(ctx):
        return ctx.rng.randbytes(ctx.rng.randint(0, 64) if ctx.rng.random() < 0.7 else
                                 ctx.rng.randint(0, LINE_MAX)).translate(LINE_SAFE)

    @staticmethod
    def encode(p):
        return p + b"\n"

    @staticmethod
    def read(c):
        return c.read_until(b"\n", LINE_MAX + 1)

    @staticmethod
    def malformed(ctx):
        return ctx.rng.randbytes(LINE_MAX + 1 + ctx.rng.randint(0, 2000)).translate(LINE_SAFE)


class LengthEcho:
    name = "length-echo"

    @staticmethod
    def payload(ctx):
        return ctx.rng.randbytes(ctx.size())

    @staticmethod
    def encode(p):
        return struct.pack(">I", len(p)) + p

    @staticmethod
    def read(c):
        (n,) = struct.unpack(">I", c.read_exact(4))
        if n > 65536:
            raise Mismatch(f"length field {n} above anything sent")
        return c.read_exact(n)

    @staticmethod
    def malformed(ctx):
        # A length beyond the listener's max_frame (1 MiB).
        return struct.pack(">I", ctx.rng.randint((1 << 20) + 1, 0xFFFFFFFF)) + b"xyz"


class NetstringsEcho:
    name = "netstrings"

    @staticmethod
    def payload(ctx):
        return ctx.rng.randbytes(ctx.size(NETSTRING_MAX))

    @staticmethod
    def encode(p):
        return b"%d:%s," % (len(p), p)

    @staticmethod
    def read(c):
        head = c.read_until(b":", 8)
        if not re.fullmatch(rb"0|[1-9][0-9]*", head):
            raise Mismatch(f"netstring length {head!r}")
        body = c.read_exact(int(head) + 1)
        if body[-1:] != b",":
            raise Mismatch(f"netstring not ended by ',': {short(body)}")
        return body[:-1]

    @staticmethod
    def malformed(ctx):
        return ctx.rng.choice([b"x:abc,", b"01:a,", b"3:abcX", b"%d:" % (NETSTRING_MAX + 1),
                               b":", b"5;hello,"])


ECHO_MODES = ["short", "long", "rst_mid", "rst_unread", "half_close", "half_close_partial",
              "malformed"]
ECHO_WEIGHTS = [40, 12, 10, 8, 10, 6, 8]


def echo_batch(ctx, c, proto, largest_batch=16):
    payloads = []
    size = 0
    for _ in range(ctx.rng.randint(1, largest_batch)):
        if size > BATCH_BYTES:
            break
        payloads.append(proto.payload(ctx))
        size += len(payloads[-1])
    c.send(b"".join(proto.encode(p) for p in payloads))
    return payloads


def echo_check(ctx, c, proto, payloads):
    for i, p in enumerate(payloads):
        got = proto.read(c)
        if got != p:
            raise Mismatch(f"echo {i + 1}/{len(payloads)}: sent {short(p)}, got {short(got)}")
    ctx.counters.done(len(payloads))


def echo_session(ctx, proto, mode):
    with Conn(ctx, ctx.ports[proto.name]) as c:
        if mode == "idle_timeout":
            # The server must close a connection without a message for idle_timeout_ms.
            echo_check(ctx, c, proto, echo_batch(ctx, c, proto, 2))
            started = time.monotonic()
            c.expect_close()
            idle = time.monotonic() - started
            if idle < LINE_IDLE_S - 0.5:
                raise Mismatch(f"closed after {idle:.1f}s idle, before the idle timeout")
            return
        lifetime = ctx.rng.uniform(10, 60) if mode == "long" else 0
        batches = 1000 if mode == "long" else ctx.rng.randint(1, 4)
        started = time.monotonic()
        for _ in range(batches):
            ending_early = mode in ("rst_unread", "half_close", "half_close_partial")
            if ending_early and ctx.rng.random() < 0.3:
                break
            echo_check(ctx, c, proto, echo_batch(ctx, c, proto))
            if mode == "long":
                if time.monotonic() - started > lifetime or ctx.pause(0.02, 0.3):
                    break
            elif ctx.stop.is_set():
                break
        if mode == "rst_mid":
            frame = proto.encode(proto.payload(ctx) + b"tail")
            c.send(frame[:ctx.rng.randint(1, len(frame) - 2)])
            c.reset()
        elif mode == "rst_unread":
            echo_batch(ctx, c, proto)
            c.reset()
        elif mode in ("half_close", "half_close_partial"):
            payloads = echo_batch(ctx, c, proto)
            if mode == "half_close_partial":
                frame = proto.encode(proto.payload(ctx) + b"tail")
                c.send(frame[:ctx.rng.randint(1, len(frame) - 2)])
            c.half_close()
            echo_check(ctx, c, proto, payloads)
            c.expect_close()  # an incomplete last frame gets no reply
        elif mode == "malformed":
            c.send(proto.malformed(ctx))
            c.expect_close(allow_reset=True)
            ctx.counters.done()
        elif ctx.rng.random() < 0.3:
            c.reset()


# ---- RESP (the kv app) ----

UNKNOWN = object()  # a key whose value this client cannot know (an interrupted batch)


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_resp(c, depth=0):
    """A reply: ("+", text), ("-", text), int, bytes (bulk), None (null) or a list."""
    line = c.read_until(b"\r\n", 1024)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return ("+", rest)
    if kind == b"-":
        return ("-", rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n == -1:
            return None
        body = c.read_exact(n + 2)
        if body[-2:] != b"\r\n":
            raise Mismatch(f"bulk of {n} not ended by CRLF")
        return body[:-2]
    if kind == b"*" and depth < 2:
        return [read_resp(c, depth + 1) for _ in range(int(rest))]
    raise Mismatch(f"unexpected reply line {short(line)}")


def expect(what, wanted):
    def check(reply):
        if reply != wanted:
            raise Mismatch(f"{what}: wanted {short(wanted)}, got {short(reply)}")
    return check


class KvModel:
    """The values of the keys one client owns (no other client writes them), so every reply can be
    checked; plus shared counters that only grow."""

    def __init__(self, ctx, owner):
        self.ctx = ctx
        self.keys = [f"soak:{owner}:{i}".encode() for i in range(KEYS_PER_OWNER)]
        self.values = {k: None for k in self.keys}
        self.expiring = f"soak:{owner}:expiring".encode()
        self.expiring_value = None
        self.counter_seen = {}

    def forget(self):
        for k in self.keys:
            self.values[k] = UNKNOWN
        self.expiring_value = UNKNOWN

    def _get_check(self, key, value):
        def check(reply):
            if value is UNKNOWN:
                if reply is not None and not isinstance(reply, bytes):
                    raise Mismatch(f"GET {key!r}: got {short(reply)}")
            elif reply != value:
                raise Mismatch(f"GET {key!r}: wanted {short(value)}, got {short(reply)}")
        return check

    def command(self, readonly=False):
        """(request bytes, reply check), the model updated as if the request ran."""
        rng = self.ctx.rng
        key = rng.choice(self.keys)
        value = self.values[key]
        choice = rng.random()
        if readonly:
            choice = 0.5 + choice * 0.3  # GET, EXISTS, MGET, INCR only
        if choice < 0.30:
            new = rng.randbytes(self.ctx.size())
            self.values[key] = new
            if rng.random() < 0.2:
                return resp_command(b"SET", key, new, b"GET"), self._get_check(key, value)
            return resp_command(b"SET", key, new), expect("SET", ("+", b"OK"))
        if choice < 0.36 and value is not UNKNOWN:
            new = rng.randbytes(rng.randint(0, 100))
            if rng.random() < 0.5:  # NX: only when absent
                self.values[key] = new if value is None else value
                wanted = ("+", b"OK") if value is None else None
                return resp_command(b"SET", key, new, b"NX"), expect("SET NX", wanted)
            self.values[key] = new if value is not None else value
            wanted = ("+", b"OK") if value is not None else None
            return resp_command(b"SET", key, new, b"XX"), expect("SET XX", wanted)
        if choice < 0.44:
            self.values[key] = None
            if value is UNKNOWN:
                def check(reply):
                    if reply not in (0, 1):
                        raise Mismatch(f"DEL: got {short(reply)}")
                return resp_command(b"DEL", key), check
            return resp_command(b"DEL", key), expect("DEL", 0 if value is None else 1)
        if choice < 0.50:
            new = rng.randbytes(rng.randint(0, 200))
            self.expiring_value = new
            return (resp_command(b"SET", self.expiring, new, b"PX", rng.randint(20, 500)),
                    expect("SET PX", ("+", b"OK")))
        if choice < 0.62:
            return resp_command(b"GET", key), self._get_check(key, value)
        if choice < 0.66:
            if value is UNKNOWN:
                def check(reply):
                    if reply not in (0, 1):
                        raise Mismatch(f"EXISTS: got {short(reply)}")
                return resp_command(b"EXISTS", key), check
            return resp_command(b"EXISTS", key), expect("EXISTS", 0 if value is None else 1)
        if choice < 0.70:
            keys = rng.sample(self.keys, rng.randint(2, 4))
            checks = [self._get_check(k, self.values[k]) for k in keys]

            def check(reply):
                if not isinstance(reply, list) or len(reply) != len(keys):
                    raise Mismatch(f"MGET of {len(keys)}: got {short(reply)}")
                for c, r in zip(checks, reply):
                    c(r)
            return resp_command(b"MGET", *keys), check
        if choice < 0.74:
            seen = self.expiring_value

            def check(reply):
                # Expired or not: either nothing or the last value set.
                if reply is not None and (seen is not UNKNOWN and reply != seen):
                    raise Mismatch(f"GET expiring: wanted {short(seen)} or nil, got {short(reply)}")
            return resp_command(b"GET", self.expiring), check
        if choice < 0.80:
            counter = b"soak:counter:%d" % rng.randrange(SHARED_COUNTERS)

            def check(reply):
                last = self.counter_seen.get(counter, 0)
                if not isinstance(reply, int) or reply <= last:
                    raise Mismatch(f"INCR {counter!r}: got {short(reply)} after {last}")
                self.counter_seen[counter] = reply
            return resp_command(b"INCR", counter), check
        if choice < 0.84:
            return resp_command(b"PING"), expect("PING", ("+", b"PONG"))
        if choice < 0.88:
            text = rng.randbytes(rng.randint(0, 300))
            return resp_command(b"ECHO", text), expect("ECHO", text)
        if choice < 0.91:
            name = b"NOSUCH%d" % rng.randrange(100)
            wanted = ("-", b"ERR unknown command '%s', with args beginning with: 'a' " % name)
            return resp_command(name, b"a"), expect("unknown command", wanted)
        if choice < 0.94:
            return (resp_command(b"GET"),
                    expect("GET arity", ("-", b"ERR wrong number of arguments for 'get' command")))
        if choice < 0.97:
            def check(reply):
                if not isinstance(reply, int) or reply <= 0:
                    raise Mismatch(f"CLIENT ID: got {short(reply)}")
            return resp_command(b"CLIENT", b"ID"), check
        # An inline command, as typed into telnet.
        return b"PING\r\n", expect("inline PING", ("+", b"PONG"))


KV_MODES = ["short", "long", "rst_mid", "rst_unread", "half_close", "malformed"]
KV_WEIGHTS = [45, 15, 10, 8, 12, 10]
RESP_MALFORMED = [
    (b"*1\r\n$x\r\n", b"invalid bulk length"),
    (b"*x\r\n", b"invalid multibulk length"),
    (b"*2\r\n$3\r\nGET\r\n$-7\r\n", b"invalid bulk length"),
]


def kv_batch(ctx, c, n, readonly=False):
    commands = []
    size = 0
    for _ in range(n):
        if size > BATCH_BYTES:
            break
        commands.append(ctx.kv.command(readonly))
        size += len(commands[-1][0])
    c.send(b"".join(r for r, _ in commands))
    return [check for _, check in commands]


def kv_check(ctx, c, checks):
    for check in checks:
        check(read_resp(c))
    ctx.counters.done(len(checks))


def kv_session(ctx, mode):
    try:
        with Conn(ctx, ctx.ports["kv"]) as c:
            lifetime = ctx.rng.uniform(10, 60) if mode == "long" else 0
            batches = 1000 if mode == "long" else ctx.rng.randint(1, 4)
            started = time.monotonic()
            for _ in range(batches):
                kv_check(ctx, c, kv_batch(ctx, c, ctx.rng.randint(1, 16)))
                if mode == "long":
                    if time.monotonic() - started > lifetime or ctx.pause(0.02, 0.3):
                        break
                elif ctx.stop.is_set():
                    break
            if mode == "rst_mid":
                # A SET cut short: the key must keep its value.
                key = ctx.rng.choice(ctx.kv.keys)
                frame = resp_command(b"SET", key, ctx.rng.randbytes(ctx.size()) + b"tail")
                c.send(frame[:ctx.rng.randint(1, len(frame) - 2)])
                c.reset()
            elif mode == "rst_unread":
                kv_batch(ctx, c, ctx.rng.randint(1, 16), readonly=True)
                c.reset()
            elif mode == "half_close":
                checks = kv_batch(ctx, c, ctx.rng.randint(1, 16))
                c.half_close()
                kv_check(ctx, c, checks)
                c.expect_close()
            elif mode == "malformed":
                data, reason = ctx.rng.choice(RESP_MALFORMED)
                c.send(data)
                wanted = b"-ERR Protocol error: " + reason + b"\r\n"
                got = c.read_to_close(allow_reset=True)
                if got != wanted:
                    raise Mismatch(f"after {data!r}: wanted {wanted!r} then close, "
                                   f"got {short(got)}")
                ctx.counters.done()
            elif ctx.rng.random() < 0.3:
                c.reset()
    except BaseException:
        ctx.kv.forget()  # replies were lost: what ran is not known
        raise


# ---- HTTP ----

HTTP_MODES = ["keepalive", "pipelined", "long", "http10", "conn_close", "rst_mid", "rst_unread",
              "half_close", "malformed", "continue"]
HTTP_WEIGHTS = [25, 20, 8, 8, 8, 6, 5, 8, 8, 4]
HELLO = b"Hello, World!"
HELLO_JSON = b'{"message":"Hello, World!"}'


class HttpReply:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def __repr__(self):
        return f"{self.status} {self.reason!r} {self.headers} {short(self.body)}"


def read_http(c, head=False):
    raw = c.read_until(b"\r\n\r\n", 16384)
    lines = raw.split(b"\r\n")
    m = re.fullmatch(rb"HTTP/1\.1 (\d{3}) ([ -~]*)", lines[0])
    if not m:
        raise Mismatch(f"status line {short(lines[0])}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise Mismatch(f"header line {short(line)}")
        headers[name.strip().lower().decode()] = value.strip()
    status = int(m.group(1))
    if status == 100:
        return HttpReply(status, m.group(2), headers, b"")
    if b"" == headers.get("content-length", b"") or not headers["content-length"].isdigit():
        raise Mismatch(f"no Content-Length in {headers}")
    if "date" not in headers:
        raise Mismatch(f"no Date in {headers}")
    n = int(headers["content-length"])
    body = b"" if head else c.read_exact(n)
    return HttpReply(status, m.group(2), headers, body)


def http_request(method, target, headers=(), body=None, version=b"HTTP/1.1"):
    out = [b"%s %s %s\r\nHost: soak\r\n" % (method, target, version)]
    for h in headers:
        out.append(h + b"\r\n")
    if body is not None:
        out.append(b"Content-Length: %d\r\n" % len(body))
    out.append(b"\r\n")
    if body:
        out.append(body)
    return b"".join(out)


def http_check(what, status, body=None, content_type=None, length=None, connection=None,
               extra=None):
    def check(reply):
        problems = []
        if reply.status != status:
            problems.append(f"status {reply.status}")
        if body is not None and reply.body != body:
            problems.append(f"body {short(reply.body)}")
        if content_type is not None and reply.headers.get("content-type") != content_type:
            problems.append(f"content-type {reply.headers.get('content-type')!r}")
        if length is not None and reply.headers.get("content-length") != b"%d" % length:
            problems.append(f"content-length {reply.headers.get('content-length')!r}")
        if reply.headers.get("connection") != connection:
            problems.append(f"connection {reply.headers.get('connection')!r}")
        if extra is not None:
            problem = extra(reply)
            if problem:
                problems.append(problem)
        if problems:
            raise Mismatch(f"{what}: " + ", ".join(problems) + f" in {reply!r}")
    return check


def stats_problem(reply):
    try:
        stats = json.loads(reply.body)
    except ValueError:
        return "body is not JSON"
    if "listeners" not in stats or "connections" not in stats:
        return "stats without listeners/connections"
    return None


def http_exchange(ctx, close=False, version=b"HTTP/1.1"):
    """(request bytes, is HEAD, reply check); close asks the server to close after it."""
    rng = ctx.rng
    conn_header = ()
    connection = None
    if close and version == b"HTTP/1.1":
        conn_header, connection = (b"Connection: close",), b"close"
    elif version == b"HTTP/1.0":
        if close:
            connection = b"close"
        else:
            conn_header, connection = (b"Connection: keep-alive",), b"keep-alive"
    r = rng.random()
    if r < 0.30:
        target = b"/" if rng.random() < 0.7 else b"/?q=%d" % rng.randrange(1000)
        return (http_request(b"GET", target, conn_header, version=version), False,
                http_check("GET /", 200, HELLO, b"text/plain", None, connection))
    if r < 0.40:
        return (http_request(b"HEAD", b"/", conn_header, version=version), True,
                http_check("HEAD /", 200, b"", b"text/plain", len(HELLO), connection))
    if r < 0.50:
        return (http_request(b"GET", b"/json", conn_header, version=version), False,
                http_check("GET /json", 200, HELLO_JSON, b"application/json", None, connection))
    if r < 0.56:
        target = b"/missing/%d" % rng.randrange(10000)
        return (http_request(b"GET", target, conn_header, version=version), False,
                http_check("GET missing", 404, b"Not Found", b"text/plain", None, connection))
    if r < 0.60:
        method = rng.choice([b"PUT", b"DELETE", b"PATCH"])
        return (http_request(method, b"/", conn_header, body=b"", version=version), False,
                http_check(f"{method.decode()} /", 405, b"Method Not Allowed", b"text/plain", None,
                           connection, lambda rep: None if rep.headers.get("allow") == b"GET, HEAD"
                           else "allow header"))
    if r < 0.63:
        return (http_request(b"GET", b"/stats", conn_header, version=version), False,
                http_check("GET /stats", 200, None, b"application/json", None, connection,
                           stats_problem))
    body = rng.randbytes(ctx.size())
    content_type = rng.choice([b"application/octet-stream", b"text/plain", b"image/x-soak"])
    headers = conn_header + (b"Content-Type: " + content_type,)
    if r < 0.85 or version != b"HTTP/1.1":
        return (http_request(b"POST", b"/echo", headers, body=body, version=version), False,
                http_check("POST /echo", 200, body, content_type, None, connection))
    # Chunked: the body in random pieces.
    pieces = []
    at = 0
    for i in range(8):
        if at >= len(body):
            break
        n = len(body) - at if i == 7 else rng.randint(1, len(body) - at)
        pieces.append(b"%x\r\n%s\r\n" % (n, body[at:at + n]))
        at += n
    pieces.append(b"0\r\n\r\n")
    request = http_request(b"POST", b"/echo", headers + (b"Transfer-Encoding: chunked",)) + \
        b"".join(pieces)
    return request, False, http_check("POST /echo chunked", 200, body, content_type, None,
                                      connection)


def http_batch(ctx, c, n, close_last=False):
    exchanges = []
    size = 0
    for i in range(n):
        last = i == n - 1 or size > BATCH_BYTES
        exchanges.append(http_exchange(ctx, close_last and last))
        size += len(exchanges[-1][0])
        if last:
            break
    c.send(b"".join(r for r, _, _ in exchanges))
    return [(head, check) for _, head, check in exchanges]


def http_check_all(ctx, c, pending):
    for head, check in pending:
        check(read_http(c, head))
    ctx.counters.done(len(pending))


HTTP_MALFORMED = [
    (b"GET / HTTP/1.1\r\nHost soak\r\n\r\n", 400),
    (b"BLAH\x01 / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * (HTTP_MAX_HEADER + 100) + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (HTTP_MAX_BODY + 1), 413),
]


def http_session(ctx, mode):
    with Conn(ctx, ctx.ports["http"]) as c:
        if mode == "http10":
            keep = ctx.rng.random() < 0.5
            for i in range(ctx.rng.randint(1, 4) if keep else 1):
                request, head, check = http_exchange(ctx, close=not keep, version=b"HTTP/1.0")
                c.send(request)
                check(read_http(c, head))
                ctx.counters.done()
            if not keep:
                c.expect_close()
            return
        if mode == "continue":
            body = ctx.rng.randbytes(max(1, ctx.size()))  # no 100 is due for an empty body
            c.send(b"POST /echo HTTP/1.1\r\nHost: soak\r\nExpect: 100-continue\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body))
            interim = read_http(c)
            if interim.status != 100:
                raise Mismatch(f"Expect: 100-continue answered {interim!r}")
            c.send(body)
            http_check("POST after 100", 200, body, b"application/octet-stream")(read_http(c))
            ctx.counters.done()
            return
        lifetime = ctx.rng.uniform(10, 60) if mode == "long" else 0
        batches = 1000 if mode == "long" else ctx.rng.randint(1, 4)
        started = time.monotonic()
        for _ in range(batches):
            if mode == "keepalive":
                http_check_all(ctx, c, http_batch(ctx, c, 1))
            else:
                http_check_all(ctx, c, http_batch(ctx, c, ctx.rng.randint(1, 12)))
            if mode == "long":
                if time.monotonic() - started > lifetime or ctx.pause(0.02, 0.3):
                    break
            elif ctx.stop.is_set():
                break
        if mode == "conn_close":
            http_check_all(ctx, c, http_batch(ctx, c, ctx.rng.randint(1, 4), close_last=True))
            c.expect_close()
        elif mode == "rst_mid":
            request, _, _ = http_exchange(ctx)
            c.send(request[:ctx.rng.randint(1, len(request) - 1)])
            c.reset()
        elif mode == "rst_unread":
            http_batch(ctx, c, ctx.rng.randint(1, 8))
            c.reset()
        elif mode == "half_close":
            pending = http_batch(ctx, c, ctx.rng.randint(1, 8))
            c.half_close()
            http_check_all(ctx, c, pending)
            c.expect_close()
        elif mode == "malformed":
            data, status = ctx.rng.choice(HTTP_MALFORMED)
            c.send(data)
            http_check(f"malformed {short(data)}", status, b"", None, 0, b"close")(read_http(c))
            c.expect_close(allow_reset=True)
            ctx.counters.done()
        elif ctx.rng.random() < 0.3:
            c.reset()


# ---- chat ----

CHAT_OTHER = re.compile(rb"\* \d+ (?:joined|left)|\d+: [ -~]*|adm-[!-~]+")
CHAT_MINE = re.compile(rb"(\d+): chat (\S+) (\d+) [!-~]*")


class ChatMember:
    """A chat connection and what it still expects from the other members of its group."""

    def __init__(self, ctx):
        self.c = Conn(ctx, ctx.ports["chat"])
        first = self.c.read_until(b"\n", 256)
        m = re.fullmatch(rb"\* you are (\d+)", first)
        if not m:
            self.c.close()
            raise Mismatch(f"chat greeting {short(first)}")
        self.id = int(m.group(1))
        self.sent = 0
        self.next_from = {}  # sender id -> next sequence number expected
        self.kicked_line = None

    def say(self, ctx, group_tag):
        text = bytes(ctx.rng.choices(PRINTABLE, k=ctx.rng.randint(0, 200)))
        self.c.send(b"chat %s %d %s\n" % (group_tag.encode(), self.sent, text))
        self.sent += 1

    def read_line(self, group_tag, wanted_line=None):
        """Reads one line and checks it; returns True when it is wanted_line."""
        line = self.c.read_until(b"\n", 4096)
        if wanted_line is not None and line == wanted_line:
            return True
        m = CHAT_MINE.fullmatch(line)
        if m and m.group(2) == group_tag.encode():
            sender, seq = int(m.group(1)), int(m.group(3))
            if sender == self.id:
                raise Mismatch(f"chat: member {self.id} got its own line back: {short(line)}")
            if seq != self.next_from.get(sender, 0):
                raise Mismatch(f"chat: from {sender} wanted #{self.next_from.get(sender, 0)}, "
                               f"got #{seq}")
            self.next_from[sender] = seq + 1
            return False
        if not CHAT_OTHER.fullmatch(line):
            raise Mismatch(f"chat: unexpected line {short(line)}")
        return False

    def catch_up(self, group_tag, members):
        """Reads until every other member's lines so far have arrived (bounded by their count)."""
        wanted = {m.id: m.sent for m in members if m is not self}
        for _ in range(100000):
            if all(self.next_from.get(i, 0) >= n for i, n in wanted.items()):
                return
            self.read_line(group_tag)
        raise Mismatch("chat: too many lines while catching up")


def chat_session(ctx, mode):
    group_tag = ctx.tag()
    members = []
    try:
        for _ in range(ctx.rng.randint(2, 3)):
            members.append(ChatMember(ctx))
        lifetime = ctx.rng.uniform(10, 40) if mode == "long" else 0
        rounds = 1000 if mode == "long" else ctx.rng.randint(1, 5)
        started = time.monotonic()
        for _ in range(rounds):
            for m in members:
                for _ in range(ctx.rng.randint(1, 3)):
                    m.say(ctx, group_tag)
            for m in members:
                m.catch_up(group_tag, members)
            ctx.counters.done(sum(m.sent for m in members))
            if mode == "long":
                if time.monotonic() - started > lifetime or ctx.pause(0.1, 1.0):
                    break
            elif ctx.stop.is_set():
                break
        for m in members:
            r = ctx.rng.random()
            if r < 0.2:
                m.c.send(b"partial line without its end")
                m.c.reset()
            elif r < 0.4:
                m.c.reset()
            else:
                m.c.close()
    finally:
        for m in members:
            m.c.close()


# ---- admin console ----

LIST_ROW = re.compile(rb"\d+ \S+ \S+ loop=\d+ age=\d+s in=\d+ out=\d+")
LISTENERS = ("line-echo", "length-echo", "kv", "http", "chat", "netstrings", "admin")


class Admin:
    def __init__(self, ctx):
        self.c = Conn(ctx, ctx.ports["admin"])
        banner = self.c.read_until(b"\n", 256)
        if banner != b"reactord admin: type help":
            self.c.close()
            raise Mismatch(f"admin banner {short(banner)}")

    def command(self, line):
        self.c.send(line + b"\n")
        return self.c.read_until(b"\n", 1 << 20)

    def expect(self, line, wanted):
        got = self.command(line)
        if got != wanted:
            raise Mismatch(f"admin {line!r}: wanted {wanted!r}, got {short(got)}")

    def list(self):
        self.c.send(b"list\n")
        rows = []
        for _ in range(100000):
            line = self.c.read_until(b"\n", 4096)
            m = re.fullmatch(rb"OK (\d+) connections", line)
            if m:
                if int(m.group(1)) != len(rows):
                    raise Mismatch(f"admin list: {len(rows)} rows, then {line!r}")
                return rows
            if not LIST_ROW.fullmatch(line):
                raise Mismatch(f"admin list row {short(line)}")
            rows.append(line)
        raise Mismatch("admin list: no end")

    def stats(self):
        line = self.command(b"stats")
        try:
            stats = json.loads(line)
        except ValueError:
            raise Mismatch(f"admin stats: not JSON: {short(line)}")
        missing = [n for n in LISTENERS if n not in stats.get("listeners", {})]
        if missing or not isinstance(stats.get("connections"), int):
            raise Mismatch(f"admin stats without {missing or 'connections'}")
        return stats


def admin_session(ctx):
    # The console allows 16 sessions: one per worker at a time, and one for the soak itself.
    if not ctx.admin_gate.acquire(timeout=1.0):
        return
    try:
        admin = Admin(ctx)
        try:
            for _ in range(ctx.rng.randint(1, 6)):
                r = ctx.rng.random()
                if r < 0.25:
                    admin.list()
                elif r < 0.5:
                    admin.stats()
                elif r < 0.55:
                    admin.c.send(b"help\n")
                    admin.c.read_until(b"  quit                     end this session\n", 4096)
                elif r < 0.6:
                    admin.expect(b"frobnicate", b"ERR unknown command 'frobnicate' (try help)")
                elif r < 0.65:
                    admin.expect(b"send 999999999 x", b"ERR no connection 999999999")
                elif r < 0.7:
                    admin.expect(b"kick abc", b"ERR usage: kick ID")
                elif r < 0.75:
                    admin.expect(b"broadcast nope x", b"ERR no listener nope")
                elif r < 0.85:
                    admin_send_and_kick_chat(ctx, admin)
                else:
                    admin_kick_kv(ctx, admin)
                ctx.counters.done()
                if ctx.stop.is_set():
                    break
            if ctx.rng.random() < 0.7:
                admin.expect(b"quit", b"bye")
                admin.c.expect_close()
        finally:
            admin.c.close()
    finally:
        ctx.admin_gate.release()


def admin_send_and_kick_chat(ctx, admin):
    """send reaches a chat member (another loop, maybe), broadcast reaches all, kick closes."""
    member = ChatMember(ctx)
    try:
        tag = ctx.tag()
        if ctx.rng.random() < 0.5:
            admin.expect(b"send %d adm-%s" % (member.id, tag.encode()), b"OK")
        else:
            got = admin.command(b"broadcast chat adm-%s" % tag.encode())
            if not re.fullmatch(rb"OK sent to [1-9]\d*", got):
                raise Mismatch(f"admin broadcast: {short(got)}")
        wanted = b"adm-" + tag.encode()
        for _ in range(100000):
            if member.read_line("", wanted):
                break
        else:
            raise Mismatch("admin send: the line never arrived")
        admin.expect(b"kick %d" % member.id, b"OK")
        # Lines already queued may come first; then the close.
        rest = member.c.read_to_close(allow_reset=False)
        for line in rest.split(b"\n")[:-1]:
            if not CHAT_OTHER.fullmatch(line) and not CHAT_MINE.fullmatch(line):
                raise Mismatch(f"chat after kick: unexpected line {short(line)}")
    finally:
        member.c.close()


def admin_kick_kv(ctx, admin):
    with Conn(ctx, ctx.ports["kv"]) as c:
        c.send(resp_command(b"CLIENT", b"ID"))
        conn_id = read_resp(c)
        if not isinstance(conn_id, int):
            raise Mismatch(f"CLIENT ID: {short(conn_id)}")
        admin.expect(b"kick %d" % conn_id, b"OK")
        c.expect_close()


# ---- the thread pool ----

SCENARIOS = ["line", "length", "netstrings", "kv", "http", "chat", "admin"]
SCENARIO_WEIGHTS = [14, 12, 12, 22, 20, 12, 4]
ECHO_PROTOCOLS = {"line": LineEcho, "length": LengthEcho, "netstrings": NetstringsEcho}


def run_scenario(ctx):
    rng = ctx.rng
    kind = rng.choices(SCENARIOS, SCENARIO_WEIGHTS)[0]
    if kind in ECHO_PROTOCOLS:
        proto = ECHO_PROTOCOLS[kind]
        mode = rng.choices(ECHO_MODES, ECHO_WEIGHTS)[0]
        if kind == "line" and rng.random() < 0.03:
            mode = "idle_timeout"
        return f"{proto.name}/{mode}", lambda: echo_session(ctx, proto, mode)
    if kind == "kv":
        mode = rng.choices(KV_MODES, KV_WEIGHTS)[0]
        return f"kv/{mode}", lambda: kv_session(ctx, mode)
    if kind == "http":
        mode = rng.choices(HTTP_MODES, HTTP_WEIGHTS)[0]
        return f"http/{mode}", lambda: http_session(ctx, mode)
    if kind == "chat":
        mode = "long" if rng.random() < 0.15 else "short"
        return f"chat/{mode}", lambda: chat_session(ctx, mode)
    return "admin", lambda: admin_session(ctx)


def client_thread(ctx, max_scenarios):
    for _ in range(max_scenarios):
        if ctx.stop.is_set():
            return
        name, run = run_scenario(ctx)
        try:
            run()
        except (Mismatch, Closed, OSError) as e:
            ctx.counters.error(f"{ctx.name} {name}: {type(e).__name__}: {e}")
        except Exception as e:  # a bug in the client is an error too, never a silent stop
            ctx.counters.error(f"{ctx.name} {name}: client bug: {type(e).__name__}: {e}")
        if ctx.pause(0, 0.05):
            return


class Parked:
    def __init__(self, kind, conn):
        self.kind, self.conn, self.last = kind, conn, time.monotonic()


def parker_thread(ctx, most, max_steps):
    """Keeps a varying number of mostly idle connections, used now and then and closed in every
    way; the line-echo ones may meet the server's idle timeout."""
    parked = []
    target = ctx.rng.randint(0, most)
    try:
        for _ in range(max_steps):
            if ctx.pause(0.02, 0.2):
                return
            if ctx.rng.random() < 0.02:
                target = ctx.rng.randint(0, most)
            name = "parked"
            try:
                r = ctx.rng.random()
                if len(parked) < target and r < 0.5:
                    kind = ctx.rng.choice(["line", "length", "netstrings", "kv", "http"])
                    name = f"parked {kind} open"
                    port = ctx.ports[ECHO_PROTOCOLS[kind].name if kind in ECHO_PROTOCOLS else kind]
                    parked.append(Parked(kind, Conn(ctx, port)))
                elif parked and (len(parked) > target or r < 0.15):
                    p = parked.pop(ctx.rng.randrange(len(parked)))
                    name = f"parked {p.kind} close"
                    p.conn.reset() if ctx.rng.random() < 0.4 else p.conn.close()
                elif parked:
                    p = ctx.rng.choice(parked)
                    name = f"parked {p.kind} use"
                    park_use(ctx, p, parked)
            except (Mismatch, Closed, OSError) as e:
                ctx.counters.error(f"{ctx.name} {name}: {type(e).__name__}: {e}")
            except Exception as e:
                ctx.counters.error(f"{ctx.name} {name}: client bug: {type(e).__name__}: {e}")
    finally:
        for p in parked:
            p.conn.close()


def park_use(ctx, p, parked):
    idle = time.monotonic() - p.last
    c = p.conn
    if p.kind == "line" and idle > LINE_IDLE_S + 1.0:
        c.expect_close()  # the server's idle timeout closed it
        c.close()
        parked.remove(p)
        ctx.counters.done()
        return
    if p.kind == "line" and idle > LINE_IDLE_S - 2.0:
        return  # too close to the timeout to tell
    try:
        if p.kind in ECHO_PROTOCOLS:
            proto = ECHO_PROTOCOLS[p.kind]
            echo_check(ctx, c, proto, echo_batch(ctx, c, proto, 3))
        elif p.kind == "kv":
            try:
                kv_check(ctx, c, kv_batch(ctx, c, ctx.rng.randint(1, 3)))
            except BaseException:
                ctx.kv.forget()
                raise
        else:
            http_check_all(ctx, c, http_batch(ctx, c, ctx.rng.randint(1, 3)))
    except BaseException:
        c.close()
        parked.remove(p)
        raise
    p.last = time.monotonic()


def set_parent_death_signal():
    """Dies with the soak even if it is killed outright."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", required=True, help="JSON: listener name -> port")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--park", type=int, default=30, help="most parked connections")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parent", type=int, default=0, help="exit if this pid is gone")
    parser.add_argument("--max-seconds", type=float, default=7 * 24 * 3600,
                        help="stop by itself after this long")
    args = parser.parse_args()

    set_parent_death_signal()
    if args.parent and os.getppid() != args.parent:
        return 3
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin():
        for line in sys.stdin:  # ends at EOF: the soak is gone or done
            if line.strip() == "stop":
                break
        stop.set()
    threading.Thread(target=watch_stdin, daemon=True).start()

    ports = json.loads(args.ports)
    counters = Counters()
    admin_gate = threading.Semaphore(1)
    threads = []
    for i in range(args.threads):
        ctx = Ctx(args.worker, f"w{args.worker}t{i}", args.seed * 1000 + i, ports, counters,
                  stop, admin_gate)
        threads.append(threading.Thread(target=client_thread, args=(ctx, 10 ** 7), daemon=True))
    park_ctx = Ctx(args.worker, f"w{args.worker}p", args.seed * 1000 + 999, ports, counters, stop,
                   admin_gate)
    threads.append(threading.Thread(target=parker_thread, args=(park_ctx, args.park, 10 ** 8),
                                    daemon=True))
    for t in threads:
        t.start()

    started = time.monotonic()
    while not stop.wait(1.0):
        print(json.dumps(counters.report()), flush=True)
        if time.monotonic() - started > args.max_seconds:
            stop.set()
    # Each thread finishes its current operation (bounded by TIMEOUT per read).
    deadline = time.monotonic() + 3 * TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    report = counters.report(final=True)
    report["stuck_threads"] = stuck
    print(json.dumps(report), flush=True)
    return 0 if stuck == 0 else 4


if __name__ == "__main__":
    sys.exit(main())
