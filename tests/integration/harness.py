"""Starts reactord (or an example) as a child process on ephemeral ports and talks to it over
loopback. Every wait has a deadline; nothing sleeps where an event can be waited on."""

import json
import os
import re
import threading
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REACTORD = os.environ.get("REACTORD", "reactord")
DEADLINE = 10.0

LISTENING = re.compile(r"listener=(\S+) listening on (\S+) ")
# What AddressSanitizer, LeakSanitizer, ThreadSanitizer and UndefinedBehaviorSanitizer print when they
# find something (a log line of the server's own, which starts with its timestamp, is never one).
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|"
    r"^(?!\d{4}-\d\d-\d\dT).*runtime error: ")


class Process:
    """A child whose stdout and stderr are read line by line by background threads (so it never
    blocks on a full pipe) while the test waits for what it expects."""

    def __init__(self, argv, stdin=None, env=None):
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.lines = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self._open = 2
        self._readers = [threading.Thread(target=self._read, args=(pipe, name), daemon=True)
                         for pipe, name in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe, name):
        for raw in iter(pipe.readline, b""):
            with self._changed:
                self.lines[name].append(raw.rstrip(b"\n").decode(errors="replace"))
                self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_for(self, pattern, stream="stderr", timeout=DEADLINE, start=0):
        """Returns the first match of pattern in stream's lines from index start on."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        seen = start
        with self._changed:
            while True:
                lines = self.lines[stream]
                for i in range(seen, len(lines)):
                    m = regex.search(lines[i])
                    if m:
                        return m
                seen = len(lines)
                left = end - time.monotonic()
                if left <= 0 or self._open == 0:
                    raise AssertionError(f"no line matching {pattern!r} in {stream}; got:\n" +
                                         "\n".join(lines[-30:]))
                self._changed.wait(left)

    def finish(self, timeout=DEADLINE):
        """Waits for exit and for the rest of the output; returns the exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("process did not exit in time")
        for reader in self._readers:
            reader.join(timeout)
        return code

    def sanitizer_reports(self):
        """The stderr lines in which a sanitizer reported an error (none in an ordinary build).

        One kind is left out: UBSan's vptr check reads memory through a pipe, so a process out of
        descriptors gets "invalid vptr" reports whose memory "cannot be printed" for objects that
        are fine. Those are not counted when the process reported running out of descriptors."""
        with self._changed:
            lines = list(self.lines["stderr"])
        out_of_fds = any("Too many open files" in line for line in lines)
        reports = []
        for i, line in enumerate(lines):
            if not SANITIZER_REPORT.search(line):
                continue
            unverifiable = (out_of_fds and "runtime error: " in line and
                            any("object has invalid vptr" in l for l in lines[i + 1:i + 3]) and
                            any("<memory cannot be printed>" in l for l in lines[i + 1:i + 4]))
            if not unverifiable:
                reports.append(line)
        return reports

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(DEADLINE)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class Reactord(Process):
    """reactord with a config written to a temp file; ports[name] holds each listener's port."""

    def __init__(self, config, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="reactord-test-")
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(config, f) if not isinstance(config, str) else f.write(config)
        super().__init__([REACTORD, "--config", path, *extra_args], stdin=subprocess.PIPE)
        self.ports = {}
        self.wait_for(r"reactord \S+ ready")
        for line in self.lines["stderr"]:
            m = LISTENING.search(line)
            if m:
                address = m.group(2)
                self.ports[m.group(1)] = int(address.rsplit(":", 1)[1]) if ":" in address else address

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.finish()

    def cleanup(self, timeout=60):
        """Stops a server still running with SIGTERM, as an operator would, so that a leak checker
        gets to report at exit; fails if that stop is not clean (exit status 0) or if a sanitizer
        reported anything during the server's life."""
        try:
            code = None
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                code = self.finish(timeout)  # kills and fails when the drain does not end
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        reports = self.sanitizer_reports()
        if reports:
            raise AssertionError(f"{len(reports)} sanitizer reports from reactord, the first:\n" +
                                 reports[0] + "\nthe end of its log:\n" +
                                 "\n".join(self.lines["stderr"][-60:]))
        if code not in (None, 0):
            raise AssertionError(f"reactord exited with {code} after SIGTERM:\n" +
                                 "\n".join(self.lines["stderr"][-30:]))


def connect(port, host="127.0.0.1", timeout=DEADLINE):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exactly(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"EOF after {len(out)} of {n} bytes: {out!r}")
        out += chunk
    return out


def recv_until(sock, terminator):
    out = b""
    while not out.endswith(terminator):
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"EOF before {terminator!r}: {out!r}")
        out += chunk
    return out


def recv_to_eof(sock):
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def wait_until(predicate, timeout=DEADLINE, what="the condition"):
    """Polls predicate until it returns something true, which is returned; fails at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)  # polling interval: the server offers no event to wait on


class AdminConsole:
    """A session on reactord's admin console."""

    def __init__(self, port, token=None, timeout=DEADLINE):
        self.sock = connect(port, timeout=timeout)
        self.greeting = recv_until(self.sock, b"\n")
        if token is not None:
            self.sock.sendall(b"auth " + token.encode() + b"\n")
            reply = recv_until(self.sock, b"\n")
            if reply != b"OK\n":
                raise AssertionError(f"auth refused: {reply!r}")

    def command(self, line, terminator=b"\n"):
        self.sock.sendall(line.encode() + b"\n")
        return recv_until(self.sock, terminator).decode()

    def connections(self):
        """{id: (listener, peer, {"in": bytes in, "out": bytes out})} from the list command."""
        rows = {}
        for row in self.command("list", b" connections\n").splitlines()[:-1]:
            fields = row.split()
            counts = dict(f.split("=", 1) for f in fields[3:] if "=" in f)
            rows[int(fields[0])] = (fields[1], fields[2],
                                    {"in": int(counts["in"]), "out": int(counts["out"])})
        return rows

    def stats(self):
        return json.loads(self.command("stats"))

    def close(self):
        self.sock.close()


def listener(name, protocol, app, **extra):
    entry = {"name": name, "address": "127.0.0.1", "port": 0,
             "protocol": protocol if isinstance(protocol, dict) else {"name": protocol},
             "app": app if isinstance(app, dict) else {"name": app}}
    entry.update(extra)
    return entry
