"""reactord end to end: configuration, apps, admin console, signals."""

import json
import os
import re
import resource
import shutil
import select
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (REACTORD, Process, Reactord, connect, listener, recv_exactly, recv_to_eof,
                     recv_until)


def run_reactord(*args, timeout=10):
    return subprocess.run([REACTORD, *args], capture_output=True, text=True, timeout=timeout)


class CommandLine(unittest.TestCase):
    def test_help_and_version(self):
        r = run_reactord("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--config FILE", r.stdout)
        r = run_reactord("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^reactord \d+\.\d+\.\d+\n$")

    def test_help_names_every_option_and_exit_code(self):
        out = run_reactord("--help").stdout
        for option in ("--config FILE", "--check-config FILE", "--print-default", "--console",
                       "--version"):
            self.assertIn(option, out.split("\n\n")[0])  # the usage lines themselves
        for code in range(4):
            self.assertRegex(out, r"\n  %d  \S" % code)

    def test_config_and_check_config_are_exclusive(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"listeners": [listener("a", "line", "echo")]}, f)
        try:
            for args in (("--check-config", f.name, "--config", f.name),
                         ("--config", f.name, "--check-config", f.name),
                         ("--config", f.name, "--config", f.name)):
                r = run_reactord(*args)  # before: the first two started a server
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("give one of --config and --check-config, once", r.stderr)
        finally:
            os.unlink(f.name)

    def test_directory_as_config_says_so(self):
        folder = tempfile.mkdtemp()
        try:
            for flag in ("--check-config", "--config"):
                r = run_reactord(flag, folder)
                self.assertEqual(r.returncode, 2)
                self.assertIn(f"cannot read {folder}: Is a directory", r.stderr)
        finally:
            os.rmdir(folder)

    def test_unknown_argument_exits_2(self):
        r = run_reactord("--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown or incomplete argument '--bogus'", r.stderr)

    def test_embedded_default_is_valid(self):
        text = run_reactord("--print-default").stdout
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(text)
        try:
            r = run_reactord("--check-config", f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            os.unlink(f.name)


class ExampleConfigs(unittest.TestCase):
    def test_every_example_config_is_valid(self):
        folder = os.path.join(os.path.dirname(__file__), "..", "..", "server", "configs")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        self.assertGreaterEqual(len(names), 4)
        for name in names:
            with self.subTest(config=name):
                r = run_reactord("--check-config", os.path.join(folder, name))
                self.assertEqual(r.returncode, 0, r.stderr)


BAD_CONFIGS = [
    ("{", "invalid JSON: "),
    ("[]", "expected a JSON object at the top level"),
    ('{"threads": 1e400, "listeners": []}', "invalid JSON: "),  # a number beyond a double
    ({"listeners": [{"name": "a", "port": 0, "protocol": "", "app": "echo"}]},
     "listeners[0].protocol: expected a non-empty string"),
    ({}, "listeners: expected a non-empty array"),
    ({"listeners": []}, "listeners: expected a non-empty array"),
    ({"threads": "two", "listeners": [listener("a", "raw", "echo")]},
     "threads: expected an integer from 1 to 256"),
    ({"bogus": 1, "listeners": [listener("a", "raw", "echo")]}, "bogus: unknown option"),
    ({"log": {"level": "loud"}, "listeners": [listener("a", "raw", "echo")]},
     "log.level: expected one of debug, error, info, off, warn"),
    ({"listeners": [listener("a", "nope", "echo")]},
     "listeners[0].protocol.name: unknown protocol 'nope' (known: http, length, line, raw, resp, websocket)"),
    ({"listeners": [listener("a", "raw", "nope")]},
     "listeners[0].app.name: unknown app 'nope' (known: admin, chat, echo, http, kv)"),
    ({"listeners": [listener("a", "line", "kv")]},
     "listeners[0].app.name: app 'kv' cannot speak protocol 'line' (it speaks resp)"),
    ({"listeners": [listener("a", "raw", "echo"), listener("b", {"name": "raw", "x": 1}, "echo")]},
     "listeners[1].protocol.x: unknown option"),
    ({"listeners": [listener("a", "line", "echo"),
                    listener("b", {"name": "line", "max_line": "long"}, "echo")]},
     "listeners[1].protocol.max_line: expected an integer"),
    ({"listeners": [{"name": "a", "port": 0, "app": "echo"}]},
     "listeners[0].protocol: missing protocol"),
    ({"listeners": [listener("a", "raw", "echo", port=7100), listener("b", "raw", "echo", port=7100)]},
     "listeners[1].port: port 7100 is used twice"),
    ({"listeners": [listener("a", "raw", "echo"), listener("a", "raw", "echo")]},
     "listeners[1].name: duplicate listener name 'a'"),
    ({"listeners": [listener("a", "raw", "echo", port=70000)]},
     "listeners[0].port: expected an integer from 0 to 65535"),
    ({"listeners": [listener("a", "raw", "echo", limits={"output_high_water": 100, "output_limit": 10})]},
     "listeners[0].limits.output_limit: must not be below output_high_water"),
    ({"listeners": [listener("a", "raw", "echo", limits={"max_connections": 0})]},
     "listeners[0].limits.max_connections: expected an integer from 1 to 1000000"),
    ({"admin": {"address": "0.0.0.0", "port": 0}, "listeners": [listener("a", "raw", "echo")]},
     "admin.address: the admin console listens on loopback only unless allow_remote is true"),
    ({"plugins": ["/nonexistent/libnothing.so"], "listeners": [listener("a", "raw", "echo")]},
     "plugins[0]: "),
    # Keys given twice: nlohmann would keep the last one silently.
    ('{"listeners": [], "listeners": [%s]}' % json.dumps(listener("a", "raw", "echo")),
     "listeners: duplicate key"),
    ('{"listeners": [{"port": 0, "protocol": "line", "app": "echo", "app": "kv"}]}',
     "listeners[0].app: duplicate key"),
    ('{"listeners": [{"port": 0, "protocol": {"name": "line", "max_line": 1, "max_line": 2},'
     ' "app": "echo"}]}', "listeners[0].protocol.max_line: duplicate key"),
    # What can be checked without binding.
    ({"listeners": [listener("a", "raw", "echo", address="192.0.2.1")]},
     "listeners[0].address: 192.0.2.1 is not an address of this host"),
    ({"listeners": [listener("a", "raw", "echo"), listener("b", "raw", "echo", address=":::1")]},
     "listeners[1].address: expected an IPv4 or IPv6 address (without brackets) or a host name"),
    ({"listeners": [listener("a", "raw", "echo", address="[::1]")]},
     "listeners[0].address: expected an IPv4 or IPv6 address"),
    ({"listeners": [listener("a", "raw", "echo", address="no-such-host.invalid")]},
     "listeners[0].address: cannot resolve 'no-such-host.invalid'"),
    ({"listeners": [{"name": "u", "unix": "/tmp/" + "x" * 103, "protocol": "line", "app": "echo"}]},
     "listeners[0].unix: path longer than 107 bytes, the limit of a Unix socket address"),
    ({"listeners": [{"name": "u", "unix": "/nonexistent/dir/u.sock", "protocol": "line",
                     "app": "echo"}]},
     "listeners[0].unix: directory /nonexistent/dir: No such file or directory"),
    ({"listeners": [{"name": "u", "unix": "/etc/passwd/u.sock", "protocol": "line", "app": "echo"}]},
     "listeners[0].unix: /etc/passwd is not a directory"),
    ({"listeners": [{"name": "u", "unix": "/etc/hostname", "protocol": "line", "app": "echo"}]},
     "listeners[0].unix: /etc/hostname exists and is not a socket"),
    ({"admin": {"address": "192.0.2.1", "port": 0, "allow_remote": True},
      "listeners": [listener("a", "raw", "echo")]},
     "admin.address: 192.0.2.1 is not an address of this host"),
    ({"listeners": [listener("a", "raw", "echo", share_port="yes")]},
     "listeners[0].share_port: expected true or false"),
]


class BadConfigs(unittest.TestCase):
    def test_each_bad_config_names_its_path_and_exits_2(self):
        for config, message in BAD_CONFIGS:
            with self.subTest(message=message):
                with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                    f.write(config if isinstance(config, str) else json.dumps(config))
                try:
                    for flag in ("--check-config", "--config"):
                        r = run_reactord(flag, f.name)
                        self.assertEqual(r.returncode, 2, r.stderr)
                        self.assertIn(f"reactord: {f.name}: {message}", r.stderr)
                finally:
                    os.unlink(f.name)

    def test_deep_nesting_is_refused_with_its_path(self):
        # 200,000 levels used to overflow the stack in a recursive copy of the options (SIGSEGV).
        for depth in (65, 100000, 200000):
            with self.subTest(depth=depth):
                with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                    f.write('{"listeners": [{"port": 0, "app": "echo", "protocol": '
                            '{"name": "line", "x": %s%s}}]}' % ("[" * depth, "]" * depth))
                try:
                    for flag in ("--check-config", "--config"):
                        r = run_reactord(flag, f.name)
                        self.assertEqual(r.returncode, 2, r.stderr[-300:])
                        self.assertRegex(r.stderr, r"^reactord: %s: listeners\[0\]\.protocol\.x"
                                         r"(\[0\]){60}: nested deeper than 64 levels\n$"
                                         % re.escape(f.name))
                finally:
                    os.unlink(f.name)
        # Nesting within the bound reaches the protocol, which names the option it does not know.
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"listeners": [{"port": 0, "app": "echo", "protocol": '
                    '{"name": "line", "x": %s%s}}]}' % ("[" * 60, "]" * 60))
        try:
            r = run_reactord("--check-config", f.name)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"{f.name}: listeners[0].protocol.x: unknown option", r.stderr)
        finally:
            os.unlink(f.name)

    def test_unix_socket_in_an_existing_directory_passes(self):
        folder = tempfile.mkdtemp()
        try:
            with open(os.path.join(folder, "c.json"), "w") as f:
                json.dump({"listeners": [{"name": "u", "unix": os.path.join(folder, "u.sock"),
                                          "protocol": "line", "app": "echo"}]}, f)
            r = run_reactord("--check-config", os.path.join(folder, "c.json"))
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            shutil.rmtree(folder)

    def test_missing_file_exits_2(self):
        r = run_reactord("--config", "/nonexistent/reactord.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read /nonexistent/reactord.json", r.stderr)


def write_config(folder, config):
    path = os.path.join(folder, "config-%d.json" % len(os.listdir(folder)))
    with open(path, "w") as f:
        json.dump(config, f)
    return path


class SecondInstance(unittest.TestCase):
    """A second reactord on the same ports must not start: with SO_REUSEPORT (threads >= 2) Linux
    would let it join silently and take half of the clients, each with its own kv store."""

    def setUp(self):
        self.folder = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def kv_config(self, port, threads, **extra):
        return {"threads": threads, "listeners": [listener("kv", "resp", "kv", port=port, **extra)]}

    def assert_refused(self, port, threads, address="127.0.0.1"):
        r = run_reactord("--config", write_config(self.folder, self.kv_config(port, threads)))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("listeners[0]: cannot listen on %s:%d: address already in use by another "
                      "process" % (address, port), r.stderr)

    def test_second_instance_is_refused_and_clients_see_one_store(self):
        first = Reactord(self.kv_config(0, 2))
        try:
            port = first.ports["kv"]
            for threads in (2, 4, 1):
                with self.subTest(threads=threads):
                    self.assert_refused(port, threads)
            # Every client reaches the first instance's store.
            self.assertEqual(redis_cli(port, "SET", "k", "v"), "OK")
            for _ in range(20):
                self.assertEqual(redis_cli(port, "GET", "k"), "v")
        finally:
            first.cleanup()

    def test_another_program_with_so_reuseport_is_seen(self):
        # Not a reactord, so no lock of ours: the probe finds it.
        other = socket.socket()
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        try:
            self.assert_refused(other.getsockname()[1], 2)
        finally:
            other.close()

    def test_share_port_opts_in_to_a_hand_over(self):
        first = Reactord(self.kv_config(0, 2))
        try:
            port = first.ports["kv"]
            self.assertEqual(redis_cli(port, "SET", "k", "old"), "OK")
            second = Reactord(self.kv_config(port, 1, share_port=True))
            try:
                second.wait_for(r"listener=kv backlog \d+, .*, port shared")
                # The old instance drains and leaves; the port stays served by the new one.
                self.assertEqual(first.stop(), 0)
                self.assertEqual(redis_cli(port, "GET", "k"), "")
                self.assertEqual(redis_cli(port, "SET", "k", "new"), "OK")
                self.assertEqual(redis_cli(port, "GET", "k"), "new")
            finally:
                second.cleanup()
        finally:
            first.cleanup()


def redis_cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                       timeout=10)
    return r.stdout.strip()


