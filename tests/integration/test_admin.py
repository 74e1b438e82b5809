"""The admin console and the apps that relay one client's bytes to others (chat, admin send and
broadcast), over real sockets against reactord: long lines, framing that cannot carry a relayed
payload, session caps and deadlines, wrong tokens, and what an unauthenticated session may hear.
Every wait has a deadline; server-side facts come from the console itself."""

import os
import select
import socket
import struct
import time
import unittest

from harness import Reactord, connect, listener, recv_exactly, recv_to_eof

TOKEN = "s3cret"


def line(sock):
    """One line, read a byte at a time so that nothing after it is taken from the socket."""
    out = b""
    while not out.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise AssertionError(f"EOF before a whole line: {out!r}")
        out += byte
    return out


def read_until(sock, terminator):
    out = b""
    while not out.endswith(terminator):
        out += line(sock)
    return out


def command(sock, text, terminator=b"\n"):
    sock.sendall(text.encode() + b"\n")
    return read_until(sock, terminator).decode()


def session(port, token=TOKEN):
    """An authenticated admin session (with token None, the console has no token)."""
    s = connect(port)
    greeting = line(s)
    if token is not None:
        assert greeting == b"reactord admin: auth TOKEN first\n", greeting
        assert command(s, "auth " + token) == "OK\n"
    return s


def silent(sock, seconds):
    """True when nothing arrives on sock for that long (the time is the test's subject: that
    nothing is sent)."""
    readable, _, _ = select.select([sock], [], [], seconds)
    return not readable


def connection_id(admin, sock):
    """The server's id for our socket, from the admin listing (its peer is our local address)."""
    peer = "%s:%d" % sock.getsockname()
    for row in command(admin, "list", b" connections\n").splitlines()[:-1]:
        fields = row.split()
        if fields[2] == peer:
            return int(fields[0])
    raise AssertionError(f"{peer} not listed")


def closed_by_server(sock):
    """What is left to read, once the server has closed."""
    return recv_to_eof(sock)


class ServerCase(unittest.TestCase):
    config = None

    def setUp(self):
        self.server = Reactord(self.config)
        self.port = self.server.ports["admin"]

    def tearDown(self):
        self.server.cleanup()


# --- pipelined commands: taken no faster than their replies are read --------------------------

class PipelinedCommands(ServerCase):
    config = {"admin": {"port": 0}, "listeners": [listener("line", "line", "echo")]}
    CLIENTS = 300
    LISTS = 2000

    def test_pipelined_lists_all_answered_while_many_connections_are_open(self):
        # Before: 5,000 pipelined lists with 300 connections open closed the session for output
        # overflow after 260 replies; commands are now held while replies pass the high-water mark.
        clients = [connect(self.server.ports["line"]) for _ in range(self.CLIENTS)]
        admin = session(self.port, token=None)
        try:
            admin.sendall(b"list\n" * self.LISTS + b"stats\n")
            admin.settimeout(60)
            answered = 0
            tail = b""
            listed = b" %d connections\n" % (self.CLIENTS + 1)  # the admin session is listed too
            while True:
                chunk = admin.recv(1 << 20)
                self.assertTrue(chunk, f"session closed after {answered} replies")
                data = tail + chunk
                answered += data.count(listed)
                tail = data[-(len(listed) - 1):]
                if b'"listeners"' in data:  # the stats reply comes after every list
                    break
            self.assertEqual(answered, self.LISTS)
        finally:
            admin.close()
            for c in clients:
                c.close()


# --- long lines: answered, and the session goes on ---------------------------------------------

class LongLines(ServerCase):
    config = {"admin": {"port": 0}, "listeners": [listener("line", "line", "echo")]}

    def test_a_line_over_the_limit_is_answered_and_the_session_kept(self):
        admin = session(self.port, None)
        admin.sendall(b"broadcast line " + b"x" * 5000 + b"\nstats\n")
        self.assertEqual(line(admin), b"ERR line too long\n")
        self.assertIn(b'"listeners"', line(admin))
        # One arriving in pieces is answered as soon as it passes the limit, its rest discarded
        # as it comes, and the command after it is the next one run.
        admin.sendall(b"y" * 4000)
        admin.sendall(b"y" * 4000)
        self.assertEqual(line(admin), b"ERR line too long\n")
        for _ in range(25):
            admin.sendall(b"z" * 4000)
        admin.sendall(b"zz\r\nhelp\n")
        self.assertEqual(line(admin), b"commands:\n")
        admin.close()

    def test_a_line_at_the_limit_is_a_command(self):
        admin = session(self.port, None)
        text = "broadcast line " + "x" * (4096 - len("broadcast line "))
        self.assertEqual(command(admin, text), "OK sent to 0\n")
        admin.close()


