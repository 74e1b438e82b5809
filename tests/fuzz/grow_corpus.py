#!/usr/bin/env python3
"""Regrows the seed corpus of the fuzz targets in tests/fuzz/corpus/<target>/.

    tests/fuzz/grow_corpus.py [--corpus DIR] [--reactord PATH]

Traffic seeds: a recorder listens on 127.0.0.1:0, answers just enough for the clients to carry on
(RESP replies, HTTP 200 and "100 Continue"), and saves what each connection sent. It runs
redis-benchmark (PING, SET, GET, pipelined with -P 16) and redis-cli for the resp target, and curl
(GET, HEAD, POST, chunked upload, Expect: 100-continue, HTTP/1.0, two requests on one connection)
for the http target; the HTTP captures double as line seeds (CRLF-terminated lines).

Hand-written seeds cover what clients do not send: length-field frames in several layouts,
netstrings, line edge cases, and for the config target the example configs in server/configs,
reactord's --print-default output (with --reactord) and small broken variants.

Attack seeds replay the inputs of the conformance tables in tests/integration
(test_http_conformance.py against nginx, test_resp_conformance.py against redis-server): each
input whole and fed byte by byte, named attack-<case>.

Every codec seed starts with the 16 control bytes described in tests/fuzz/fuzz_input.hpp; traffic
seeds get defaults (all limits at their defaults) and one cut in the middle. Files are named
<kind>-<what>.bin and overwritten on each run; regression seeds (regress-*) are never touched.
Each file is cut to 4 KiB. Needs redis-tools and curl.
"""

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAX_SEED = 4096
CONTROL_SIZE = 16


def control(limit=0, options=b"", cuts=(), separate=False, bytewise=False):
    """The control bytes of fuzz_input.hpp: limit selector, option bytes [2..7], cut points."""
    c = bytearray(CONTROL_SIZE)
    struct.pack_into("<H", c, 0, limit)
    c[2:2 + len(options)] = options[:6]
    c[8] = len(cuts[:3]) | (4 if separate else 0) | (8 if bytewise else 0)
    for i, cut in enumerate(cuts[:3]):
        struct.pack_into("<H", c, 9 + 2 * i, cut & 0xFFFF)
    return bytes(c)


def traffic_seed(stream):
    stream = stream[:MAX_SEED - CONTROL_SIZE]
    return control(cuts=(len(stream) // 2,), separate=True) + stream


class Corpus:
    def __init__(self, root):
        self.root = root
        self.written = {}

    def write(self, target, name, data):
        directory = os.path.join(self.root, target)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name + ".bin"), "wb") as f:
            f.write(data[:MAX_SEED])
        self.written[target] = self.written.get(target, 0) + 1


# ---- the recorder ----------------------------------------------------------------------------

class RespReplies:
    """Counts whole requests in what arrived and answers each the way a Redis server would."""

    def __init__(self):
        self.pending = b""

    def feed(self, data):
        self.pending += data
        replies = b""
        while True:
            args, used = self._next_request(self.pending)
            if used == 0:
                return replies
            self.pending = self.pending[used:]
            if args:
                replies += self._reply(args)

    @staticmethod
    def _next_request(buf):
        if not buf:
            return None, 0
        if buf[:1] != b"*":
            end = buf.find(b"\n")
            return (buf[:end].split(), end + 1) if end >= 0 else (None, 0)
        end = buf.find(b"\r\n")
        if end < 0:
            return None, 0
        count, pos, args = int(buf[1:end]), end + 2, []
        for _ in range(count):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None, 0
            size = int(buf[pos + 1:end])
            if len(buf) < end + 2 + size + 2:
                return None, 0
            args.append(buf[end + 2:end + 2 + size])
            pos = end + 2 + size + 2
        return args, pos

    @staticmethod
    def _reply(args):
        command = args[0].upper()
        if command == b"PING":
            return b"+PONG\r\n"
        if command == b"GET":
            return b"$3\r\nbar\r\n"
        if command == b"CONFIG":
            return b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
        if command in (b"COMMAND", b"HELLO"):
            return b"-ERR unknown command\r\n"
        return b"+OK\r\n"