class Signals(unittest.TestCase):
    def test_hup_usr1_usr2_pipe_are_logged_or_ignored(self):
        # Before: SIGHUP, SIGUSR1 and SIGUSR2 ended the process (129, 138, 140) without a word.
        server = Reactord({"threads": 2, "listeners": [listener("echo", "line", "echo")]})
        try:
            c = connect(server.ports["echo"])
            server.proc.send_signal(signal.SIGPIPE)
            for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
                start = len(server.lines["stderr"])
                server.proc.send_signal(sig)
                server.wait_for(r"%s ignored: reactord reloads nothing; SIGTERM stops it"
                                % sig.name, start=start)
                c.sendall(b"still here\n")
                self.assertEqual(recv_exactly(c, 11), b"still here\n")
            self.assertIsNone(server.proc.poll())
            self.assertEqual(server.stop(), 0)  # and SIGTERM still drains and exits 0
            self.assertEqual(recv_to_eof(c), b"")
        finally:
            server.cleanup()


class Defaults(unittest.TestCase):
    def test_idle_timeout_and_backlog_defaults(self):
        server = Reactord({"listeners": [listener("web", "http", "http"),
                                         listener("kv", "resp", "kv"),
                                         listener("chat", "line", "chat"),
                                         listener("web2", "http", "http",
                                                  limits={"idle_timeout_ms": 0})]})
        try:
            with open("/proc/sys/net/core/somaxconn") as f:
                backlog = min(int(f.read()), 65535)
            for name, idle in (("web", 75000), ("kv", 0), ("chat", 0), ("web2", 0)):
                server.wait_for(r"listener=%s backlog %d, idle_timeout_ms %d, max_connections "
                                r"10000$" % (name, backlog, idle))
        finally:
            server.cleanup()

    def test_a_burst_of_1280_connects_fits_the_default_backlog(self):
        # The default backlog was 1024: with the server not accepting for a moment, connects past
        # the 1025th lost their SYN (TcpExtListenOverflows) and waited for its retry, a second.
        with open("/proc/sys/net/core/somaxconn") as f:
            if int(f.read()) < 1300:
                self.skipTest("net.core.somaxconn is below the burst")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 3000:
            self.skipTest("too few descriptors for the burst")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
        server = Reactord({"listeners": [listener("echo", "line", "echo")]})
        clients = []
        try:
            server.proc.send_signal(signal.SIGSTOP)  # nothing accepts: the backlog holds them all
            poller = select.poll()
            for _ in range(1280):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", server.ports["echo"]))
                clients.append(c)
                poller.register(c, select.POLLOUT)
            connected = set()
            deadline = time.monotonic() + 0.8  # below the first SYN retransmission (1 s)
            while len(connected) < len(clients) and time.monotonic() < deadline:
                for fd, _ in poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                    connected.add(fd)
                    poller.unregister(fd)
            self.assertEqual(len(connected), 1280)
            server.proc.send_signal(signal.SIGCONT)
            for i, c in enumerate(clients):
                c.setblocking(True)
                c.settimeout(10)
                c.sendall(b"%d\n" % i)
            for i, c in enumerate(clients):
                self.assertEqual(recv_until(c, b"\n"), b"%d\n" % i)
        finally:
            server.proc.send_signal(signal.SIGCONT)
            for c in clients:
                c.close()
            server.cleanup()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class ServerTestCase(unittest.TestCase):
    config = None

    def setUp(self):
        self.server = Reactord(self.config)

    def tearDown(self):
        self.server.cleanup()