class LongerLimit(ServerCase):
    config = {"admin": {"port": 0, "max_line": 65536},
              "listeners": [listener("line", "line", "echo")]}

    def test_the_limit_is_configurable(self):
        admin = session(self.port, None)
        client = connect(self.server.ports["line"])
        client.sendall(b"hi\n")
        self.assertEqual(line(client), b"hi\n")
        payload = "p" * 20000
        self.assertEqual(command(admin, "broadcast line " + payload), "OK sent to 1\n")
        self.assertEqual(line(client), payload.encode() + b"\n")
        admin.sendall(b"q" * 70000 + b"\n")
        self.assertEqual(line(admin), b"ERR line too long\n")
        client.close()
        admin.close()


# --- a relayed payload the receivers' framing cannot carry ---------------------------------------

def frame(payload):
    return struct.pack("B", len(payload)) + payload


def read_frame(sock):
    n = recv_exactly(sock, 1)[0]
    return recv_exactly(sock, n)


class NarrowFraming(ServerCase):
    LENGTH1 = {"name": "length", "length_field_length": 1}
    config = {"admin": {"port": 0}, "listeners": [
        listener("chat", LENGTH1, "chat"),
        listener("echo1", LENGTH1, "echo")]}

    def join(self):
        s = connect(self.server.ports["chat"])
        greeting = read_frame(s)
        self.assertTrue(greeting.startswith(b"* you are "), greeting)
        return s, int(greeting.split()[-1])

    def test_one_member_cannot_disconnect_the_others(self):
        a, a_id = self.join()
        b, b_id = self.join()
        self.assertEqual(read_frame(a), b"* %d joined" % b_id)
        c, c_id = self.join()
        self.assertEqual(read_frame(a), b"* %d joined" % c_id)
        self.assertEqual(read_frame(b), b"* %d joined" % c_id)
        # A legal 255-byte frame would be "ID: " and 255 bytes for the others: refused to its
        # sender alone.
        a.sendall(frame(b"m" * 255))
        self.assertEqual(read_frame(a), b"* not sent: longer than %d bytes" %
                         (255 - len(b"%d: " % a_id)))
        a.sendall(frame(b"still here"))
        self.assertEqual(read_frame(b), b"%d: still here" % a_id)
        self.assertEqual(read_frame(c), b"%d: still here" % a_id)
        # The longest that fits goes through.
        longest = b"n" * (255 - len(b"%d: " % b_id))
        b.sendall(frame(longest))
        self.assertEqual(read_frame(a), b"%d: " % b_id + longest)
        self.assertEqual(read_frame(c), b"%d: " % b_id + longest)
        for s in (a, b, c):
            s.close()

    def test_admin_send_and_broadcast_check_the_receivers_framing(self):
        admin = session(self.port, None)
        client = connect(self.server.ports["echo1"])
        client.sendall(frame(b"hi"))
        self.assertEqual(read_frame(client), b"hi")
        client_id = connection_id(admin, client)
        too_long = "t" * 256
        refusal = ("ERR too long for listener echo1: 256 bytes, its framing takes at most 255\n")
        self.assertEqual(command(admin, f"send {client_id} {too_long}"), refusal)
        self.assertEqual(command(admin, f"sendhex {client_id} {'74' * 256}"), refusal)
        self.assertEqual(command(admin, f"broadcast echo1 {too_long}"), refusal)
        # Nothing reached the client, which is still served; what fits is delivered.
        self.assertEqual(command(admin, f"send {client_id} {'t' * 255}"), "OK\n")
        self.assertEqual(read_frame(client), b"t" * 255)
        self.assertEqual(command(admin, "broadcast echo1 all"), "OK sent to 1\n")
        self.assertEqual(read_frame(client), b"all")
        client.sendall(frame(b"again"))
        self.assertEqual(read_frame(client), b"again")
        client.close()
        admin.close()