class HttpReplies:
    """Answers each whole request with 200 (and "100 Continue" when asked); says when to close."""

    def __init__(self):
        self.pending = b""
        self.continued = False
        self.close = False

    def feed(self, data):
        self.pending += data
        replies = b""
        while True:
            head_end = self.pending.find(b"\r\n\r\n")
            if head_end < 0:
                return replies
            head = self.pending[:head_end].decode("latin-1").lower()
            if "expect: 100-continue" in head and not self.continued:
                self.continued = True
                replies += b"HTTP/1.1 100 Continue\r\n\r\n"
            end = self._request_end(head, head_end + 4)
            if end is None:
                return replies
            self.pending = self.pending[end:]
            self.continued = False
            self.close = "connection: close" in head or head.split("\r\n")[0].endswith("1.0")
            body = b"" if head.startswith("head ") else b"ok"
            replies += (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" +
                        (b"Connection: close\r\n" if self.close else b"") + b"\r\n" + body)
            if self.close:
                return replies

    def _request_end(self, head, body_start):
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                end = body_start + int(line.split(":", 1)[1])
                return end if len(self.pending) >= end else None
            if line.startswith("transfer-encoding:") and "chunked" in line:
                pos = body_start
                while True:
                    size_end = self.pending.find(b"\r\n", pos)
                    if size_end < 0:
                        return None
                    size = int(self.pending[pos:size_end].split(b";")[0], 16)
                    if size == 0:
                        # Trailer lines, if any, then the empty line.
                        end = self.pending.find(b"\r\n\r\n", size_end)
                        return end + 4 if end >= 0 else None
                    pos = size_end + 2 + size + 2
                    if len(self.pending) < pos:
                        return None
        return body_start


class Recorder:
    """A loopback server that keeps each connection's bytes, answering with make_replies()."""

    def __init__(self, make_replies):
        self.make_replies = make_replies
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.captures = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        replies = self.make_replies()
        received = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                received += data
                out = replies.feed(data)
                if out:
                    conn.sendall(out)
                if getattr(replies, "close", False):
                    break
        with self.lock:
            if received:
                self.captures.append(received)

    def take(self):
        with self.lock:
            captures, self.captures = self.captures, []
        return captures

    def close(self):
        self.sock.close()


def run(command, stdin=None):
    subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60, check=False)


def record(recorder, command, stdin=None):
    """Runs one client and returns what its connections sent, in the order they closed."""
    run(command, stdin)
    # The recorder's threads see the clients' FINs right after the clients exit: wait until no
    # capture has come in for a little while.
    captures = []
    quiet = 0
    for _ in range(250):
        threading.Event().wait(0.02)
        more = recorder.take()
        captures += more
        quiet = 0 if more or not captures else quiet + 1
        if quiet == 10:
            break
    return captures


def grow_resp(corpus):
    recorder = Recorder(RespReplies)
    port = str(recorder.port)
    bench = ["redis-benchmark", "-h", "127.0.0.1", "-p", port, "-c", "1", "-n", "48", "-d", "8"]
    runs = {
        "benchmark-ping": bench + ["-t", "ping_inline,ping_mbulk"],
        "benchmark-set": bench + ["-t", "set"],
        "benchmark-get": bench + ["-t", "get"],
        "benchmark-pipelined": bench + ["-t", "set,get", "-P", "16"],
        "cli-set": ["redis-cli", "-h", "127.0.0.1", "-p", port, "SET", "key:1", "hello world"],
        "cli-get": ["redis-cli", "-h", "127.0.0.1", "-p", port, "GET", "key:1"],
        "cli-binary": ["redis-cli", "-h", "127.0.0.1", "-p", port, "SET", "b", "a\r\nb\tc"],
        "cli-mset": ["redis-cli", "-h", "127.0.0.1", "-p", port, "MSET", "a", "1", "b", "", "c",
                     "3"],
    }
    for name, command in runs.items():
        for i, stream in enumerate(record(recorder, command)):
            corpus.write("resp", "traffic-%s-%d" % (name, i), traffic_seed(stream))
    # redis-cli reading commands from stdin, several per connection.
    script = b"PING\nSET counter 10\nINCR counter\nGET counter\nDEL counter\n"
    for i, stream in enumerate(record(recorder, ["redis-cli", "-h", "127.0.0.1", "-p", port],
                                      stdin=script)):
        corpus.write("resp", "traffic-cli-script-%d" % i, traffic_seed(stream))
    recorder.close()