class RawEcho(ServerTestCase):
    config = {"listeners": [listener("echo", "raw", "echo")]}

    def test_echo_and_clean_sigterm(self):
        clients = [connect(self.server.ports["echo"]) for _ in range(10)]
        for i, c in enumerate(clients):
            c.sendall(b"hello %d" % i)
        for i, c in enumerate(clients):
            self.assertEqual(recv_exactly(c, len(b"hello %d" % i)), b"hello %d" % i)
        # Stopping with connections open: clean exit 0, clients see EOF.
        self.assertEqual(self.server.stop(), 0)
        for c in clients:
            self.assertEqual(recv_to_eof(c), b"")


class LineEcho(ServerTestCase):
    config = {"listeners": [listener("echo", "line", "echo")]}

    def test_lines_echo_and_nc(self):
        c = connect(self.server.ports["echo"])
        c.sendall(b"one\ntwo\r\nthr")
        self.assertEqual(recv_exactly(c, 8), b"one\ntwo\n")
        c.sendall(b"ee\n")
        self.assertEqual(recv_exactly(c, 6), b"three\n")
        # A real client: nc sends, half-closes, and still gets the reply.
        r = subprocess.run(["nc", "-N", "127.0.0.1", str(self.server.ports["echo"])],
                           input=b"via nc\n", capture_output=True, timeout=10)
        self.assertEqual(r.stdout, b"via nc\n")

    def test_sigterm_with_200_clients_mid_conversation(self):
        clients = [connect(self.server.ports["echo"]) for _ in range(200)]
        for i, c in enumerate(clients):  # a first exchange proves every client is accepted
            c.sendall(b"hello %d\n" % i)
            self.assertEqual(recv_exactly(c, len(b"hello %d\n" % i)), b"hello %d\n" % i)
        for i, c in enumerate(clients):
            c.sendall(b"last words %d\n" % i)
        self.server.proc.send_signal(signal.SIGTERM)
        answered = 0
        for i, c in enumerate(clients):
            if recv_to_eof(c) == b"last words %d\n" % i:
                answered += 1
        self.assertEqual(answered, 200)
        self.assertEqual(self.server.finish(), 0)


