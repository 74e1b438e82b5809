"""reactord's RESP, HTTP and length listeners driven by real clients (redis-cli, redis-benchmark,
curl) where installed, and by raw sockets."""

import shutil
import socket
import struct
import subprocess
import time
import unittest

from harness import Reactord, connect, listener, recv_exactly, recv_to_eof, recv_until

CONFIG = {"listeners": [
    listener("kv", "resp", "kv"),
    listener("http", {"name": "http", "max_body": 4096}, "http"),
    listener("length", {"name": "length", "length_field_length": 2}, "echo"),
]}


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, timeout=60, **kw)


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Reactord(CONFIG)

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    # --- RESP ---------------------------------------------------------------------------------
    def redis_cli(self, *args):
        r = run(["redis-cli", "-p", str(self.server.ports["kv"]), *args])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    @unittest.skipUnless(shutil.which("redis-cli"), "redis-cli not installed")
    def test_redis_cli(self):
        self.assertEqual(self.redis_cli("PING"), "PONG\n")
        self.assertEqual(self.redis_cli("SET", "greeting", "hello world"), "OK\n")
        self.assertEqual(self.redis_cli("GET", "greeting"), "hello world\n")
        self.assertEqual(self.redis_cli("INCRBY", "n", "41"), "41\n")
        self.assertEqual(self.redis_cli("INCR", "n"), "42\n")
        self.assertEqual(self.redis_cli("MSET", "a", "1", "b", "2"), "OK\n")
        self.assertEqual(self.redis_cli("MGET", "a", "b", "missing"), "1\n2\n\n")
        self.assertEqual(self.redis_cli("DEL", "a", "b", "missing"), "2\n")
        self.assertEqual(self.redis_cli("SET", "greeting", "x", "NX"), "\n")
        self.assertEqual(self.redis_cli("EXISTS", "greeting", "n"), "2\n")
        self.assertRegex(self.redis_cli("CLIENT", "ID"), r"^\d+\n$")
        self.assertEqual(self.redis_cli("GET"), "ERR wrong number of arguments for 'get' command\n\n")  # as redis-cli prints Redis's own
        self.assertEqual(self.redis_cli("FOO", "bar"),
                         "ERR unknown command 'FOO', with args beginning with: 'bar' \n\n")

    @unittest.skipUnless(shutil.which("redis-cli"), "redis-cli not installed")
    def test_expiry(self):
        self.assertEqual(self.redis_cli("SET", "short", "lived", "PX", "100"), "OK\n")
        self.assertEqual(self.redis_cli("SET", "long", "lived", "EX", "100"), "OK\n")
        self.assertEqual(self.redis_cli("GET", "short"), "lived\n")
        deadline = time.monotonic() + 10  # expiry is time itself: poll until it happens
        while self.redis_cli("GET", "short") != "\n":
            self.assertLess(time.monotonic(), deadline)
        self.assertEqual(self.redis_cli("GET", "long"), "lived\n")
        self.assertEqual(self.redis_cli("SET", "k", "v", "EX", "0"),
                         "ERR invalid expire time in 'set' command\n\n")
        self.assertEqual(self.redis_cli("SET", "k", "v", "XX"), "\n")
        self.assertEqual(self.redis_cli("SET", "k", "v", "NX", "XX"), "ERR syntax error\n\n")

    @unittest.skipUnless(shutil.which("redis-benchmark"), "redis-benchmark not installed")
    def test_redis_benchmark(self):
        r = run(["redis-benchmark", "-p", str(self.server.ports["kv"]), "-t", "ping,set,get",
                 "-n", "10000", "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for name in ("PING_INLINE", "PING_MBULK", "SET", "GET"):
            self.assertRegex(out, name + r": [\d.]+ requests per second")

    def test_resp_protocol_error_then_close(self):
        c = connect(self.server.ports["kv"])
        c.sendall(b"*1\r\n$-5\r\n")
        self.assertEqual(recv_to_eof(c), b"-ERR Protocol error: invalid bulk length\r\n")

    def test_resp_command_names_ignore_case_only(self):
        # Names match in any letter case; a byte that is not a letter never matches one, however
        # close its code (0x10 | 0x20 is '0', '@' | 0x20 is '`').
        c = connect(self.server.ports["kv"])
        requests = [b"pInG", b"ping", b"PIN", b"PINGG", b"P\x10NG", b"@ING", b"FLUSHALL", b"FLUSHALLX"]
        wire = b"".join(b"*1\r\n$%d\r\n%s\r\n" % (len(r), r) for r in requests)
        c.sendall(wire)
        def unknown(name):
            return b"-ERR unknown command '" + name + b"', with args beginning with: \r\n"
        want = (b"+PONG\r\n" * 2 + unknown(b"PIN") + unknown(b"PINGG") + unknown(b"P\x10NG") +
                unknown(b"@ING") + b"+OK\r\n" + unknown(b"FLUSHALLX"))
        self.assertEqual(recv_exactly(c, len(want)), want)
        c.close()

    def test_resp_pipelined(self):
        c = connect(self.server.ports["kv"])
        c.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n")
        self.assertEqual(recv_exactly(c, 5 + 7 + 7), b"+OK\r\n$1\r\nv\r\n+PONG\r\n")

    # --- HTTP ---------------------------------------------------------------------------------
    def url(self, path):
        return f"http://127.0.0.1:{self.server.ports['http']}{path}"

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_get_post_chunked(self):
        r = run(["curl", "-sS", "-i", self.url("/")])
        self.assertEqual(r.returncode, 0, r.stderr)
        head, body = r.stdout.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"))
        self.assertIn(b"Content-Type: text/plain", head)
        self.assertRegex(head, rb"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT")
        self.assertEqual(body, b"Hello, World!")
        self.assertEqual(run(["curl", "-sS", self.url("/json")]).stdout, b'{"message":"Hello, World!"}')
        self.assertEqual(run(["curl", "-sS", "--data-binary", "a body", self.url("/echo")]).stdout,
                         b"a body")
        chunked = run(["curl", "-sS", "-H", "Transfer-Encoding: chunked", "-H", "Expect:",
                       "--data-binary", "@-", self.url("/echo")], input=b"x" * 3000)
        self.assertEqual(chunked.stdout, b"x" * 3000)
        r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", self.url("/nope")])
        self.assertEqual(r.stdout, b"404")
        r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "y" * 5000,
                 self.url("/echo")])
        self.assertEqual(r.stdout, b"413")
        head = run(["curl", "-sS", "-I", self.url("/")]).stdout
        self.assertIn(b"Content-Length: 13", head)

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_expect_100_continue(self):
        # curl waits up to --expect100-timeout for the go-ahead: without it this would time out.
        r = subprocess.run(["curl", "-sS", "-H", "Expect: 100-continue", "--expect100-timeout", "30",
                            "--data-binary", "c" * 2000, self.url("/echo")],
                           capture_output=True, timeout=10)
        self.assertEqual(r.stdout, b"c" * 2000)

    def test_http_pipelined_on_one_connection(self):
        c = connect(self.server.ports["http"])
        request = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
        c.sendall(request * 3 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_to_eof(c)
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 4)
        self.assertEqual(data.count(b'{"message":"Hello, World!"}'), 3)
        self.assertTrue(data.endswith(b"Hello, World!"))

    def test_http_connection_headers_on_fixed_pages(self):
        # The fixed pages' replies are made once per second per variant: each variant must still
        # say what its request asked of the connection, and HEAD must carry no body.
        c = connect(self.server.ports["http"])
        c.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = b""
        while not data.endswith(b"Hello, World!"):
            chunk = c.recv(4096)
            self.assertTrue(chunk, data)
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertIn(b"\r\nConnection: keep-alive", head)
        self.assertEqual(body, b"Hello, World!")
        c.sendall(b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.0\r\n\r\n")
        data = recv_to_eof(c)
        first, second = data.split(b"HTTP/1.1 200 OK", 2)[1:]
        self.assertIn(b"Content-Length: 27\r\n\r\n", first)
        self.assertTrue(first.endswith(b"\r\n\r\n"))  # no body after a HEAD's head
        self.assertNotIn(b"Connection:", first)
        self.assertIn(b"\r\nConnection: close\r\n", second)
        self.assertTrue(second.endswith(b'{"message":"Hello, World!"}'))
        c.close()

    def test_http_malformed_gets_400(self):
        c = connect(self.server.ports["http"])
        c.sendall(b"BLAH\x01 / HTTP/1.1\r\n\r\n")
        self.assertTrue(recv_to_eof(c).startswith(b"HTTP/1.1 400 "))

    # --- length field ---------------------------------------------------------------------------
    def test_length_echo(self):
        c = connect(self.server.ports["length"])
        frames = [b"", b"a", b"hello", bytes(range(256)) * 10]
        c.sendall(b"".join(struct.pack(">H", len(f)) + f for f in frames))
        for f in frames:
            (n,) = struct.unpack(">H", recv_exactly(c, 2))
            self.assertEqual(recv_exactly(c, n), f)


if __name__ == "__main__":
    unittest.main(verbosity=2)
