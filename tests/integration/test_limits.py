"""reactord under pressure: several loops with thousands of connections, backpressure, idle and
trickling clients, max_connections, and a descriptor limit. Server-side facts come from the admin
console and /proc, never from timing alone."""

import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import time
import unittest

from harness import (REACTORD, Reactord, connect, listener, recv_exactly, recv_to_eof, recv_until)


def admin_command(sock, line, terminator=b"\n"):
    sock.sendall(line.encode() + b"\n")
    return recv_until(sock, terminator).decode()


def open_admin(server):
    s = connect(server.ports["admin"], timeout=60)
    recv_until(s, b"\n")
    return s


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def read_all_until(socks, expected, timeout=60):
    """Reads from every socket until each has received exactly expected[sock] bytes."""
    sel = selectors.DefaultSelector()
    got = {s: b"" for s in socks}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    pending = set(socks)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(pending)} sockets still waiting")
        for key, _ in sel.select(min(left, 1.0)):
            s = key.fileobj
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError(f"EOF after {got[s]!r}")
            got[s] += chunk
            if len(got[s]) >= len(expected[s]):
                pending.discard(s)
                sel.unregister(s)
    sel.close()
    for s in socks:
        s.setblocking(True)
    return got


class MultiLoop(unittest.TestCase):
    LOOPS = 4
    PER_LOOP = 4000

    def test_4_loops_x_4000_connections(self):
        server = Reactord({"threads": self.LOOPS, "admin": {"port": 0},
                           "listeners": [listener("echo", "line", "echo", backlog=4096,
                                                  limits={"max_connections": 20000})]})
        clients = []
        try:
            for _ in range(self.LOOPS * self.PER_LOOP):
                clients.append(connect(server.ports["echo"], timeout=60))
            admin = open_admin(server)
            # Every connection is accepted before it is listed: wait until all are open.
            deadline = time.monotonic() + 60
            while True:
                stats = json.loads(admin_command(admin, "stats"))
                if stats["listeners"]["echo"]["connections"] == len(clients):
                    break
                self.assertLess(time.monotonic(), deadline, stats)
            spread = [loop["connections"] for loop in stats["loops"]]
            print(f"\nconnections per loop (reuseport): {spread}", flush=True)
            self.assertEqual(len(spread), self.LOOPS)
            for n in spread:
                self.assertGreater(n, len(clients) * 0.10, spread)

            listing = admin_command(admin, "list", b" connections\n")
            rows = [l.split() for l in listing.splitlines() if l.split()[1:2] == ["echo"]]
            ids = [int(r[0]) for r in rows]
            self.assertEqual(len(ids), len(clients))
            self.assertEqual(len(set(ids)), len(ids), "ids are distinct")
            by_port = {int(r[2].rsplit(":", 1)[1]): int(r[0]) for r in rows}

            # send(id) from the admin session reaches each connection on whatever loop owns it.
            expected = {}
            commands = []
            for c in clients:
                conn_id = by_port[c.getsockname()[1]]
                expected[c] = b"to %d\n" % conn_id
                commands.append(b"send %d to %d\n" % (conn_id, conn_id))
            admin.sendall(b"".join(commands))
            replies = b""
            while replies.count(b"\n") < len(commands):
                replies += admin.recv(1 << 20)
            self.assertEqual(replies, b"OK\n" * len(commands))
            got = read_all_until(clients, expected)
            self.assertTrue(all(got[c] == expected[c] for c in clients))

            # broadcast reaches every connection exactly once
            self.assertEqual(admin_command(admin, "broadcast echo all of you"),
                             f"OK sent to {len(clients)}\n")
            got = read_all_until(clients, {c: b"all of you\n" for c in clients})
            self.assertTrue(all(v == b"all of you\n" for v in got.values()))
            for c in clients[:50]:  # and nothing more follows: the echo of a probe comes next
                c.sendall(b"probe\n")
                self.assertEqual(recv_exactly(c, 6), b"probe\n")
            self.assertEqual(server.stop(), 0)
        finally:
            for c in clients:
                c.close()
            server.cleanup()

    def test_round_robin_spreads_evenly(self):
        server = Reactord({"threads": 2, "admin": {"port": 0},
                           "listeners": [listener("rr", "line", "echo", accept="round_robin")]})
        try:
            clients = [connect(server.ports["rr"]) for _ in range(200)]
            for c in clients:  # one exchange each: every connection has been accepted
                c.sendall(b"x\n")
                recv_exactly(c, 2)
            admin = open_admin(server)
            stats = json.loads(admin_command(admin, "stats"))
            rr = [loop["connections"] for loop in stats["loops"]]
            # The admin connection itself sits on one of the loops.
            self.assertEqual(sum(rr), 201)
            self.assertLessEqual(max(rr) - min(rr), 2, rr)
            for c in clients:
                c.close()
        finally:
            server.cleanup()


