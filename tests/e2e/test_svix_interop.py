"""usersync accepts what the official svix library signs, and refuses what it did not sign.

The signatures here are made by the `svix` npm package (pinned in tests/e2e/package.json)
through node and tests/e2e/sign_with_svix.mjs: a second, independent implementation of the
Svix scheme, besides the Python one in harness.py.

Needs node and `npm ci --prefix tests/e2e`. Without them these tests fail (they do not skip).
Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_svix_interop.py build/usersync
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import harness
from harness import ServiceTestCase, encode, new_msg_id, new_user_id, user_event

E2E_DIR = Path(__file__).resolve().parent
SIGNER = E2E_DIR / "sign_with_svix.mjs"
INSTALL_HINT = "run `npm ci --prefix tests/e2e` (needs node and npm) before the end-to-end tests"


def svix_sign(secret: str, msg_id: str, timestamp: int, payload: str) -> str:
    """The svix-signature header value the official svix library makes for this message."""
    node = shutil.which("node")
    if node is None:
        raise AssertionError(f"node is not installed: {INSTALL_HINT}")
    if not (E2E_DIR / "node_modules" / "svix" / "package.json").is_file():
        raise AssertionError(f"tests/e2e/node_modules/svix is missing: {INSTALL_HINT}")
    request = json.dumps({"secret": secret, "id": msg_id, "timestamp": timestamp,
                          "payload": payload})
    result = subprocess.run([node, str(SIGNER)], input=request, capture_output=True, text=True,
                            timeout=60, cwd=E2E_DIR)
    if result.returncode != 0:
        raise AssertionError(f"sign_with_svix.mjs failed ({INSTALL_HINT}?):\n{result.stderr}")
    return result.stdout.strip()


class SvixInterop(ServiceTestCase):
    def svix_headers(self, payload: str, msg_id: str | None = None) -> dict[str, str]:
        msg_id = msg_id or new_msg_id()
        timestamp = int(time.time())
        return {"svix-id": msg_id, "svix-timestamp": str(timestamp),
                "svix-signature": svix_sign(self.service.secret, msg_id, timestamp, payload),
                "content-type": "application/json"}

    def test_the_harness_signer_agrees_with_the_svix_library(self):
        # The example from Svix's documentation, so both signers are checked against a
        # published value too.
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        msg_id, timestamp, payload = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
        published = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        self.assertEqual(svix_sign(secret, msg_id, timestamp, payload), published)
        self.assertEqual(harness.sign(payload.encode(), secret, msg_id, timestamp), published)

    def test_a_body_signed_by_the_svix_library_is_accepted(self):
        event = user_event("created", new_user_id(), first_name="Ада", last_name="Lovelace-Ŝ 🚀")
        payload = encode(event).decode("utf-8")

        response = self.service.https_request("POST", "/webhooks/clerk", payload.encode("utf-8"),
                                              self.svix_headers(payload))

        self.assertEqual(response.status, 200, str(response))
        self.assertEqual(response.json(), {"outcome": "applied"})
        rows = self.service.query("SELECT first_name, last_name FROM users WHERE clerk_id = ?",
                                  (event["data"]["id"],))
        self.assertEqual(rows, [("Ада", "Lovelace-Ŝ 🚀")])

    def test_a_body_modified_after_the_svix_library_signed_it_is_refused(self):
        event = user_event("created", new_user_id())
        payload = encode(event).decode("utf-8")
        headers = self.svix_headers(payload)
        modified = payload.replace('"Lovelace"', '"Lovelacf"', 1)
        self.assertNotEqual(modified, payload)
        before = self.service.dump()

        response = self.service.https_request("POST", "/webhooks/clerk", modified.encode("utf-8"),
                                              headers)

        self.assertEqual(response.status, 401, str(response))
        self.assertEqual(response.json()["error"], "no_matching_signature")
        self.assertEqual(self.service.dump(), before)


if __name__ == "__main__":
    harness.main()
