"""The operator tools: `usersync sign`, `usersync check-config`, scripts/send-test-event and
scripts/new-credential, through the real binary. Expected signatures come from Svix's own
published test vector and from Python's hmac, never from the code under test."""
from __future__ import annotations

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

import harness
from harness import Service

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, env=harness.clean_env(env), timeout=60)


def headers_of(output: bytes) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.decode().splitlines())


class Sign(unittest.TestCase):
    def test_sign_reproduces_svix_published_test_vector(self) -> None:
        # svix/svix-webhooks go/webhook_test.go, TestWebhookSign.
        out = run(harness.usersync_bin(), "sign", "--webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                  "--id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "--timestamp", "1614265330", "-",
                  stdin=b'{"test": 2432232314}')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(headers_of(out.stdout)["svix-signature"], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

    def test_sign_matches_an_independent_hmac_with_a_fresh_id_and_now(self) -> None:
        secret = harness.new_secret()
        body = harness.encode(harness.load_fixture("clerk-user-created"))
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            out = run(harness.usersync_bin(), "sign", "--webhook-secret", secret, f.name)
        h = headers_of(out.stdout)
        self.assertRegex(h["svix-id"], r"^msg_[0-9a-f]{28}$")
        self.assertEqual(h["svix-signature"], harness.sign(body, secret, h["svix-id"], h["svix-timestamp"]))

    def test_sign_without_any_secret_explains_what_to_do(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            out = run(harness.usersync_bin(), "sign", "--data-dir", d, "-", stdin=b"{}")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"--webhook-secret-file", out.stderr)


class CheckConfig(unittest.TestCase):
    def test_the_sample_config_validates(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            out = run(harness.usersync_bin(), "check-config", "--config", str(REPO / "deploy/usersync.conf"),
                      "--data-dir", d)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"configuration OK", out.stdout)

    def test_an_unreadable_tls_pair_is_refused_with_the_file_named(self) -> None:
        out = run(harness.usersync_bin(), "check-config", "--tls-cert", "/nonexistent/cert.pem",
                  "--tls-key", "/nonexistent/key.pem")
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"/nonexistent/cert.pem", out.stderr)

    def test_an_unknown_key_in_the_config_file_is_refused(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("lisen = 127.0.0.1:1\n")
            f.flush()
            out = run(harness.usersync_bin(), "check-config", "--config", f.name)
        self.assertEqual(out.returncode, 2)
        self.assertIn(f.name.encode(), out.stderr)


class Scripts(unittest.TestCase):
    def test_send_test_event_posts_a_fixture_the_service_applies(self) -> None:
        with Service(listen="127.0.0.1:0") as service:
            url = f"https://localhost:{service.port}/webhooks/clerk"
            env = {"USERSYNC_BIN": harness.usersync_bin(), "USERSYNC_DATA_DIR": str(service.data_dir),
                   "HOME": os.environ.get("HOME", "/root")}
            out = run(str(REPO / "scripts/send-test-event"), str(REPO / "tests/fixtures/clerk-user-created.json"),
                      url, env=env)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(b"HTTP 200", out.stdout)
            rows = service.query("SELECT clerk_id FROM users")
            self.assertEqual(rows, [(harness.load_fixture("clerk-user-created")["data"]["id"],)])

    def test_new_credentials_are_accepted_as_a_webhook_secret_and_a_query_token(self) -> None:
        secret = run(str(REPO / "scripts/new-credential"), "webhook").stdout.decode().strip()
        token = run(str(REPO / "scripts/new-credential"), "token").stdout.decode().strip()
        self.assertRegex(secret, r"^whsec_[A-Za-z0-9+/]{32}$")
        self.assertRegex(token, r"^[0-9a-f]{48}$")
        with Service("--query-token", token, secrets=[secret]) as service:
            user = harness.user_event("created", harness.new_user_id())
            self.assertEqual(service.deliver(user, secret=secret).status, 200)
            reply = service.https_request("GET", "/v1/users/" + user["data"]["id"],
                                          headers={"Authorization": "Bearer " + token})
            self.assertEqual(reply.status, 200)


if __name__ == "__main__":
    harness.main()