class Backpressure(unittest.TestCase):
    def test_non_reading_client_is_paused_then_closed(self):
        server = Reactord({"admin": {"port": 0}, "listeners": [
            listener("paused", "line", "echo",
                     limits={"output_high_water": 256 * 1024, "output_limit": 64 << 20}),
            listener("capped", "line", "echo",
                     limits={"output_high_water": 32 * 1024, "output_limit": 128 * 1024}),
        ]})
        try:
            pid = server.proc.pid
            rss_before = rss_bytes(pid)
            # A client that pipelines 64 MiB of requests and never reads its replies.
            greedy = connect(server.ports["paused"])
            greedy.setblocking(False)
            line = b"y" * 1023 + b"\n"
            sent = 0
            deadline = time.monotonic() + 20
            stalled_since = None
            while sent < 64 << 20 and time.monotonic() < deadline:
                try:
                    sent += greedy.send(line * 64)
                    stalled_since = None
                except BlockingIOError:
                    # Kernel buffers both ways are full: the server has stopped reading.
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > 1.0:
                        break
                    select_wait = selectors.DefaultSelector()
                    select_wait.register(greedy, selectors.EVENT_WRITE)
                    select_wait.select(0.2)
                    select_wait.close()
            self.assertLess(sent, 64 << 20, "the server kept reading from a client that never reads")
            grown = rss_bytes(pid) - rss_before
            print(f"\nnon-reading client: {sent >> 10} KiB accepted by the kernel, server RSS grew "
                  f"{grown >> 10} KiB", flush=True)
            self.assertLess(grown, 32 << 20)
            # A paused connection costs no CPU: libevent is not asked to watch its socket.
            cpu0 = cpu_seconds(pid)
            t0 = time.monotonic()
            admin_probe = open_admin(server)
            time.sleep(1.0)  # CPU is measured over time
            idle_cpu = cpu_seconds(pid) - cpu0
            print(f"server CPU over {time.monotonic() - t0:.1f} s with the client paused: "
                  f"{idle_cpu * 1000:.0f} ms", flush=True)
            self.assertLess(idle_cpu, 0.05)
            admin_probe.close()
            # Other clients keep their service meanwhile.
            other = connect(server.ports["paused"])
            t0 = time.monotonic()
            for i in range(100):
                other.sendall(b"ping %d\n" % i)
                self.assertEqual(recv_exactly(other, len(b"ping %d\n" % i)), b"ping %d\n" % i)
            print(f"100 round trips beside it: {(time.monotonic() - t0) * 1000:.1f} ms", flush=True)

            # A client that never reads while the server pushes to it (sends from the admin
            # console) is closed with "output overflow" once its pending output passes the limit.
            admin = open_admin(server)
            capped = socket.socket()
            capped.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            capped.connect(("127.0.0.1", server.ports["capped"]))
            capped.sendall(b"hi\n")
            self.assertEqual(recv_exactly(capped, 3), b"hi\n")  # accepted and registered
            listing = admin_command(admin, "list", b" connections\n")
            capped_id = next(int(l.split()[0]) for l in listing.splitlines() if " capped " in l)
            push = ("send %d " % capped_id + "p" * 3000 + "\n").encode()
            overflowed = False
            for _ in range(4000):  # up to 12 MB, far past any kernel buffering
                admin.sendall(push)
                reply = recv_until(admin, b"\n")
                if reply.startswith(b"ERR no connection"):
                    overflowed = True
                    break
                self.assertEqual(reply, b"OK\n")
            self.assertTrue(overflowed, "the non-reading client was never closed")
            stats = json.loads(admin_command(admin, "stats"))
            self.assertEqual(stats["listeners"]["capped"]["closed"], {"output overflow": 1})
            greedy.close()
        finally:
            server.cleanup()


