"""reactord's "websocket" listener with the echo app, driven by a real client (Debian's
python3-websockets), by curl for the handshake, and by raw sockets for what a well-behaved client
never sends."""

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import unittest

from harness import Reactord, connect, listener, recv_exactly, recv_to_eof, recv_until

try:
    import websockets
except ImportError:
    # Debian's package, under an interpreter of the same version that is not Debian's own
    # (pyenv): its modules are pure Python, usable as they are.
    debian = "/usr/lib/python3/dist-packages"
    if os.path.isdir(os.path.join(debian, "websockets")) and sys.version_info[:2] == (3, 11):
        sys.path.append(debian)
    try:
        import websockets
    except ImportError:
        websockets = None

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 2 * 1024 * 1024

CONFIG = {"listeners": [
    listener("ws", {"name": "websocket", "max_message": MAX_MESSAGE}, "echo",
             limits={"max_frame": 4 * 1024 * 1024}),
]}

needs_client = unittest.skipUnless(websockets is not None, "python3-websockets not installed")


def accept_of(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def masked_frame(opcode, payload, mask=True, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(sock):
    """One server frame: (opcode, payload); servers never mask."""
    b0, b1 = recv_exactly(sock, 2)
    assert b1 & 0x80 == 0, "server frame masked"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", recv_exactly(sock, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", recv_exactly(sock, 8))
    return b0 & 0x0F, recv_exactly(sock, n) if n else b""


class WebSocket(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Reactord(CONFIG)
        cls.port = cls.server.ports["ws"]
        cls.url = f"ws://127.0.0.1:{cls.port}/"

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def run_client(self, session):
        async def bounded():
            return await asyncio.wait_for(session(), timeout=20)
        return asyncio.run(bounded())

    def raw_upgrade(self):
        """A raw socket past the handshake."""
        sock = connect(self.port)
        sock.sendall(("GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + "\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = recv_until(sock, b"\r\n\r\n").decode()
        self.assertTrue(head.startswith("HTTP/1.1 101 Switching Protocols\r\n"), head)
        self.assertIn("Sec-WebSocket-Accept: " + accept_of(KEY) + "\r\n", head)
        return sock

    # --- a real client ------------------------------------------------------------------------
    @needs_client
    def test_text_and_binary_echo(self):
        async def session():
            async with websockets.connect(self.url) as ws:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")
                await ws.send("κόσμε ✓")
                self.assertEqual(await ws.recv(), "κόσμε ✓")
                await ws.send(b"\x00\x01\xfe\xff")
                self.assertEqual(await ws.recv(), b"\x00\x01\xfe\xff")
                await ws.send(["frag", "mented"])  # one message in fragments
                self.assertEqual(await ws.recv(), "fragmented")
        self.run_client(session)

    @needs_client
    def test_one_mebibyte_message(self):
        payload = bytes(range(256)) * 4096

        async def session():
            async with websockets.connect(self.url, max_size=None) as ws:
                await ws.send(payload)
                self.assertEqual(await ws.recv(), payload)
                text = "x" * (1 << 20)
                await ws.send(text)
                self.assertEqual(await ws.recv(), text)
        self.run_client(session)

    @needs_client
    def test_ping_pong(self):
        async def session():
            async with websockets.connect(self.url) as ws:
                waiter = await ws.ping(b"are you there")
                await asyncio.wait_for(waiter, timeout=5)
                await ws.send("still open")
                self.assertEqual(await ws.recv(), "still open")
        self.run_client(session)

    @needs_client
    def test_close_1000_answered(self):
        async def session():
            ws = await websockets.connect(self.url)
            await ws.send("before close")
            self.assertEqual(await ws.recv(), "before close")
            await ws.close(1000, "done")
            self.assertEqual(ws.close_code, 1000)
        self.run_client(session)

    @needs_client
    def test_message_over_max_message_closes_1009(self):
        async def session():
            async with websockets.connect(self.url, max_size=None) as ws:
                await ws.send(b"\0" * (MAX_MESSAGE + 1))
                with self.assertRaises(websockets.ConnectionClosedError):
                    await ws.recv()
                self.assertEqual(ws.close_code, 1009)
        self.run_client(session)

    # --- raw frames ---------------------------------------------------------------------------
    def test_unmasked_frame_closes_1002(self):
        sock = self.raw_upgrade()
        sock.sendall(masked_frame(1, b"masked") + masked_frame(1, b"unmasked", mask=False))
        self.assertEqual(read_frame(sock), (1, b"masked"))
        opcode, payload = read_frame(sock)
        self.assertEqual(opcode, 8)
        self.assertEqual(struct.unpack("!H", payload[:2])[0], 1002)
        self.assertEqual(recv_to_eof(sock), b"")
        sock.close()

    def test_invalid_utf8_closes_1007(self):
        sock = self.raw_upgrade()
        sock.sendall(masked_frame(1, b"ok\xed\xa0\x80"))
        opcode, payload = read_frame(sock)
        self.assertEqual((opcode, struct.unpack("!H", payload[:2])[0]), (8, 1007))
        self.assertEqual(recv_to_eof(sock), b"")
        sock.close()

    def test_raw_ping_and_close(self):
        sock = self.raw_upgrade()
        sock.sendall(masked_frame(9, b"ping!") + masked_frame(8, struct.pack("!H", 4000) + b"bye"))
        self.assertEqual(read_frame(sock), (10, b"ping!"))
        self.assertEqual(read_frame(sock), (8, struct.pack("!H", 4000)))
        self.assertEqual(recv_to_eof(sock), b"")
        sock.close()

    def test_bad_handshake_gets_400(self):
        for request in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                        b"\x81\x85\x01\x02\x03\x04hello"):
            sock = connect(self.port)
            sock.sendall(request)
            reply = recv_to_eof(sock)
            self.assertTrue(reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply)
            self.assertIn(b"Connection: close\r\n", reply)
            sock.close()

    def test_wrong_version_gets_426(self):
        sock = connect(self.port)
        sock.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 8\r\n\r\n")
                     .encode())
        reply = recv_to_eof(sock)
        self.assertTrue(reply.startswith(b"HTTP/1.1 426 "), reply)
        self.assertIn(b"Sec-WebSocket-Version: 13\r\n", reply)
        sock.close()

    def test_oversized_handshake_gets_400(self):
        sock = connect(self.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"f" * 9000)
        reply = recv_to_eof(sock)
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply)
        sock.close()

    # --- curl ---------------------------------------------------------------------------------
    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_handshake(self):
        # After the 101 the connection stays open and curl waits for more: --max-time ends it.
        r = subprocess.run(["curl", "-sS", "-i", "-N", "--max-time", "2",
                            "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                            "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: " + KEY,
                            f"http://127.0.0.1:{self.port}/"], capture_output=True, timeout=30)
        out = r.stdout.decode()
        self.assertIn(r.returncode, (0, 28), r.stderr)  # 28: the time limit
        self.assertTrue(out.startswith("HTTP/1.1 101 Switching Protocols\r\n"), out)
        # RFC 6455 section 1.3's own example.
        self.assertEqual(accept_of(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertIn("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", out)
        self.assertIn("Upgrade: websocket\r\n", out)


if __name__ == "__main__":
    unittest.main()
