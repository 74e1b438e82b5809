"""HTTP/1.1 conformance over real sockets: each raw request of the table goes to reactord's http
listener and to a real nginx started here on a port of its own, and the answers are compared:
the status codes, in order, and whether the connection is closed afterwards. Where reactord
follows RFC 9112 more strictly than nginx 1.22, the table says so and why. The nginx column is
skipped, with a message, only when nginx is not installed.

Whether a connection stayed open is seen without waiting for a timeout: every request is followed
on the same write by a probe request; a server that kept the connection answers the probe, one
that closed it does not."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import DEADLINE, Reactord, connect, listener, wait_until

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)

PROBE = b"GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"
GET_JSON = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def te(codings):
    return (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + codings +
            b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")


OPEN, CLOSED = "open", "closed"
# (name, request, (statuses, connection) from reactord, nginx's when it differs, why it differs)
CASES = [
    # 1. The CRLF after chunk data: without it the next "request" is smuggled.
    ("chunk data without its CRLF", CHUNKED + b"3\r\nabcXX0\r\n\r\n" + GET_JSON,
     ([400], CLOSED), None, None),
    ("chunk data one byte longer", CHUNKED + b"3\r\nabcd\r\n0\r\n\r\n", ([400], CLOSED), None, None),
    # 2. HTTP/1.0 with chunked framing (RFC 9112 §6.1).
    ("HTTP/1.0 chunked, keep-alive",
     b"POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n3\r\nabc\r\n0\r\n\r\n", ([400], CLOSED), None, None),
    ("HTTP/1.0 chunked",
     b"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     ([400], CLOSED), None, None),
    # 3. Host and field names (RFC 9112 §3.2, §5).
    ("no Host", b"GET /json HTTP/1.1\r\n\r\n", ([400], CLOSED), None, None),
    ("two Host lines", b"GET /json HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", ([400], CLOSED), None,
     None),
    ("empty Host", b"GET /json HTTP/1.1\r\nHost:\r\n\r\n", ([400], CLOSED), None, None),
    ("Host with a space", b"GET /json HTTP/1.1\r\nHost: a b\r\n\r\n", ([400], CLOSED), None, None),
    ("Host with a slash", b"GET /json HTTP/1.1\r\nHost: a/b\r\n\r\n", ([400], CLOSED), None, None),
    ("empty field name", b"GET /json HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", ([400], CLOSED), None,
     None),
    ("HTTP/1.0 without Host", b"GET /json HTTP/1.0\r\n\r\n", ([200], CLOSED), None, None),
    # 4. Versions.
    ("HTTP/2.0", b"GET /json HTTP/2.0\r\nHost: x\r\n\r\n", ([505], CLOSED), None, None),
    ("HTTP/3.0", b"GET /json HTTP/3.0\r\nHost: x\r\n\r\n", ([505], CLOSED), None, None),
    ("HTTP/9.9", b"GET /json HTTP/9.9\r\nHost: x\r\n\r\n", ([505], CLOSED), None, None),
    ("HTTP/1.9 served as 1.1", b"GET /json HTTP/1.9\r\nHost: x\r\n\r\n" + GET_JSON,
     ([200, 200], OPEN), None, None),
    ("HTTP/0.9 spelled out", b"GET /json HTTP/0.9\r\nHost: x\r\n\r\n", ([400], CLOSED), None, None),
    ("two-digit minor version", b"GET /json HTTP/1.10\r\nHost: x\r\n\r\n", ([400], CLOSED),
     ([200], OPEN), "HTTP-version is one digit each side of the dot (RFC 9112 §2.3)"),
    # 5. Transfer codings: only chunked is implemented.
    ("TE gzip", te(b"gzip"), ([501], CLOSED), None, None),
    ("TE xchunked", te(b"xchunked"), ([501], CLOSED), None, None),
    ("TE chunked, identity", te(b"chunked, identity"), ([501], CLOSED), None, None),
    ("TE identity, chunked", te(b"identity, chunked"), ([501], CLOSED), None, None),
    ("TE gzip, chunked", te(b"gzip, chunked"), ([501], CLOSED), None, None),
    ("TE chunked, chunked", te(b"chunked, chunked"), ([501], CLOSED), None, None),
    ("TE over two lines",
     b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n3\r\nabc\r\n0\r\n\r\n", ([501], CLOSED), ([400], CLOSED),
     "two lines are one list (RFC 9110 §5.3), gzip then chunked: a coding not implemented"),
    ("TE CHUNKED", te(b"CHUNKED"), ([200], OPEN), None, None),
    ("Content-Length and TE",
     b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", ([400], CLOSED), None, None),
    # 6. Chunk extensions.
    ("extensions a=b;c=d", CHUNKED + b"3;a=b;c=d\r\nabc\r\n0\r\n\r\n" + GET_JSON,
     ([200, 200], OPEN), None, None),
    ("extension after a space", CHUNKED + b"3; a=b\r\nabc\r\n0\r\n\r\n", ([200], OPEN), None, None),
    ("extension then a space", CHUNKED + b"3;a=b \r\nabc\r\n0\r\n\r\n", ([200], OPEN), None, None),
    ("quoted extension", CHUNKED + b'3;a="q";c=d\r\nabc\r\n0\r\n\r\n', ([200], OPEN), None, None),
    ("chunk size then a space", CHUNKED + b"3 \r\nabc\r\n0\r\n\r\n", ([200], OPEN), None, None),
    ("chunk size with 0x", CHUNKED + b"0x3\r\nabc\r\n0\r\n\r\n", ([400], CLOSED), None, None),
    ("negative chunk size", CHUNKED + b"-3\r\nabc\r\n0\r\n\r\n", ([400], CLOSED), None, None),
    ("chunk size with leading zeros", CHUNKED + b"0" * 30 + b"3\r\nabc\r\n0\r\n\r\n",
     ([200], OPEN), None, None),
    ("chunk size past max_body", CHUNKED + b"ffffffffffffffff\r\n", ([413], CLOSED),
     ([400], CLOSED), "a body past max_body is 413 however its size is declared"),
    ("chunk framing with LF alone", CHUNKED + b"3\nabc\n0\n\n", ([400], CLOSED), ([200], OPEN),
     "bare LF is refused everywhere, as in the header section"),
    # 7. Request targets.
    ("absolute-form", b"GET http://x/json HTTP/1.1\r\nHost: x\r\n\r\n", ([200], OPEN), None, None),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", ([200], OPEN), ([400], CLOSED),
     "asterisk-form is the OPTIONS request for the server as a whole (RFC 9112 §3.2.4)"),
    ("GET *", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", ([400], CLOSED), None, None),
    # 8. HTTP/0.9: nginx serves the body alone (no status line, shown as 0) and closes.
    ("HTTP/0.9 request line", b"GET /\r\n", ([505], CLOSED), ([0], CLOSED),
     "HTTP/0.9 is not served; refused as soon as its line ends"),
    # 9. Trailers are field lines: checked like the header section (nginx ignores them).
    ("trailer with whitespace before the colon", CHUNKED + b"3\r\nabc\r\n0\r\nX-T : v\r\n\r\n",
     ([400], CLOSED), ([200], OPEN), "RFC 9112 §5.1: MUST reject whitespace before the colon"),
    ("trailer folded", CHUNKED + b"3\r\nabc\r\n0\r\nX-T: v\r\n w\r\n\r\n", ([400], CLOSED),
     ([200], OPEN), "obs-fold is refused in trailers as in headers"),
    ("valid trailers", CHUNKED + b"3\r\nabc\r\n0\r\nX-T: v\r\n\r\n", ([200], OPEN), None, None),
    # The same class beyond the list.
    ("obs-fold", b"GET /json HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", ([400], CLOSED), None,
     None),
    ("bare LF line ends", b"GET /json HTTP/1.1\nHost: x\n\n", ([400], CLOSED), ([200], OPEN),
     "RFC 9112 §2.2 lets a recipient accept bare LF; refusing it leaves no parser disagreement"),
    ("CR in a header value", b"GET /json HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", ([400], CLOSED),
     None, None),
    ("control byte in a header value", b"GET /json HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
     ([400], CLOSED), ([200], OPEN), "CTLs are not field-content (RFC 9110 §5.5)"),
    ("Content-Length with a sign", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
     ([400], CLOSED), None, None),
    ("Content-Length as a list",
     b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", ([400], CLOSED), None,
     None),
    ("two Content-Lengths",
     b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     ([400], CLOSED), None, None),
    ("whitespace before a colon", b"GET /json HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n",
     ([400], CLOSED), None, None),
    ("whitespace before the first header", b"GET /json HTTP/1.1\r\n Host: x\r\n\r\n",
     ([400], CLOSED), None, None),
    ("valid pipelined requests", GET_JSON + b"POST /echo HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 2\r\n\r\nhi" + GET_JSON, ([200, 200, 200], OPEN), None, None),
]

HEAD_END = re.compile(rb"\r\n\r\n")
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def exchange(port, request):
    """Sends request and the probe in one write and reads to EOF; returns (final statuses, the
    probe's reply or None). A reply without a status line (HTTP/0.9) counts as status 0."""
    with connect(port) as sock:
        sock.sendall(request + PROBE)
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                replies = parse(data)
                if replies and replies[-1][2]:  # the probe was answered
                    break
        except ConnectionResetError:
            pass
    replies = parse(data)
    statuses = [status for status, _, _ in replies if not (100 <= status < 200)]
    probe = None
    if replies and replies[-1][2]:
        statuses.pop()
        probe = replies[-1]
    return statuses, probe


def parse(data):
    """[(status, body, is the probe's reply)] of the complete replies in data."""
    replies = []
    if data and not data.startswith(b"HTTP/"):
        return [(0, data, False)]
    while data:
        end = HEAD_END.search(data)
        if not end:
            break
        head = data[:end.end()]
        m = STATUS.match(head)
        if not m:
            break
        status = int(m.group(1))
        length = LENGTH.search(head)
        n = int(length.group(1)) if length and status >= 200 else 0
        if len(data) < end.end() + n:
            break
        body = data[end.end():end.end() + n]
        # reactord answers the probe 404 Not Found, nginx 200 "probe".
        replies.append((status, body, body in (b"probe\n", b"Not Found")))
        data = data[end.end() + n:]
    return replies


class Nginx:
    """nginx 1.22 in one process (master_process off, so no worker user: the same as root and as
    any other user) with a minimal configuration in a temp dir, on a port picked here."""

    CONFIG = """
master_process off;
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /probe {{ return 200 "probe\\n"; }}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nginx-test-")
        for attempt in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self.CONFIG.format(dir=self.dir, port=self.port))
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c", conf,
                 "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if wait_until(lambda: self.proc.poll() is not None or self._accepts(),
                          what="nginx to listen") and self.proc.poll() is None:
                return
            # The port was taken between the pick and nginx's bind: pick another.
        raise AssertionError("nginx did not start: " + self.proc.stderr.read().decode())

    def _accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Reactord({"listeners": [listener("http", "http", "http")]})
        cls.nginx = Nginx() if NGINX else None

    @classmethod
    def tearDownClass(cls):
        if cls.nginx:
            cls.nginx.stop()
        cls.server.cleanup()

    def answers(self, port, request):
        statuses, probe = exchange(port, request)
        return statuses, OPEN if probe else CLOSED

    def test_reactord(self):
        for name, request, ours, _, _ in CASES:
            with self.subTest(name):
                self.assertEqual(self.answers(self.server.ports["http"], request), ours)

    def test_nginx_agrees_but_where_the_table_says_why(self):
        if not self.nginx:
            self.skipTest("nginx is not installed: reactord's answers are checked against the "
                          "table alone (test_reactord)")
        for name, request, ours, theirs, why in CASES:
            with self.subTest(name):
                expected = theirs if theirs is not None else ours
                self.assertEqual(self.answers(self.nginx.port, request), expected,
                                 why or "nginx and reactord should agree here")

    def test_probe_alone_is_answered(self):
        self.assertEqual(self.answers(self.server.ports["http"], b""), ([], OPEN))
        if self.nginx:
            self.assertEqual(self.answers(self.nginx.port, b""), ([], OPEN))


if __name__ == "__main__":
    unittest.main()