class IdleTimeout(unittest.TestCase):
    def test_idle_and_trickling_clients_are_closed_active_ones_are_not(self):
        server = Reactord({"admin": {"port": 0}, "listeners": [
            listener("t", "line", "echo", limits={"idle_timeout_ms": 400})]})
        try:
            idle = connect(server.ports["t"])
            trickle = connect(server.ports["t"])
            active = connect(server.ports["t"])
            started = time.monotonic()
            sel = selectors.DefaultSelector()
            sel.register(idle, selectors.EVENT_READ, "idle")
            sel.register(trickle, selectors.EVENT_READ, "trickle")
            closed_at = {}
            i = 0
            # For 2.8 s: the active client completes a line every 100 ms, the trickler sends one
            # byte of a line that never ends. Both others must be closed near 400 ms.
            while time.monotonic() - started < 2.8:
                active.sendall(b"alive %d\n" % i)
                self.assertEqual(recv_exactly(active, len(b"alive %d\n" % i)), b"alive %d\n" % i)
                if "trickle" not in closed_at:
                    try:
                        trickle.sendall(b"z")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                for key, _ in sel.select(0.1):
                    try:
                        data = key.fileobj.recv(100)
                    except ConnectionResetError:
                        data = b""  # the trickler's late bytes hit a closed socket: a reset
                    if data == b"":
                        closed_at[key.data] = time.monotonic() - started
                        sel.unregister(key.fileobj)
                i += 1
            print(f"\nclosed after: {closed_at}", flush=True)
            self.assertIn("idle", closed_at)
            self.assertIn("trickle", closed_at)
            for name in ("idle", "trickle"):
                self.assertGreaterEqual(closed_at[name], 0.35)
                self.assertLess(closed_at[name], 2.5)  # generous: CI machines are shared
            active.sendall(b"still here\n")
            self.assertEqual(recv_exactly(active, 11), b"still here\n")
            stats = json.loads(admin_command(open_admin(server), "stats"))
            self.assertEqual(stats["listeners"]["t"]["closed"]["timeout"], 2)
        finally:
            server.cleanup()


class MaxConnections(unittest.TestCase):
    def test_refused_with_the_protocols_notice(self):
        server = Reactord({"listeners": [
            listener("kv", "resp", "kv", limits={"max_connections": 2}),
            listener("web", "http", "http", limits={"max_connections": 1}),
        ]})
        try:
            kept = [connect(server.ports["kv"]) for _ in range(2)]
            for k in kept:
                k.sendall(b"PING\r\n")
                self.assertEqual(recv_exactly(k, 7), b"+PONG\r\n")
            extra = connect(server.ports["kv"])
            self.assertEqual(recv_to_eof(extra), b"-ERR max number of clients reached\r\n")
            web = connect(server.ports["web"])
            web.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"Hello, World!", recv_until(web, b"Hello, World!"))
            refused = connect(server.ports["web"])
            self.assertTrue(recv_to_eof(refused).startswith(b"HTTP/1.1 503 "))
            kept[0].close()
            # The slot frees once the server has seen the close.
            deadline = time.monotonic() + 10
            while True:
                again = connect(server.ports["kv"])
                again.sendall(b"PING\r\n")
                reply = recv_to_eof(again) if False else again.recv(100)
                if reply == b"+PONG\r\n":
                    break
                self.assertLess(time.monotonic(), deadline)
        finally:
            server.cleanup()


class DescriptorLimit(unittest.TestCase):
    def test_at_emfile_it_keeps_serving_does_not_spin_and_recovers(self):
        def low_fd_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

        import harness
        server = harness.Reactord.__new__(harness.Reactord)
        config_dir = __import__("tempfile").mkdtemp(prefix="reactord-test-")
        path = os.path.join(config_dir, "c.json")
        with open(path, "w") as f:
            json.dump({"listeners": [listener("e", "line", "echo")]}, f)
        harness.Process.__init__(server, [REACTORD, "--config", path], stdin=subprocess.PIPE)
        server.dir = config_dir
        # The limit applies to the child only: set it through prlimit once it runs.
        server.wait_for(r"reactord \S+ ready")
        resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
        port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        clients = []
        try:
            first = connect(port)
            first.sendall(b"hello\n")
            self.assertEqual(recv_exactly(first, 6), b"hello\n")
            for _ in range(200):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            server.wait_for(r"accept paused")
            cpu0 = cpu_seconds(server.proc.pid)
            t0 = time.monotonic()
            for i in range(20):  # the existing client keeps being served while others wait
                first.sendall(b"again %d\n" % i)
                self.assertEqual(recv_exactly(first, len(b"again %d\n" % i)), b"again %d\n" % i)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))  # CPU is measured over time
            used = cpu_seconds(server.proc.pid) - cpu0
            print(f"\nCPU while refusing for 1 s: {used * 1000:.0f} ms", flush=True)
            self.assertLess(used, 0.2)
            for c in clients:
                c.close()
            clients = []
            late = connect(port)
            late.sendall(b"back\n")
            self.assertEqual(recv_exactly(late, 5), b"back\n")
            server.wait_for(r"accepting again")
        finally:
            for c in clients:
                c.close()
            server.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
