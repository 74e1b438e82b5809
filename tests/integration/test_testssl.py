"""testssl.sh (Debian's testssl.sh package) against a TLS listener of reactord with its default
TLS settings: protocols, cipher suites, forward secrecy, known vulnerabilities (Heartbleed,
ROBOT, renegotiation, CRIME, BREACH, POODLE, SWEET32, FREAK, DROWN, LOGJAM, BEAST, LUCKY13, RC4,
...). No finding rated HIGH or CRITICAL may remain, except those about the throwaway test
certificate itself (self-signed, no revocation URL, short validity), which say nothing about the
server. Prints testssl.sh's summary of severities."""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import Reactord, listener

# Findings about the certificate the test made for itself, not about reactord's TLS.
TEST_CERTIFICATE_FINDINGS = ("cert_chain_of_trust", "cert_trust", "cert_revocation",
                             "cert_expirationStatus", "cert_notAfter", "cert_validityPeriod")


class TestSsl(unittest.TestCase):
    def test_no_high_or_critical_finding(self):
        testssl = shutil.which("testssl") or shutil.which("testssl.sh")
        self.assertIsNotNone(testssl, "testssl.sh is not installed (scripts/bootstrap installs it)")
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "365", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True, timeout=30)
            server = Reactord({"listeners": [
                listener("web", "http", "http", tls={"cert": cert, "key": key})]})
            try:
                report = os.path.join(tmp, "testssl.json")
                done = subprocess.run(
                    [testssl, "--quiet", "--color", "0", "--warnings", "off", "--fast",
                     "--jsonfile", report, "127.0.0.1:%d" % server.ports["web"]],
                    capture_output=True, text=True, timeout=240)
                self.assertTrue(os.path.exists(report), done.stdout[-2000:] + done.stderr[-2000:])
                with open(report) as f:
                    findings = json.load(f)
            finally:
                server.cleanup()
        counts = collections.Counter(f.get("severity") for f in findings)
        print("testssl.sh severities: " + ", ".join(
            "%s %d" % (s, counts[s]) for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "OK", "INFO")
            if counts[s]), file=sys.stderr)
        bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")
               and f.get("id") not in TEST_CERTIFICATE_FINDINGS]
        for f in findings:
            if f.get("severity") in ("HIGH", "CRITICAL", "MEDIUM"):
                print("  %s %s: %s" % (f["severity"], f["id"], f.get("finding", "")[:160]),
                      file=sys.stderr)
        self.assertEqual(bad, [], "testssl.sh rated these HIGH or CRITICAL")
        # The run did look: it found the protocols and forward secrecy.
        ids = {f.get("id"): f for f in findings}
        self.assertIn("TLS1_3", ids)
        self.assertIn("offered", ids["TLS1_3"].get("finding", ""))
        self.assertEqual(ids.get("TLS1", {}).get("finding"), "not offered")
        self.assertEqual(ids.get("SSLv3", {}).get("finding"), "not offered")


if __name__ == "__main__":
    unittest.main(verbosity=2)