class Drain(unittest.TestCase):
    """A client that never reads keeps its connection from draining: SIGTERM waits at most
    drain_timeout_ms, and a second signal exits at once."""

    def stuck_client(self, server):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", server.ports["echo"]))
        c.setblocking(False)
        # Pipeline until the server stops reading (its output for us passed the high-water mark):
        # then megabytes of echoes wait in the server for a client that never reads them.
        blocked_since = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                c.send(b"z" * 1023 + b"\n")
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 0.5:
                    return c
                select.select([], [c], [], 0.1)
        raise AssertionError("the server never stopped reading")

    def test_drain_timeout_bounds_shutdown(self):
        server = Reactord({"drain_timeout_ms": 500, "listeners": [listener("echo", "line", "echo")]})
        try:
            c = self.stuck_client(server)
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual(server.finish(), 0)
            elapsed = time.monotonic() - started
            self.assertGreaterEqual(elapsed, 0.45)
            self.assertLess(elapsed, 3.0)
            server.wait_for(r"drain timeout: closing 1 connections")
            c.close()
        finally:
            server.cleanup()

    def test_second_signal_exits_at_once(self):
        server = Reactord({"drain_timeout_ms": 60000, "listeners": [listener("echo", "line", "echo")]})
        try:
            c = self.stuck_client(server)
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for(r"shutting down: draining 1 connections")
            server.proc.send_signal(signal.SIGINT)
            self.assertEqual(server.finish(), 3)
            server.wait_for(r"second signal: exiting now")
            c.close()
        finally:
            server.cleanup()