def grow_http(corpus):
    recorder = Recorder(HttpReplies)
    url = "http://127.0.0.1:%d" % recorder.port
    curl = ["curl", "-s", "-o", "/dev/null", "--max-time", "10"]
    runs = {
        "get": curl + [url + "/index.html?q=1&r=two"],
        "head": curl + ["-I", url + "/"],
        "post-form": curl + ["-d", "name=reactor&kind=framework", url + "/submit"],
        "post-json": curl + ["-H", "Content-Type: application/json", "--data-binary",
                             '{"key": "value", "n": [1, 2, 3]}', url + "/api"],
        "chunked": curl + ["-H", "Transfer-Encoding: chunked", "--data-binary", "@-",
                           url + "/upload"],
        "expect-continue": curl + ["-H", "Expect: 100-continue", "--data-binary", "x" * 300,
                                   url + "/upload"],
        "http10": curl + ["--http1.0", url + "/old"],
        "keepalive-two": curl + [url + "/a", url + "/b"],
        "connection-close": curl + ["-H", "Connection: close", url + "/bye"],
        "put-headers": curl + ["-X", "PUT", "-H", "X-Trace: abc", "-H", "Accept: */*",
                               "--data-binary", "payload", url + "/item/7"],
    }
    for name, command in runs.items():
        stdin = b"first piece\nsecond piece\n" if name == "chunked" else None
        for i, stream in enumerate(record(recorder, command, stdin)):
            corpus.write("http", "traffic-%s-%d" % (name, i), traffic_seed(stream))
            corpus.write("line", "traffic-http-%s-%d" % (name, i), traffic_seed(stream))
    recorder.close()


# ---- hand-written seeds ----------------------------------------------------------------------

def grow_length(corpus):
    def frame(payload, width=4, order=">"):
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
        return struct.pack(order + fmt, len(payload)) + payload

    seeds = {
        "default": control() + frame(b"hello") + frame(b"") + frame(b"world!"),
        "partial": control(cuts=(3, 6)) + frame(b"abcdefgh") + frame(b"tail")[:5],
        "oversize": control(limit=64) + struct.pack(">I", 1000) + b"x" * 8,
        "huge-field": control(options=bytes([4])) + b"\xff" * 8 + b"data",
        "width1": control(options=bytes([0])) + frame(b"one", 1) + frame(b"two", 1),
        "width2-little": control(options=bytes([1, 0, 0, 0, 1])) + frame(b"le", 2, "<") * 3,
        "width3": control(options=bytes([2])) + b"\x00\x00\x03abc\x00\x00\x01z",
        "width8": control(options=bytes([4])) + frame(b"eight", 8),
        "offset-2": control(options=bytes([3, 2])) + b"HD" + frame(b"payload"),
        "includes-header": control(options=bytes([3, 0, 0xFC, 0, 2])) +
        struct.pack(">I", 9) + b"hello",
        "negative-adjust": control(options=bytes([3, 0, 0x80])) + struct.pack(">I", 3) + b"abc",
        "strip-0": control(options=bytes([3, 0, 0, 1])) + frame(b"keep header"),
        "strip-past-frame": control(options=bytes([0, 0, 0, 9])) + b"\x01a",
        "many-small": control(cuts=(7, 20, 33), separate=True) +
        b"".join(frame(bytes([65 + i]) * i) for i in range(12)),
    }
    for name, data in seeds.items():
        corpus.write("length", "hand-" + name, data)