# --- sessions: caps, deadlines, idle timeout ------------------------------------------------------

class SessionLimits(ServerCase):
    config = {"admin": {"port": 0, "token": TOKEN, "max_sessions": 2, "max_unauthenticated": 2,
                        "auth_timeout_ms": 600, "idle_timeout_ms": 800},
              "listeners": [listener("line", "line", "echo")]}

    def test_idle_unauthenticated_sessions_do_not_lock_the_operator_out(self):
        idle = [connect(self.port) for _ in range(2)]
        for s in idle:
            self.assertEqual(line(s), b"reactord admin: auth TOKEN first\n")
        third = connect(self.port)
        self.assertEqual(closed_by_server(third),
                         b"ERR too many sessions waiting to authenticate (at most 2)\n")
        # The idle ones are closed at their deadline, saying why; then the operator gets in.
        started = time.monotonic()
        for s in idle:
            self.assertEqual(closed_by_server(s), b"ERR authentication timeout\n")
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        operator = session(self.port)
        self.assertIn('"listeners"', command(operator, "stats"))
        for s in [third, operator] + idle:
            s.close()

    def test_authenticated_sessions_are_capped_and_closed_when_idle(self):
        first = session(self.port)
        second = session(self.port)
        extra = connect(self.port)
        self.assertEqual(line(extra), b"reactord admin: auth TOKEN first\n")
        extra.sendall(b"auth " + TOKEN.encode() + b"\n")
        self.assertEqual(closed_by_server(extra), b"ERR too many admin sessions (at most 2)\n")
        # first keeps working, second says nothing and is closed as idle.
        end = time.monotonic() + 1.6
        while time.monotonic() < end:
            self.assertIn('"listeners"', command(first, "stats"))
            time.sleep(0.2)  # the pace of a slow operator, the subject of this test
        self.assertEqual(closed_by_server(second), b"ERR idle timeout\n")
        self.assertIn('"listeners"', command(first, "stats"))
        for s in (first, second, extra):
            s.close()


class DefaultSessionLimits(ServerCase):
    config = {"admin": {"port": 0, "token": TOKEN}, "listeners": [listener("line", "line", "echo")]}

    def test_defaults_cap_waiting_sessions_and_delay_a_wrong_token(self):
        idle = [connect(self.port) for _ in range(4)]
        for s in idle:
            self.assertEqual(line(s), b"reactord admin: auth TOKEN first\n")
        fifth = connect(self.port)
        self.assertEqual(closed_by_server(fifth),
                         b"ERR too many sessions waiting to authenticate (at most 4)\n")
        started = time.monotonic()
        idle[0].sendall(b"auth wrong\nauth wrong\n")
        self.assertEqual(line(idle[0]), b"ERR invalid token\n")
        self.assertEqual(line(idle[0]), b"ERR invalid token\n")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        for s in idle + [fifth]:
            s.close()


# --- wrong tokens ----------------------------------------------------------------------------------

class WrongTokens(ServerCase):
    config = {"admin": {"port": 0, "token": TOKEN, "auth_failure_delay_ms": 400,
                        "max_auth_failures": 3},
              "listeners": [listener("line", "line", "echo")]}

    def test_each_failure_is_delayed_and_the_third_closes(self):
        operator = session(self.port)
        guesser = connect(self.port)
        self.assertEqual(line(guesser), b"reactord admin: auth TOKEN first\n")
        started = time.monotonic()
        guesser.sendall(b"auth a\nauth b\nauth c\nauth " + TOKEN.encode() + b"\n")
        times = []
        for _ in range(3):
            self.assertEqual(line(guesser), b"ERR invalid token\n")
            times.append(time.monotonic() - started)
            # The delay is a timer: the loop answers others meanwhile.
            asked = time.monotonic()
            self.assertIn('"listeners"', command(operator, "stats"))
            self.assertLess(time.monotonic() - asked, 0.3)
        self.assertEqual(line(guesser), b"ERR too many failed attempts\n")
        # The right token after three wrong ones is never read: the session is closed.
        self.assertEqual(closed_by_server(guesser), b"")
        closed = time.monotonic() - started
        self.assertLess(times[0], 0.3)
        self.assertGreaterEqual(times[1] - times[0], 0.35)
        self.assertGreaterEqual(times[2] - times[1], 0.35)
        self.assertGreaterEqual(closed - times[2], 0.35)
        # A prefix of the token, or the token with more after it, is wrong too.
        for attempt in (TOKEN[:-1], TOKEN + "x"):
            s = connect(self.port)
            line(s)
            self.assertEqual(command(s, "auth " + attempt), "ERR invalid token\n")
            s.close()
        guesser.close()
        operator.close()