class Chat(ServerTestCase):
    config = {"listeners": [listener("chat", "line", "chat")]}

    def test_broadcast_with_sender_id_and_announcements(self):
        a = connect(self.server.ports["chat"])
        a_id = int(recv_until(a, b"\n").split()[-1])
        b = connect(self.server.ports["chat"])
        b_id = int(recv_until(b, b"\n").split()[-1])
        self.assertEqual(recv_until(a, b"\n"), b"* %d joined\n" % b_id)
        a.sendall(b"hi all\n")
        self.assertEqual(recv_until(b, b"\n"), b"%d: hi all\n" % a_id)
        b.close()
        self.assertEqual(recv_until(a, b"\n"), b"* %d left\n" % b_id)


class Admin(ServerTestCase):
    config = {"admin": {"port": 0},
              "listeners": [listener("echo", "line", "echo"), listener("raw", "raw", "echo")]}

    def admin(self):
        s = connect(self.server.ports["admin"])
        self.assertIn(b"type help", recv_until(s, b"\n"))
        return s

    def command(self, s, line, terminator=b"\n"):
        s.sendall(line.encode() + b"\n")
        return recv_until(s, terminator).decode()

    def test_list_send_sendhex_broadcast_kick_stats(self):
        line_client = connect(self.server.ports["echo"])
        raw_client = connect(self.server.ports["raw"])
        line_client.sendall(b"x\n")
        recv_exactly(line_client, 2)
        raw_client.sendall(b"y")
        recv_exactly(raw_client, 1)
        s = self.admin()
        listing = self.command(s, "list", b"connections\n")
        rows = [l for l in listing.splitlines() if not l.startswith("OK")]
        by_listener = {row.split()[1]: int(row.split()[0]) for row in rows}
        self.assertIn("echo", by_listener)
        self.assertIn("raw", by_listener)
        self.assertIn("admin", by_listener)
        self.assertRegex(listing, r"OK 3 connections\n$")
        # send reaches a connection on another listener, framed by that listener's protocol
        self.assertEqual(self.command(s, "send %d hello" % by_listener["echo"]), "OK\n")
        self.assertEqual(recv_exactly(line_client, 6), b"hello\n")
        self.assertEqual(self.command(s, "send %d hello" % by_listener["raw"]), "OK\n")
        self.assertEqual(recv_exactly(raw_client, 5), b"hello")
        self.assertEqual(self.command(s, "sendhex %d 615f605d5b64" % by_listener["raw"]), "OK\n")
        self.assertEqual(recv_exactly(raw_client, 6), bytes([97, 95, 96, 93, 91, 100]))
        self.assertEqual(self.command(s, "sendhex %d 6g" % by_listener["raw"]),
                         "ERR bad hex: 'g' at position 1 is not a hex digit\n")
        self.assertEqual(self.command(s, "sendhex %d 616" % by_listener["raw"]),
                         "ERR bad hex: expected an even number of hex digits\n")
        self.assertEqual(self.command(s, "send 999999 x"), "ERR no connection 999999\n")
        self.assertEqual(self.command(s, "broadcast echo all"), "OK sent to 1\n")
        self.assertEqual(recv_exactly(line_client, 4), b"all\n")
        self.assertEqual(self.command(s, "broadcast nope x"), "ERR no listener nope\n")
        stats = json.loads(self.command(s, "stats"))
        self.assertEqual(stats["listeners"]["echo"]["connections"], 1)
        self.assertGreaterEqual(stats["messages"], 2)
        self.assertIn("kick ID", self.command(s, "help", b"end this session\n"))
        self.assertEqual(self.command(s, "frobnicate"), "ERR unknown command 'frobnicate' (try help)\n")
        self.assertEqual(self.command(s, "kick %d" % by_listener["raw"]), "OK\n")
        self.assertEqual(recv_to_eof(raw_client), b"")
        self.assertEqual(self.command(s, "quit"), "bye\n")
        self.assertEqual(recv_to_eof(s), b"")

    def test_commands_sent_before_a_half_close_are_all_answered(self):
        # list gathers from every loop and answers later; the session must stay open for it.
        s = connect(self.server.ports["admin"])
        recv_until(s, b"\n")  # greeting
        s.sendall(b"list\nstats\nlist\nsend 999999 x\n")
        s.shutdown(socket.SHUT_WR)
        replies = recv_to_eof(s).decode()
        self.assertEqual(replies.count(" connections\n"), 2, replies)
        self.assertIn('"listeners"', replies)
        self.assertTrue(replies.endswith("ERR no connection 999999\n"), replies)
        if shutil.which("nc"):
            out = subprocess.run(["nc", "-N", "127.0.0.1", str(self.server.ports["admin"])],
                                 input=b"stats\nlist\n", capture_output=True, timeout=10).stdout
            self.assertRegex(out.decode(), r'"listeners".*\n(.*\n)*OK \d+ connections\n$')