def grow_netstrings(corpus):
    seeds = {
        "simple": b"5:hello,0:,11:hello world,",
        "split": b"3:abc,3:def,",
        "leading-zero": b"05:hello,",
        "zero": b"0:,",
        "no-colon": b"5hello,",
        "no-comma": b"5:hello;",
        "too-long": b"99999999:",
        "digits-only": b"123",
        "partial": b"10:abc",
        "binary": b"4:\x00\r\n\xff,",
        "not-digit": b"x:abc,",
    }
    for name, stream in seeds.items():
        corpus.write("netstrings", "hand-" + name, control(cuts=(2, 5)) + stream)
    corpus.write("netstrings", "hand-bytewise", control(bytewise=True) + b"3:abc,0:,12:hello world!,")
    corpus.write("netstrings", "hand-max-length", control(options=bytes([5])) + b"5:hello,6:hello!,")
    corpus.write("netstrings", "hand-small-frame", control(limit=8) + b"8:12345678,")


def grow_line(corpus):
    seeds = {
        "lines": control() + b"one\ntwo\r\nthree\n\n",
        "no-ending": control() + b"no newline at all",
        "cr-only": control(cuts=(4,)) + b"abc\r\rdef\r\n",
        "crlf-split": control(cuts=(4,)) + b"abc\r\n",
        "bytewise": control(options=bytes([0, 0, 0, 0, 0, 6]), bytewise=True) +
        b"line 1\r\nline 22\nlong line\n",
        "max-line": control(options=bytes([0, 0, 0, 0, 0, 4])) + b"abcd\nabcde\n",
        "max-line-crlf": control(options=bytes([0, 0, 0, 0, 0, 4]), cuts=(5,)) + b"abcd\r\n",
        "delim-crlf": control(options=bytes([1])) + b"a\nb\r\nc\r\n",
        "delim-nul": control(options=bytes([2])) + b"x\x00yy\x00",
        "delim-ab": control(options=bytes([4]), cuts=(3,)) + b"xxaab\nab",
        "delim-aa": control(options=bytes([5])) + b"xaaay",
        "delim-blank": control(options=bytes([6])) + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "keep-delim": control(options=bytes([0, 0x40])) + b"kept\nlines\n",
        "custom": control(options=bytes([7, 1, ord("|"), ord("|")])) + b"a||b||",
        "small-frame": control(limit=8) + b"12345678\n123456789\n",
    }
    for name, data in seeds.items():
        corpus.write("line", "hand-" + name, data)