# --- unauthenticated sessions hear only the prompt ------------------------------------------------

class NothingBeforeAuth(ServerCase):
    config = {"admin": {"port": 0, "token": TOKEN}, "listeners": [listener("line", "line", "echo")]}

    def test_broadcast_and_send_do_not_reach_an_unauthenticated_session(self):
        operator = session(self.port)
        other = session(self.port)
        pending = connect(self.port)
        self.assertEqual(line(pending), b"reactord admin: auth TOKEN first\n")
        pending_id = connection_id(operator, pending)
        other_id = connection_id(operator, other)
        operator.sendall(b"broadcast admin hello operators\n")
        # The sender is an operator too: its copy and the answer, in either order.
        self.assertEqual(sorted([line(operator), line(operator)]),
                         [b"OK sent to 2\n", b"hello operators\n"])
        self.assertEqual(line(other), b"hello operators\n")
        self.assertEqual(command(operator, f"send {pending_id} psst"),
                         f"ERR no connection {pending_id}\n")
        self.assertEqual(command(operator, f"sendhex {pending_id} 7073"),
                         f"ERR no connection {pending_id}\n")
        self.assertEqual(command(operator, f"send {other_id} direct"), "OK\n")
        self.assertEqual(line(other), b"direct\n")
        # The next thing the pending session hears is the answer to its own line.
        self.assertTrue(silent(pending, 0.2))
        self.assertEqual(command(pending, "list"), "ERR authentication required\n")
        # Once authenticated, it hears broadcasts.
        self.assertEqual(command(pending, "auth " + TOKEN), "OK\n")
        operator.sendall(b"broadcast admin now you\n")
        self.assertEqual(sorted([line(operator), line(operator)]),
                         [b"OK sent to 3\n", b"now you\n"])
        self.assertEqual(line(pending), b"now you\n")
        for s in (operator, other, pending):
            s.close()


# --- messages: help, auth, sendhex -----------------------------------------------------------------

class Messages(ServerCase):
    config = {"admin": {"port": 0, "token": TOKEN}, "listeners": [listener("line", "line", "echo")]}

    def test_help_names_auth_before_and_after_authentication(self):
        s = connect(self.port)
        line(s)
        reply = command(s, "help")
        self.assertIn("auth TOKEN", reply)
        self.assertNotIn("ERR", reply)
        self.assertEqual(command(s, "auth " + TOKEN), "OK\n")
        self.assertIn("auth TOKEN", command(s, "help", b"end this session\n"))
        s.close()

    def test_sendhex_says_what_is_wrong(self):
        s = session(self.port)
        client = connect(self.server.ports["line"])
        client.sendall(b"x\n")
        line(client)
        cid = connection_id(s, client)
        self.assertEqual(command(s, f"sendhex {cid} zz"),
                         "ERR bad hex: 'z' at position 0 is not a hex digit\n")
        self.assertEqual(command(s, f"sendhex {cid} 4g"),
                         "ERR bad hex: 'g' at position 1 is not a hex digit\n")
        self.assertEqual(command(s, f"sendhex {cid} abc"),
                         "ERR bad hex: expected an even number of hex digits\n")
        self.assertEqual(command(s, f"sendhex {cid} 6869"), "OK\n")
        self.assertEqual(line(client), b"hi\n")
        client.close()
        s.close()

    def test_readme_documents_auth_and_the_limits(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
            readme = f.read()
        for word in ("auth TOKEN", "max_line", "max_unauthenticated", "auth_timeout_ms",
                     "auth_failure_delay_ms", "max_auth_failures", "max_sessions"):
            self.assertTrue(word in readme, f"{word} is not in the README")


if __name__ == "__main__":
    unittest.main(verbosity=2)