class AdminToken(ServerTestCase):
    config = {"admin": {"port": 0, "token": "s3cret"}, "listeners": [listener("echo", "line", "echo")]}

    def test_commands_refused_without_token(self):
        s = connect(self.server.ports["admin"])
        self.assertIn(b"auth TOKEN", recv_until(s, b"\n"))
        s.sendall(b"list\n")
        self.assertEqual(recv_until(s, b"\n"), b"ERR authentication required\n")
        # Each wrong token is delayed; the third closes the session (test_admin.py).
        s.sendall(b"auth wrong\n" * 3)
        self.assertEqual(recv_to_eof(s), b"ERR invalid token\n" * 3 +
                         b"ERR too many failed attempts\n")
        s = connect(self.server.ports["admin"])
        recv_until(s, b"\n")
        s.sendall(b"auth s3cret\nlist\n")
        self.assertRegex(recv_until(s, b"connections\n"), rb"^OK\n\d+ admin .*\nOK 1 connections\n$")


class NetstringsPlugin(unittest.TestCase):
    plugin = os.environ.get("NETSTRINGS_PLUGIN", "")

    def test_plugin_protocol_from_config(self):
        server = Reactord({"plugins": [self.plugin],
                           "listeners": [listener("ns", {"name": "netstrings", "max_length": 64}, "echo")]})
        try:
            c = connect(server.ports["ns"])
            c.sendall(b"5:hello,3:a")
            self.assertEqual(recv_exactly(c, 8), b"5:hello,")
            c.sendall(b"bc,")
            self.assertEqual(recv_exactly(c, 6), b"3:abc,")
            c.sendall(b"99:")  # over max_length: refused at once, then closed
            self.assertEqual(recv_to_eof(c), b"")
        finally:
            server.cleanup()

    def test_plugin_loaded_twice_is_a_config_error(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"plugins": [self.plugin, self.plugin],
                       "listeners": [listener("ns", "netstrings", "echo")]}, f)
        try:
            r = run_reactord("--check-config", f.name)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"{f.name}: plugins[1]: ", r.stderr)
            self.assertIn("already registered", r.stderr)
        finally:
            os.unlink(f.name)