def grow_resp_hand(corpus):
    seeds = {
        "inline-quotes": b'SET "a b" \'c\\\'d\' "\\x41\\n"\r\n',
        "unbalanced": b'SET "abc\r\n',
        "empty-lines": b"\r\n\r\nPING\r\n",
        "zero-count": b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
        "bad-count": b"*1x\r\n",
        "bad-bulk": b"*1\r\n$-5\r\n",
        "not-dollar": b"*1\r\n:5\r\n",
        "leading-zero": b"*1\r\n$04\r\nPING\r\n",
        "huge-count": b"*9223372036854775807\r\n",
        "lf-only": b"*1\n$4\nPING\n",
    }
    for name, stream in seeds.items():
        corpus.write("resp", "hand-" + name, control(cuts=(3, 9)) + stream)
        corpus.write("resp", "hand-bytewise-" + name, control(bytewise=True) + stream)
    corpus.write("resp", "hand-small-limits",
                 control(limit=40, options=bytes([8, 2, 12])) +
                 b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")


def grow_http_hand(corpus):
    seeds = {
        "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        "chunked-trailer": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
        "space-before-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "obs-fold": b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        "upgrade": b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nrest",
        "connect": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        "http10-keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        "bad-version": b"GET / HTTP/9.9\r\n\r\n",
        "content-length-twice": b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    }
    for name, stream in seeds.items():
        corpus.write("http", "hand-" + name, control(cuts=(5, 30)) + stream)
    corpus.write("http", "hand-bytewise-pipelined", control(bytewise=True) + seeds["pipelined"])
    corpus.write("http", "hand-bytewise-chunked",
                 control(options=struct.pack("<H", 1), bytewise=True) + seeds["chunked-trailer"])
    corpus.write("http", "hand-small-limits",
                 control(limit=64, options=struct.pack("<HH", 1, 9)) +
                 b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789")


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def grow_attacks(corpus):
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import test_http_conformance
    import test_resp_conformance
    inputs = {"http": [(case[0], case[1]) for case in test_http_conformance.CASES],
              "resp": [(case["name"], case["data"]) for case in test_resp_conformance.CASES] +
                      [(d["name"], d["data"]) for d in test_resp_conformance.DIFFERENCES]}
    for target, cases in inputs.items():
        for name, data in cases:
            corpus.write(target, "attack-" + slug(name), control() + data)
            corpus.write(target, "attack-" + slug(name) + "-bytewise",
                         control(bytewise=True) + data)


def grow_config(corpus, reactord):
    configs = os.path.join(REPO, "server", "configs")
    for name in sorted(os.listdir(configs)):
        with open(os.path.join(configs, name), "rb") as f:
            corpus.write("config", "example-" + os.path.splitext(name)[0], f.read())
    if reactord:
        default = subprocess.run([reactord, "--print-default"], stdout=subprocess.PIPE,
                                 check=True).stdout
        corpus.write("config", "default", default)
    seeds = {
        "minimal": b'{"listeners": [{"port": 7000, "protocol": "line", "app": "echo"}]}',
        "unix": b'{"listeners": [{"unix": "/tmp/s", "protocol": "resp", "app": "kv"}]}',
        "both-endpoints": b'{"listeners": [{"unix": "/s", "port": 1, "protocol": "raw",'
                          b' "app": "echo"}]}',
        "limits": b'{"listeners": [{"port": 1, "protocol": {"name": "length",'
                  b' "length_field_length": 2}, "app": "echo", "limits": {"max_frame": 16,'
                  b' "output_limit": 10, "output_high_water": 20}}]}',
        "duplicate-port": b'{"listeners": [{"port": 5, "protocol": "raw", "app": "echo"},'
                          b' {"port": 5, "protocol": "raw", "app": "echo"}]}',
        "admin-remote": b'{"admin": {"address": "10.0.0.1"}, "listeners": [{"port": 1,'
                        b' "protocol": "raw", "app": "echo"}]}',
        "unknown-key": b'{"listeners": [{"port": 1, "protocol": "raw", "app": "echo",'
                       b' "a.b[0]": 1}]}',
        "bad-protocol-option": b'{"listeners": [{"port": 1, "protocol": {"name": "resp",'
                               b' "max_bulk": -1}, "app": "kv"}]}',
        "wrong-app": b'{"listeners": [{"port": 1, "protocol": "line", "app": "kv"}]}',
        "not-object": b'[1, 2, 3]',
        "truncated": b'{"listeners": [{"port": 1',
        "big-number": b'{"threads": 1e400, "listeners": []}',
        "plugins": b'{"plugins": ["a.so", ""], "listeners": []}',
        "log": b'{"log": {"level": "loud"}, "listeners": []}',
    }
    for name, data in seeds.items():
        corpus.write("config", "hand-" + name, data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    parser.add_argument("--reactord", help="a built reactord, for its --print-default config")
    args = parser.parse_args()
    corpus = Corpus(args.corpus)
    grow_resp(corpus)
    grow_http(corpus)
    grow_length(corpus)
    grow_netstrings(corpus)
    grow_line(corpus)
    grow_resp_hand(corpus)
    grow_http_hand(corpus)
    grow_attacks(corpus)
    grow_config(corpus, args.reactord)
    for target, count in sorted(corpus.written.items()):
        print("%s: %d seeds" % (target, count))
    if not corpus.written.get("resp") or not corpus.written.get("http"):
        sys.exit("no traffic recorded: are redis-tools and curl installed?")


if __name__ == "__main__":
    main()
