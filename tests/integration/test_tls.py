"""reactord's TLS listeners driven by real clients (curl, openssl s_client, redis-cli) and by
python's ssl module: the certificate chosen by SNI and by the client's offer, ALPN, protocol
versions and ciphers, resumption by tickets and by the session cache, client certificates, plain
HTTP and silent clients on a TLS port, garbage handshakes beside a healthy connection,
configuration errors, certificate reload on SIGHUP and a clean stop. The CA and certificates are
made for the run by the openssl command in a temporary directory. Every wait has a deadline."""

import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
from collections import namedtuple

from harness import REACTORD, DEADLINE, Reactord, connect, listener, recv_exactly

Pair = namedtuple("Pair", "cert key")

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
SUBJECT = re.compile(r"^subject=CN = (.+)$", re.M)
HANDSHAKE_FAILED = "tls handshake failed: "

# The extensions of the certificates, by kind ({san} is the subjectAltName, if any).
CA_EXTENSIONS = """[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""
LEAF_EXTENSIONS = """basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = {usage}
"""


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, timeout=timeout, **kw)


class Pki:
    """A throwaway CA, another CA, and the leaves the tests use, made with the openssl command."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="reactord-tls-")
        self.dir = self.tmp.name
        self.serial = 1
        self.config = self.path("openssl.cnf")
        with open(self.config, "w") as f:
            f.write(CA_EXTENSIONS)
        self.ca = self.make_ca("ca", "reactord test CA")
        self.other_ca = self.make_ca("other-ca", "some other CA")
        local = "DNS:localhost,IP:127.0.0.1"
        self.ec = self.leaf("ec", "localhost", local)                       # ECDSA P-256
        self.rsa = self.leaf("rsa", "localhost-rsa", local, rsa=True)       # RSA 2048
        self.a = self.leaf("a", "a.example", "DNS:a.example")
        self.wild = self.leaf("wild", "*.b.example", "DNS:*.b.example")
        self.client = self.leaf("client", "client-one", None, usage="clientAuth")
        self.intruder = self.leaf("intruder", "intruder", None, usage="clientAuth",
                                  ca=self.other_ca)
        self.old = self.leaf("old", "old", local)
        self.new = self.leaf("new", "new", local)
        self.third = self.leaf("third", "third", local)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        r = run(["openssl", *args])
        if r.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed:\n{r.stderr.decode()}")

    def make_ca(self, name, cn):
        pair = Pair(self.path(name + ".pem"), self.path(name + ".key"))
        self.openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", pair.key, "-out", pair.cert, "-days", "2",
                     "-subj", "/CN=" + cn, "-config", self.config, "-extensions", "ca")
        return pair

    def leaf(self, name, cn, san, rsa=False, usage="serverAuth", ca=None):
        ca = ca or self.ca
        pair = Pair(self.path(name + ".pem"), self.path(name + ".key"))
        csr, ext = self.path(name + ".csr"), self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write(LEAF_EXTENSIONS.format(usage=usage))
            if san:
                f.write(f"subjectAltName = {san}\n")
        key = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt",
                                                   "ec_paramgen_curve:P-256"]
        self.openssl("req", "-new", *key, "-nodes", "-keyout", pair.key, "-out", csr,
                     "-subj", "/CN=" + cn, "-config", self.config)
        self.serial += 1
        self.openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
                     "-set_serial", str(self.serial), "-days", "2", "-out", pair.cert,
                     "-extfile", ext)
        return pair


PKI = None


def setUpModule():
    global PKI
    PKI = Pki()


def tearDownModule():
    if PKI is not None:
        PKI.tmp.cleanup()


# --- clients ---------------------------------------------------------------------------------

def tls_client(port, cert=None, alpn=None, hostname="localhost", version=None, ca=None,
               timeout=DEADLINE):
    """A python TLS connection that verified the server against the test CA (handshake done)."""
    ctx = ssl.create_default_context(cafile=ca or PKI.ca.cert)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise


def common_name(sock):
    """The CN of the certificate the server presented on a python TLS connection."""
    for rdn in sock.getpeercert()["subject"]:
        for key, value in rdn:
            if key == "commonName":
                return value
    raise AssertionError(f"no CN in {sock.getpeercert()}")