class Console(unittest.TestCase):
    def test_console_reads_commands_from_stdin(self):
        server = Reactord({"listeners": [listener("raw", "raw", "echo")]}, extra_args=["--console"])
        try:
            c = connect(server.ports["raw"])
            c.sendall(b"x")
            recv_exactly(c, 1)
            server.proc.stdin.write(b"list\n")
            server.proc.stdin.flush()
            row = server.wait_for(r"^(\d+) raw 127\.0\.0\.1:\d+", stream="stdout")
            server.proc.stdin.write(b"send %s from console\n" % row.group(1).encode())
            server.proc.stdin.flush()
            self.assertEqual(recv_exactly(c, 12), b"from console")
        finally:
            server.cleanup()


class ForumExample(unittest.TestCase):
    def test_forum_server_through_stdin_pipe_and_socket(self):
        forum = Process([os.environ["FORUM_SERVER"], "127.0.0.1:0"], stdin=subprocess.PIPE)
        try:
            port = int(forum.wait_for(r"forum: listening on 127\.0\.0\.1:(\d+)", "stdout").group(1))
            a = connect(port)
            first = int(forum.wait_for(r"client (\d+) connected", "stdout").group(1))
            b = connect(port)
            second = int(forum.wait_for(r"client (%d) connected" % (first + 1), "stdout").group(1))
            self.assertEqual(second, first + 1)
            a.sendall(b"hello forum\n")
            forum.wait_for(r"message from %d: hello forum$" % first, "stdout")
            forum.proc.stdin.write(b"%d\n%d text\n424242\nnot-a-number\n" % (first, second))
            forum.proc.stdin.flush()
            self.assertEqual(recv_exactly(a, 6), bytes([97, 95, 96, 93, 91, 100]))
            self.assertEqual(recv_exactly(b, 5), b"text\n")
            forum.wait_for(r"^error: no client 424242$", "stdout")
            forum.wait_for(r"^error: 'not-a-number' is not a client id$", "stdout")
            # Lines, not reads: two lines in one write are two messages, a line in two writes one.
            a.sendall(b"first\nsecond\n")
            forum.wait_for(r"^message from %d: first$" % first, "stdout")
            forum.wait_for(r"^message from %d: second$" % first, "stdout")
            a.sendall(b"par")
            b.sendall(b"from b\n")  # read after a's first half
            forum.wait_for(r"^message from %d: from b$" % second, "stdout")
            a.sendall(b"tial\r\n")
            forum.wait_for(r"^message from %d: partial$" % first, "stdout")
            # Ids are decimal digits; blanks around the id and at the end do not count.
            start = len(forum.lines["stdout"])
            forum.proc.stdin.write(b"-1\n18446744073709551616\n+%d\n %d\n%d \n\t%d   two  words \n"
                                   % (first, first, first, second))
            forum.proc.stdin.flush()
            forum.wait_for(r"^error: '-1' is not a client id$", "stdout", start=start)
            forum.wait_for(r"^error: '18446744073709551616' is not a client id$", "stdout",
                           start=start)
            forum.wait_for(r"^error: '\+%d' is not a client id$" % first, "stdout", start=start)
            greeting = bytes([97, 95, 96, 93, 91, 100])
            self.assertEqual(recv_exactly(a, 12), greeting * 2)  # " ID" and "ID ": no bare "\n"
            self.assertEqual(recv_exactly(b, 11), b"two  words\n")
            forum.proc.stdin.close()  # end of input stops the server
            self.assertEqual(forum.finish(), 0)
        finally:
            forum.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
