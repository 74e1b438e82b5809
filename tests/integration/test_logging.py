"""reactord's log under floods: per-event lines a remote peer triggers are rate-limited with a
count of what was held back, and a log destination that does not drain never stops the server."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import REACTORD, Reactord, connect, listener, recv_exactly, recv_to_eof

BAD_CLIENTS = 2000
PRINTED = re.compile(r"protocol error: line longer")
HELD_INLINE = re.compile(r"\((\d+) similar suppressed\)")
HELD_TIMER = re.compile(r"protocol error: (\d+) similar lines suppressed")


def send_too_long_lines(port, count, batch=200):
    """count clients, batch at a time, each sends a line over the limit and reads to the close."""
    done = 0
    while done < count:
        socks = [connect(port) for _ in range(min(batch, count - done))]
        for s in socks:
            s.sendall(b"x" * 200 + b"\n")
        for s in socks:
            recv_to_eof(s)
            s.close()
        done += len(socks)


def echo_round_trip(port, text=b"still serving\n"):
    s = connect(port, timeout=5)
    try:
        s.sendall(text)
        return recv_exactly(s, len(text))
    finally:
        s.close()


class ProtocolErrorFlood(unittest.TestCase):
    def test_2000_protocol_errors_make_a_bounded_number_of_lines_with_the_count(self):
        server = Reactord({"listeners": [listener("echo", {"name": "line", "max_line": 64}, "echo",
                                                  limits={"max_connections": 5000})]})
        try:
            start = time.monotonic()
            send_too_long_lines(server.ports["echo"], BAD_CLIENTS)
            elapsed = time.monotonic() - start

            def accounted():
                lines = list(server.lines["stderr"])
                printed = [l for l in lines if PRINTED.search(l)]
                held = sum(int(m.group(1)) for l in lines for m in [HELD_INLINE.search(l)] if m)
                held += sum(int(m.group(1)) for l in lines for m in [HELD_TIMER.search(l)] if m)
                return printed, held

            # The writer reports what the limit held back within about a second of the last one.
            deadline = time.monotonic() + 10
            while True:
                printed, held = accounted()
                if len(printed) + held >= BAD_CLIENTS or time.monotonic() > deadline:
                    break
                server.wait_for(HELD_TIMER.pattern, timeout=max(0.1, deadline - time.monotonic()),
                                start=len(server.lines["stderr"]))
            print(f"\n{BAD_CLIENTS} protocol errors in {elapsed:.1f} s: {len(printed)} lines, "
                  f"{held} counted as suppressed", flush=True)
            self.assertEqual(len(printed) + held, BAD_CLIENTS)
            # A burst of 20, then 10 a second.
            self.assertLessEqual(len(printed), 20 + 10 * (elapsed + 2))
            self.assertGreater(held, 0)
        finally:
            server.cleanup()


class PeerOnInfoLines(unittest.TestCase):
    def test_a_connection_named_at_info_names_its_peer(self):
        """Open and close lines are debug only: the INFO line itself traces the connection."""
        server = Reactord({"listeners": [listener("echo", {"name": "line", "max_line": 64}, "echo")]})
        try:
            sock = connect(server.ports["echo"])
            local = "127.0.0.1:%d" % sock.getsockname()[1]
            sock.sendall(b"x" * 200 + b"\n")
            recv_to_eof(sock)
            sock.close()
            match = server.wait_for(r" INFO .*listener=echo conn=\d+ peer=(\S+) protocol error")
            self.assertEqual(match.group(1), local)
        finally:
            server.cleanup()


class StalledLogDestination(unittest.TestCase):
    def test_stderr_on_a_pipe_nobody_reads_does_not_stop_the_server(self):
        directory = tempfile.mkdtemp(prefix="reactord-log-test-")
        path = os.path.join(directory, "config.json")
        with open(path, "w") as f:
            json.dump({"log": {"level": "debug"},
                       "listeners": [listener("echo", {"name": "line", "max_line": 64}, "echo",
                                              limits={"max_connections": 5000})]}, f)
        proc = subprocess.Popen([REACTORD, "--config", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            port = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                line = proc.stderr.readline().decode(errors="replace")
                m = re.search(r"listener=echo listening on \S+:(\d+) ", line)
                if m:
                    port = int(m.group(1))
                if "ready" in line:
                    break
            self.assertIsNotNone(port)
            # From here on nobody reads the pipe. Fill it to the brim through the server's own
            # descriptor, so that the server's next write to it would block.
            fd = os.open(f"/proc/{proc.pid}/fd/2", os.O_WRONLY | os.O_NONBLOCK)
            filled = 0
            try:
                while True:
                    filled += os.write(fd, b"#" * 65536)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
            self.assertGreater(filled, 0)
            # Every connection logs (debug open and close lines, protocol errors), and the server
            # keeps answering, promptly.
            send_too_long_lines(port, 500)
            for _ in range(50):
                start = time.monotonic()
                self.assertEqual(echo_round_trip(port), b"still serving\n")
                self.assertLess(time.monotonic() - start, 1.0)
            # A clean stop still ends in bounded time (the exit flush gives up on the pipe).
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(15), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
            os.remove(path)
            os.rmdir(directory)


if __name__ == "__main__":
    unittest.main(verbosity=2)