def read_response(sock):
    """One HTTP response with a Content-Length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"EOF before the end of a response head: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    if not m:
        raise AssertionError(f"no Content-Length in {head!r}")
    length = int(m.group(1))
    if len(body) < length:
        body += recv_exactly(sock, length - len(body))
    if len(body) != length:
        raise AssertionError(f"{len(body)} bytes after a head announcing {length}")
    return head, body


def http_get(sock, path="/"):
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
    return read_response(sock)


def echo_line(sock, text):
    sock.sendall(text)
    return recv_exactly(sock, len(text))


def s_client(port, *args, send=None, timeout=20):
    """openssl s_client against 127.0.0.1:port verifying with the test CA: (exit status, stdout and
    stderr together). With send, those bytes are written after the handshake and the output runs
    until the server closes (-ign_eof); without, the client ends right after the handshake."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", PKI.ca.cert, *args]
    if send is not None:
        argv.append("-ign_eof")
    r = subprocess.run(argv, input=send or b"", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace")


def subject_of(output):
    m = SUBJECT.search(output)
    if not m:
        raise AssertionError(f"no subject in s_client's output:\n{output}")
    return m.group(1)


def curl(*args, timeout=30):
    return run(["curl", "-sS", "--cacert", PKI.ca.cert, *args], timeout=timeout)


def client_hello():
    """The bytes of a real TLS ClientHello (python's, to localhost)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    session = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        session.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello
    return hello


def closed_by_server(sock, timeout=5):
    """Waits for the server to close sock (EOF or a reset); returns what came before."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except ConnectionResetError:
        return out
    except socket.timeout:
        raise AssertionError(f"the server did not close within {timeout} s (got {out!r})")


def refused(port, cert=None, version=None):
    """Connects with python's ssl (a client certificate or none) and says how the server refused:
    the handshake fails, or the first read does (TLS 1.3 judges the client's certificate after
    the client's side of the handshake ended). Fails if the server answers."""
    try:
        sock = tls_client(port, cert=cert, version=version)
    except (ssl.SSLError, ConnectionError) as e:
        return f"handshake: {e}"
    try:
        sock.sendall(b"hello\n")
        data = sock.recv(100)
    except (ssl.SSLError, ConnectionError) as e:
        return f"read: {e}"
    finally:
        sock.close()
    if data:
        raise AssertionError(f"the server answered a refused client: {data!r}")
    return "read: EOF"


def tls(pair=None, **options):
    pair = pair or PKI.ec
    return {"cert": pair.cert, "key": pair.key, **options}


# --- one server, a listener per feature ---------------------------------------------------------

class TlsListeners(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        config = {"listeners": [
            listener("web", "http", "http", tls={
                "certificates": [{"cert": PKI.ec.cert, "key": PKI.ec.key},
                                 {"cert": PKI.rsa.cert, "key": PKI.rsa.key}],
                "alpn": ["http/1.1"],
                "sni": [{"names": ["a.example"], "cert": PKI.a.cert, "key": PKI.a.key},
                        {"names": ["*.b.example"], "cert": PKI.wild.cert, "key": PKI.wild.key}]}),
            listener("cache", "http", "http", tls=tls(session_tickets=False)),
            listener("deadline", "http", "http", tls=tls(handshake_timeout_ms=300)),
            listener("kv", "resp", "kv", tls=tls(min_version="1.3")),
            listener("line", "line", "echo", tls=tls(
                alpn=["line-v2", "line-v1"], ciphers="ECDHE-ECDSA-CHACHA20-POLY1305",
                ciphersuites="TLS_CHACHA20_POLY1305_SHA256")),
            listener("mtls", "line", "echo", tls=tls(verify_client=True, ca=PKI.ca.cert)),
        ]}
        cls.server = Reactord(config)
        cls.ports = cls.server.ports

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def url(self, path, host="localhost", listener_name="web"):
        return f"https://{host}:{self.ports[listener_name]}{path}"

    def logged(self, pattern, start):
        return self.server.wait_for(pattern, start=start)

    def mark(self):
        return len(self.server.lines["stderr"])

    # --- 1. curl ---------------------------------------------------------------------------------
    def test_curl_get(self):
        for host in ("localhost", "127.0.0.1"):  # both subjectAltNames verify
            r = curl("-i", self.url("/", host))
            self.assertEqual(r.returncode, 0, r.stderr)
            head, body = r.stdout.split(b"\r\n\r\n", 1)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), head)
            self.assertEqual(body, b"Hello, World!")
        # The same request with no CA to trust is refused by curl: the server's certificate is
        # what verified above.
        r = run(["curl", "-sS", "--cacert", PKI.other_ca.cert, self.url("/")])
        self.assertEqual(r.returncode, 60, r.stderr)

    def test_curl_keep_alive_reuses_one_connection(self):
        def accepted(stats):
            return json.loads(stats)["listeners"]["web"]["accepted"]
        r = curl(self.url("/stats"))
        self.assertEqual(r.returncode, 0, r.stderr)
        before = accepted(r.stdout)
        r = curl("-w", "|%{http_version} %{num_connects}\n", self.url("/"), self.url("/json"),
                 self.url("/stats"))
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [row.rsplit(b"|", 1) for row in r.stdout.split(b"\n")[:-1]]
        self.assertEqual([body for body, _ in rows[:2]],
                         [b"Hello, World!", b'{"message":"Hello, World!"}'])
        self.assertEqual([w for _, w in rows], [b"1.1 1", b"1.1 0", b"1.1 0"])
        # The server counts one connection opened for the three requests.
        self.assertEqual(accepted(rows[2][0]), before + 1)

    def test_curl_post_one_mib(self):
        with tempfile.TemporaryDirectory() as tmp:
            body = random.Random(1).randbytes(1 << 20)
            sent, got = os.path.join(tmp, "sent"), os.path.join(tmp, "got")
            with open(sent, "wb") as f:
                f.write(body)
            r = curl("--data-binary", "@" + sent, "-o", got, "-w", "%{http_code}",
                     self.url("/echo"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, b"200")
            with open(got, "rb") as f:
                self.assertTrue(f.read() == body, "the echoed body differs")

    # --- 2. openssl s_client: certificates, ALPN, versions, ciphers ------------------------------
    def test_sni_chooses_the_certificate(self):
        port = self.ports["web"]
        for args, cn in ((["-servername", "a.example"], "a.example"),
                         (["-servername", "A.Example"], "a.example"),
                         (["-servername", "x.b.example"], "*.b.example"),
                         (["-servername", "b.example"], "localhost"),        # no label under it
                         (["-servername", "y.x.b.example"], "localhost"),    # one label only
                         (["-servername", "other.example"], "localhost"),
                         (["-noservername"], "localhost")):
            with self.subTest(args=args):
                code, out = s_client(port, *args, send=REQUEST)
                self.assertEqual(code, 0, out)
                self.assertEqual(subject_of(out), cn, out)
                self.assertIn("Verify return code: 0 (ok)", out)
                self.assertIn("Hello, World!", out)

    def test_the_client_offer_picks_ecdsa_or_rsa(self):
        port = self.ports["web"]
        for args, cn, bits in ((["-tls1_3"], "localhost", 256),
                               (["-tls1_2"], "localhost", 256),
                               (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], "localhost-rsa",
                                2048),
                               (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
                                "localhost-rsa", 2048)):
            with self.subTest(args=args):
                code, out = s_client(port, "-noservername", *args, send=REQUEST)
                self.assertEqual(code, 0, out)
                self.assertEqual(subject_of(out), cn, out)
                self.assertIn(f"Server public key is {bits} bit", out)
                self.assertIn("Hello, World!", out)

    def test_alpn(self):
        port = self.ports["web"]
        code, out = s_client(port, "-alpn", "http/1.1", send=REQUEST)
        self.assertEqual(code, 0, out)
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("Hello, World!", out)
        code, out = s_client(port, "-alpn", "imap,http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        start = self.mark()
        code, out = s_client(port, "-alpn", "imap")
        self.assertNotEqual(code, 0, out)
        self.assertIn("no application protocol", out)
        self.logged(HANDSHAKE_FAILED + "no application protocol", start)
        # Server's preference: the line listener prefers line-v2 whatever the client's order.
        sock = tls_client(self.ports["line"], alpn=["line-v1", "line-v2"])
        self.assertEqual(sock.selected_alpn_protocol(), "line-v2")
        self.assertEqual(echo_line(sock, b"alpn\n"), b"alpn\n")
        sock.close()
        sock = tls_client(self.ports["line"], alpn=["line-v1"])
        self.assertEqual(sock.selected_alpn_protocol(), "line-v1")
        sock.close()
        sock = tls_client(self.ports["line"])  # no ALPN offered: accepted
        self.assertIsNone(sock.selected_alpn_protocol())
        sock.close()

    def test_versions(self):
        port = self.ports["web"]
        # The second offers TLS 1.1 with ciphers OpenSSL 3's own security level would hold back.
        for args in (["-tls1_1"], ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]):
            with self.subTest(args=args):
                start = self.mark()
                code, out = s_client(port, *args)
                self.assertNotEqual(code, 0, out)
                self.assertIn("alert protocol version", out)  # the server's alert
                self.logged(r"listener=web .*" + HANDSHAKE_FAILED + "unsupported protocol", start)
        code, out = s_client(port, "-tls1_2", send=REQUEST)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"New, TLSv1\.2, Cipher is ECDHE-")
        self.assertIn("Hello, World!", out)
        code, out = s_client(port, "-tls1_3", send=REQUEST)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"New, TLSv1\.3, Cipher is TLS_")
        # min_version 1.3 (the kv listener) refuses TLS 1.2.
        code, out = s_client(self.ports["kv"], "-tls1_2")
        self.assertNotEqual(code, 0, out)
        self.assertIn("alert protocol version", out)
        kv = tls_client(self.ports["kv"], version=ssl.TLSVersion.TLSv1_3)
        kv.sendall(b"PING\r\n")
        self.assertEqual(recv_exactly(kv, 7), b"+PONG\r\n")
        kv.close()

    def test_ciphers(self):
        port = self.ports["web"]
        start = self.mark()
        for weak in ("AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"):
            with self.subTest(cipher=weak):  # not forward-secret, or not AEAD: refused
                code, out = s_client(port, "-tls1_2", "-cipher", weak)
                self.assertNotEqual(code, 0, out)
                self.assertIn("alert handshake failure", out)
        self.logged(HANDSHAKE_FAILED + "no shared cipher", start)
        # The server's order decides: AES128-GCM before ChaCha20, whatever the client prefers.
        code, out = s_client(port, "-tls1_2", "-cipher",
                             "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"
                             "ECDHE-ECDSA-AES128-GCM-SHA256", send=REQUEST)
        self.assertEqual(code, 0, out)
        self.assertIn("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256", out)
        # A listener's own ciphers (TLS 1.2) and ciphersuites (TLS 1.3).
        sock = tls_client(self.ports["line"], version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(sock.cipher()[0], "ECDHE-ECDSA-CHACHA20-POLY1305")
        self.assertEqual(echo_line(sock, b"chacha\n"), b"chacha\n")
        sock.close()
        code, out = s_client(self.ports["line"], "-tls1_2", "-cipher",
                             "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertNotEqual(code, 0, out)
        sock = tls_client(self.ports["line"])
        self.assertEqual(sock.cipher()[0], "TLS_CHACHA20_POLY1305_SHA256")
        sock.close()

    # --- 3. resumption ---------------------------------------------------------------------------
    def resumption(self, port, *args):
        """The second s_client's output, offering the session the first one saved."""
        with tempfile.TemporaryDirectory() as tmp:
            session = os.path.join(tmp, "session.pem")
            code, first = s_client(port, *args, "-sess_out", session, send=REQUEST)
            self.assertEqual(code, 0, first)
            self.assertRegex(first, r"\nNew, TLSv1\.")
            self.assertIn("Hello, World!", first)
            code, second = s_client(port, *args, "-sess_in", session, send=REQUEST)
            self.assertEqual(code, 0, second)
            self.assertIn("Hello, World!", second)
            return second

    def test_resumption_tls13_ticket(self):
        self.assertIn("\nReused, TLSv1.3,", self.resumption(self.ports["web"], "-tls1_3"))

    def test_resumption_tls12_ticket(self):
        self.assertIn("\nReused, TLSv1.2,", self.resumption(self.ports["web"], "-tls1_2"))

    def test_resumption_with_sni(self):
        out = self.resumption(self.ports["web"], "-tls1_3", "-servername", "a.example")
        self.assertIn("\nReused, TLSv1.3,", out)
        out = self.resumption(self.ports["web"], "-tls1_2", "-servername", "x.b.example")
        self.assertIn("\nReused, TLSv1.2,", out)

    def test_resumption_tls12_session_cache(self):
        # session_tickets false: the server's cache, found by session id.
        out = self.resumption(self.ports["cache"], "-tls1_2", "-no_ticket")
        self.assertIn("\nReused, TLSv1.2,", out)
        out = self.resumption(self.ports["cache"], "-tls1_3")
        self.assertIn("\nReused, TLSv1.3,", out)

    def test_a_session_of_another_listener_is_not_resumed(self):
        with tempfile.TemporaryDirectory() as tmp:
            session = os.path.join(tmp, "session.pem")
            for args in (["-tls1_2"], ["-tls1_3"]):
                with self.subTest(args=args):
                    code, out = s_client(self.ports["web"], *args, "-sess_out", session,
                                         send=REQUEST)
                    self.assertEqual(code, 0, out)
                    code, out = s_client(self.ports["cache"], *args, "-sess_in", session,
                                         send=REQUEST)
                    self.assertEqual(code, 0, out)
                    self.assertRegex(out, r"\nNew, TLSv1\.")
                    self.assertIn("Hello, World!", out)

    # --- 4. redis-cli ----------------------------------------------------------------------------
    def test_redis_cli_over_tls(self):
        if not shutil.which("redis-cli"):
            self.skipTest("SKIP: redis-cli not installed")
        if b"--tls" not in run(["redis-cli", "--help"]).stdout + run(["redis-cli", "--help"]).stderr:
            self.skipTest("SKIP: this redis-cli was built without TLS (no --tls)")
        port = str(self.ports["kv"])

        def cli(*args, ca=PKI.ca.cert):
            return run(["redis-cli", "--tls", "--cacert", ca, "-h", "127.0.0.1", "-p", port,
                        *args], timeout=20)
        r = cli("SET", "k", "v")
        self.assertEqual((r.returncode, r.stdout), (0, b"OK\n"), r.stderr)
        r = cli("GET", "k")
        self.assertEqual((r.returncode, r.stdout), (0, b"v\n"), r.stderr)
        r = cli("PING")
        self.assertEqual(r.stdout, b"PONG\n")
        # Trusting another CA, redis-cli refuses the server's certificate.
        r = cli("GET", "k", ca=PKI.other_ca.cert)
        self.assertNotEqual(r.stdout, b"v\n")
        self.assertIn(b"certificate verify failed", r.stdout + r.stderr)

    # --- 5. python ssl: line echo, client certificates ----------------------------------------
    def test_line_echo(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version):
                sock = tls_client(self.ports["line"], version=version)
                self.assertEqual(sock.version(), version.name.replace("v1_", "v1."))
                want = b"one\ntwo\nthree\n"
                sock.sendall(want)  # several lines in one write
                self.assertEqual(recv_exactly(sock, len(want)), want)
                for piece in (b"fo", b"ur\nfi", b"ve", b"\n"):  # lines split across writes
                    sock.sendall(piece)
                self.assertEqual(recv_exactly(sock, 10), b"four\nfive\n")
                # Many records' worth in one go.
                lines = b"".join(b"%05d %s\n" % (i, b"x" * 90) for i in range(3000))
                sock.sendall(lines)
                self.assertEqual(recv_exactly(sock, len(lines)), lines)
                sock.close()

    def test_client_certificates(self):
        port = self.ports["mtls"]
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version):
                sock = tls_client(port, cert=PKI.client, version=version)
                self.assertEqual(echo_line(sock, b"with a certificate\n"),
                                 b"with a certificate\n")
                sock.close()
                for cert in (None, PKI.intruder):
                    start = self.mark()
                    how = refused(port, cert=cert, version=version)
                    self.assertRegex(how, r"^(handshake|read): ")
                    self.logged(r"listener=mtls .*" + HANDSHAKE_FAILED, start)
        # The client that was refused did not stop the listener.
        sock = tls_client(port, cert=PKI.client)
        self.assertEqual(echo_line(sock, b"again\n"), b"again\n")
        sock.close()

    # --- 6. plain HTTP, silent clients -----------------------------------------------------------
    def test_plain_http_to_a_tls_port_gets_400(self):
        start = self.mark()
        r = run(["curl", "-sS", "-i", f"http://127.0.0.1:{self.ports['web']}/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"HTTP/1.1 400 Bad Request\r\n"), r.stdout)
        self.assertIn(b"\r\nConnection: close\r\n", r.stdout)
        self.logged(r"listener=web .*" + HANDSHAKE_FAILED + "plaintext sent to a TLS port", start)
        # A line listener does not answer in HTTP (answer_plain_http is for http listeners).
        start = self.mark()
        c = connect(self.ports["line"])
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(closed_by_server(c).startswith(b"HTTP/"))
        c.close()
        self.logged(r"listener=line .*" + HANDSHAKE_FAILED + "plaintext sent to a TLS port", start)

    def test_silent_client_closed_at_the_handshake_deadline(self):
        port = self.ports["deadline"]
        # A client that finishes its handshake is not under that deadline.
        done = tls_client(port)
        silent = connect(port)
        began = time.monotonic()
        self.assertEqual(closed_by_server(silent, timeout=5), b"")
        waited = time.monotonic() - began
        silent.close()
        self.assertGreater(waited, 0.25)  # handshake_timeout_ms is 300
        self.assertLess(waited, 3)
        # done has been open longer than 300 ms now.
        self.assertEqual(http_get(done)[1], b"Hello, World!")
        done.close()
        # Half a ClientHello is no better than nothing.
        part = connect(port)
        part.sendall(client_hello()[:40])
        began = time.monotonic()
        closed_by_server(part, timeout=5)
        self.assertLess(time.monotonic() - began, 3)
        part.close()


# --- 7. bad clients next to a good one ---------------------------------------------------------

class BadClients(unittest.TestCase):
    CLIENTS = 20

    def setUp(self):
        self.server = Reactord({"listeners": [listener("web", "http", "http", tls=tls())]})
        self.port = self.server.ports["web"]

    def tearDown(self):
        self.server.cleanup()

    def test_garbage_handshakes_do_not_hurt_an_open_connection(self):
        held = tls_client(self.port)
        self.assertEqual(http_get(held)[1], b"Hello, World!")
        hello = client_hello()
        rng = random.Random(7)
        bad = []  # (socket, how it ends)
        for i in range(self.CLIENTS):
            s = connect(self.port)
            kind = i % 5
            if kind == 0:    # random bytes
                s.sendall(rng.randbytes(rng.randint(1, 4096)))
                bad.append((s, "half-close"))
            elif kind == 1:  # a truncated ClientHello, then close
                s.sendall(hello[:rng.randint(1, len(hello) - 1)])
                bad.append((s, "close"))
            elif kind == 2:  # a record header announcing more than a record may hold
                s.sendall(b"\x16\x03\x01\xff\xff" + rng.randbytes(100))
                bad.append((s, "half-close"))
            elif kind == 3:  # a whole ClientHello, then garbage records
                s.sendall(hello)
                s.sendall(b"\x17\x03\x03\x00\x20" + rng.randbytes(32))
                bad.append((s, "half-close"))
            else:            # a truncated ClientHello, then a reset
                s.sendall(hello[:rng.randint(1, len(hello) - 1)])
                bad.append((s, "reset"))
        # While they are all in the middle of their handshakes, the held connection answers.
        self.assertEqual(http_get(held)[1], b"Hello, World!")
        for s, end in bad:
            if end == "half-close":
                s.shutdown(socket.SHUT_WR)
            elif end == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            else:
                s.close()
        for s, end in bad:
            if end == "half-close":
                closed_by_server(s)
                s.close()
        self.server.wait_for(HANDSHAKE_FAILED)
        self.assertIsNone(self.server.proc.poll())
        head, body = http_get(held, "/json")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), head)
        self.assertEqual(body, b'{"message":"Hello, World!"}')
        payload = b"still here " * 1000
        held.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload)
                     + payload)
        self.assertEqual(read_response(held)[1], payload)
        held.close()
        fresh = tls_client(self.port)
        self.assertEqual(http_get(fresh)[1], b"Hello, World!")
        fresh.close()


# --- 8. --check-config ---------------------------------------------------------------------------

class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="reactord-tls-config-")
        self.count = 0

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, config):
        self.count += 1
        path = os.path.join(self.tmp.name, f"config{self.count}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        r = run([REACTORD, "--check-config", path], timeout=20)
        return path, r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_errors_name_their_json_path(self):
        missing = os.path.join(self.tmp.name, "nokey.pem")
        garbage = os.path.join(self.tmp.name, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        ec, rsa, a = PKI.ec, PKI.rsa, PKI.a

        def web(tls_options, name="web"):
            return listener(name, "http", "http", tls=tls_options)
        cases = [
            ([listener("plain", "line", "echo"), web({"cert": ec.cert, "key": missing})],
             f"listeners[1].tls.key: cannot read {missing}: No such file or directory"),
            ([web({"cert": missing, "key": ec.key})],
             f"listeners[0].tls.cert: cannot read {missing}: No such file or directory"),
            ([web({"cert": ec.cert, "key": rsa.key})],
             f"listeners[0].tls.key: key {rsa.key} does not match certificate {ec.cert}"),
            ([web({"cert": garbage, "key": ec.key})],
             f"listeners[0].tls.cert: cannot load certificate {garbage}"),
            ([web(tls(sni=[{"names": ["a.example"], "cert": missing, "key": a.key}]))],
             f"listeners[0].tls.sni[0].cert: cannot read {missing}"),
            ([web(tls(sni=[{"names": ["a.example"], "cert": a.cert, "key": a.key},
                           {"names": ["c.example"], "cert": a.cert, "key": ec.key}]))],
             f"listeners[0].tls.sni[1].key: "),
            ([web({"certificates": [{"cert": ec.cert, "key": ec.key},
                                    {"cert": rsa.cert, "key": missing}]})],
             f"listeners[0].tls.certificates[1].key: cannot read {missing}"),
            # Server bug: passes (exit 0). The RSA certificate gets no key (OpenSSL files
            # the ECDSA key under the first pair's ECDSA certificate, which it matches), so
            # every client that can take only RSA is refused at run time.
            ([web({"certificates": [{"cert": ec.cert, "key": ec.key},
                                    {"cert": rsa.cert, "key": ec.key}]})],
             f"listeners[0].tls.certificates[1].key: "),
            ([web(tls(min_version="1.1"))], "listeners[0].tls.min_version: "),
            ([web(tls(ciphers="NO-SUCH-CIPHER"))], "listeners[0].tls.ciphers: "),
            ([web(tls(ciphersuites="TLS_NO_SUCH_SUITE"))], "listeners[0].tls.ciphersuites: "),
            ([web(tls(verify_client=True))],
             "listeners[0].tls.ca: verify_client needs a CA bundle"),
            ([web(tls(verify_client=True, ca=missing))],
             f"listeners[0].tls.ca: cannot read {missing}"),
            ([{"name": "u", "unix": os.path.join(self.tmp.name, "u.sock"), "protocol": "line",
               "app": "echo", "tls": tls()}],
             "listeners[0].tls: "),
        ]
        for listeners, prefix in cases:
            with self.subTest(want=prefix):
                path, code, out, err = self.check({"listeners": listeners})
                self.assertEqual(code, 2, out + err)
                self.assertTrue(err.startswith(f"reactord: {path}: {prefix}"), err)

    def test_a_good_tls_config_passes(self):
        config = {"listeners": [
            listener("web", "http", "http", tls={
                "certificates": [{"cert": PKI.ec.cert, "key": PKI.ec.key},
                                 {"cert": PKI.rsa.cert, "key": PKI.rsa.key}],
                "ca": PKI.ca.cert, "verify_client": False, "min_version": "1.2",
                "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
                "ciphersuites": "TLS_AES_128_GCM_SHA256", "alpn": ["http/1.1"],
                "sni": [{"names": ["a.example"], "cert": PKI.a.cert, "key": PKI.a.key},
                        {"names": ["*.b.example"], "cert": PKI.wild.cert, "key": PKI.wild.key}],
                "session_tickets": True, "session_cache": 1000, "ticket_key_lifetime_s": 3600,
                "handshake_timeout_ms": 5000, "answer_plain_http": True}),
            listener("mtls", "line", "echo", tls=tls(verify_client=True, ca=PKI.ca.cert,
                                                     min_version="1.3")),
        ]}
        path, code, out, err = self.check(config)
        self.assertEqual((code, out), (0, f"{path}: OK\n"), err)


# --- 9. SIGHUP reload ----------------------------------------------------------------------------

class Reload(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="reactord-tls-reload-")
        self.live = Pair(os.path.join(self.tmp.name, "live.pem"),
                         os.path.join(self.tmp.name, "live.key"))
        self.install(PKI.old)
        self.config = {"listeners": [
            listener("line", "line", "echo", tls=tls(self.live)),
            listener("web", "http", "http", tls=tls(self.live)),
        ]}
        self.server = Reactord(self.config)
        self.ports = self.server.ports

    def tearDown(self):
        try:
            self.server.cleanup()
        finally:
            self.tmp.cleanup()

    def install(self, pair):
        """Rewrites the live certificate and key files, at the same paths, with pair's."""
        for source, target in ((pair.cert, self.live.cert), (pair.key, self.live.key)):
            with open(source, "rb") as f:
                data = f.read()
            with open(target, "wb") as f:
                f.write(data)

    def sighup(self, *patterns):
        start = len(self.server.lines["stderr"])
        self.server.proc.send_signal(signal.SIGHUP)
        for pattern in patterns:
            self.server.wait_for(pattern, start=start)

    def served(self, name):
        """The CN a new handshake on listener name gets."""
        code, out = s_client(self.ports[name], "-servername", "localhost")
        self.assertEqual(code, 0, out)
        return subject_of(out)

    def test_sighup_reloads_certificates_for_new_handshakes(self):
        kept = tls_client(self.ports["line"])
        self.assertEqual(common_name(kept), "old")
        self.assertEqual(echo_line(kept, b"before\n"), b"before\n")
        kept_http = tls_client(self.ports["web"])
        self.assertEqual(http_get(kept_http)[1], b"Hello, World!")
        self.assertEqual(self.served("line"), "old")

        self.install(PKI.new)
        self.sighup(r"listener=line TLS certificates reloaded for new handshakes",
                    r"listener=web TLS certificates reloaded for new handshakes")
        self.assertEqual(self.served("line"), "new")
        self.assertEqual(self.served("web"), "new")
        fresh = tls_client(self.ports["line"])
        self.assertEqual(common_name(fresh), "new")
        self.assertEqual(echo_line(fresh, b"fresh\n"), b"fresh\n")
        fresh.close()
        self.assertEqual(echo_line(kept, b"still open\n"), b"still open\n")
        self.assertEqual(http_get(kept_http)[1], b"Hello, World!")

        with open(self.live.cert, "w") as f:
            f.write("garbage, not a certificate\n")
        self.sighup(r"listener=line TLS reload failed, the old certificates stay: "
                    r"listeners\[0\]\.tls\.cert: ",
                    r"listener=web TLS reload failed, the old certificates stay: "
                    r"listeners\[1\]\.tls\.cert: ")
        self.assertEqual(self.served("line"), "new")
        self.assertEqual(self.served("web"), "new")
        self.assertEqual(echo_line(kept, b"after a failed reload\n"), b"after a failed reload\n")

        # The file is read again: a listener's cert and key may move to other files.
        self.config["listeners"][0]["tls"] = tls(PKI.third)
        with open(os.path.join(self.server.dir, "config.json"), "w") as f:
            json.dump(self.config, f)
        self.sighup(r"listener=line TLS certificates reloaded for new handshakes",
                    r"listener=web TLS reload failed, the old certificates stay")
        self.assertEqual(self.served("line"), "third")
        self.assertEqual(self.served("web"), "new")
        self.assertEqual(echo_line(kept, b"last\n"), b"last\n")
        self.assertEqual(http_get(kept_http)[1], b"Hello, World!")
        kept.close()
        kept_http.close()
        self.assertIsNone(self.server.proc.poll())


# --- 10. a clean stop ----------------------------------------------------------------------------

class Shutdown(unittest.TestCase):
    def test_sigterm_after_tls_traffic_exits_cleanly(self):
        server = Reactord({"drain_timeout_ms": 3000, "listeners": [
            listener("web", "http", "http", tls=tls()),
            listener("line", "line", "echo", tls=tls(verify_client=True, ca=PKI.ca.cert)),
        ]})
        try:
            web, line = server.ports["web"], server.ports["line"]
            r = curl(f"https://localhost:{web}/")
            self.assertEqual(r.stdout, b"Hello, World!", r.stderr)
            code, out = s_client(web, "-alpn", "imap")  # a listener without alpn takes any
            self.assertEqual(code, 0, out)
            self.assertIn("No ALPN negotiated", out)
            refused(line)
            c = connect(web)
            c.sendall(b"GET / HTTP/1.1\r\n\r\n")
            closed_by_server(c)
            c.close()
            half = connect(web)
            half.sendall(client_hello()[:50])  # in the middle of a handshake at the stop
            idle_http = tls_client(web)
            self.assertEqual(http_get(idle_http)[1], b"Hello, World!")
            open_line = tls_client(line, cert=PKI.client)
            self.assertEqual(echo_line(open_line, b"bye\n"), b"bye\n")
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for(r"shutting down: draining")
            for sock in (idle_http, open_line, half):  # every connection ends
                try:
                    closed_by_server(sock, timeout=10)
                except ssl.SSLError:
                    pass
                sock.close()
            self.assertEqual(server.finish(), 0, "\n".join(server.lines["stderr"][-30:]))
            self.assertEqual(server.sanitizer_reports(), [])
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
