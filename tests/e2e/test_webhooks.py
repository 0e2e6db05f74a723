"""End-to-end rules for webhook deliveries: what a signed Clerk event does to the database,
and which requests are refused before anything is read.

Expected values come from the fixtures parsed here in Python, the Svix specification (signed in
harness.py with Python's hmac) and the schema's documented meaning, never from usersync's code.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_webhooks.py build/usersync [-k PATTERN]
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import harness
from harness import (USER_TABLES, WEBHOOK, Assertions, ServiceTestCase, delivery_row, encode,
                     expected_user_fields, iso8601_ms, load_fixture, new_msg_id, new_secret,
                     new_user_id, rows_about, sign, signed_headers, user_data, user_event, user_row,
                     user_tables)

# One service shared by the test classes below that need no options of their own.
SHARED = harness.SharedService()
SharedServiceTest = SHARED.test_case()


def setUpModule() -> None:
    SHARED.start()


def tearDownModule() -> None:
    SHARED.stop()


# ----------------------------------------------------------------------------------------------
# What the schema says a stored user looks like, derived in Python from the Clerk user object.


def expected_user_columns(data: dict) -> dict:
    return {**expected_user_fields(data), "provider_updated_ms": data["updated_at"]}


def name_entry(data: dict) -> dict:
    return {"first_name": data.get("first_name"), "last_name": data.get("last_name"),
            "timestamp": iso8601_ms(data["updated_at"])}


class UserLifecycle(SharedServiceTest):
    def test_a_signed_user_created_lands_in_users_and_user_data(self):
        event = user_event("created", new_user_id())
        data = event["data"]
        msg_id = new_msg_id()
        before = datetime.now(timezone.utc)

        self.assertOutcome(self.service.deliver(event, msg_id), "applied")

        row = user_row(self.service, data["id"])
        self.assertIsNotNone(row)
        self.assertEqual({k: row[k] for k in expected_user_columns(data)},
                         expected_user_columns(data))
        self.assertEqual(row["email"], "ada.lovelace@example.com")
        self.assertEqual(json.loads(row["clerk_json"]), data)
        self.assertRegex(row["synced_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        synced = datetime.strptime(row["synced_at"], "%Y-%m-%dT%H:%M:%S.%f%z")
        self.assertLess(abs((synced - before).total_seconds()), 600, "synced_at is not now")
        self.assertEqual(user_data(self.service, data["id"]), {
            "signup_date": iso8601_ms(data["created_at"]),
            "signup_source": "clerk",
            "name_history": [name_entry(data)],
        })
        self.assertEqual(delivery_row(self.service, msg_id),
                         (msg_id, "user.created", data["id"], "applied"))

    def test_a_redelivered_svix_id_answers_duplicate_and_changes_nothing(self):
        event = user_event("created", new_user_id())
        body = encode(event)
        headers = signed_headers(body, self.service.secret)
        self.assertOutcome(self.service.https_request("POST", WEBHOOK, body, headers), "applied")
        before = self.service.dump()

        self.assertOutcome(self.service.https_request("POST", WEBHOOK, body, headers), "duplicate")
        self.assertEqual(self.service.dump(), before)

        # The svix-id names the message: even a newer, validly signed body under it is ignored.
        newer = user_event("created", event["data"]["id"], first_name="Augusta",
                           updated_at=event["data"]["updated_at"] + 1000)
        self.assertOutcome(self.service.deliver(newer, headers["svix-id"]), "duplicate")
        self.assertEqual(self.service.dump(), before)

    def test_user_updated_after_created_takes_the_new_primary_email_role_and_name(self):
        clerk_id = new_user_id()
        created = user_event("created", clerk_id)
        updated = user_event("updated", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")

        self.assertOutcome(self.service.deliver(updated), "applied")

        row = user_row(self.service, clerk_id)
        self.assertEqual({k: row[k] for k in expected_user_columns(updated["data"])},
                         expected_user_columns(updated["data"]))
        # Independent reading of the fixture: the primary address is the second one listed.
        self.assertEqual(row["email"], "ada@analytical-engine.example")
        self.assertEqual(row["role"], "admin")
        self.assertEqual(row["last_name"], "King, Countess of Lovelace")
        self.assertEqual(json.loads(row["clerk_json"]), updated["data"])
        self.assertEqual(user_data(self.service, clerk_id), {
            "signup_date": iso8601_ms(created["data"]["created_at"]),
            "signup_source": "clerk",
            "name_history": [name_entry(created["data"]), name_entry(updated["data"])],
        })

    def test_an_update_that_keeps_the_name_adds_no_name_history_entry(self):
        clerk_id = new_user_id()
        created = user_event("created", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")
        same_name = user_event("created", clerk_id, updated_at=created["data"]["updated_at"] + 5,
                               username="ada_l")
        same_name["type"] = "user.updated"

        self.assertOutcome(self.service.deliver(same_name), "applied")

        self.assertEqual(user_data(self.service, clerk_id)["name_history"],
                         [name_entry(created["data"])])

    def test_an_older_event_arriving_after_a_newer_one_is_stale(self):
        clerk_id = new_user_id()
        updated = user_event("updated", clerk_id)
        created = user_event("created", clerk_id)
        self.assertLess(created["data"]["updated_at"], updated["data"]["updated_at"])
        self.assertOutcome(self.service.deliver(updated), "applied")
        before = rows_about(self.service, clerk_id)

        self.assertOutcome(self.service.deliver(created), "stale")

        self.assertEqual(rows_about(self.service, clerk_id), before)
        self.assertEqual(before["user"]["email"], "ada@analytical-engine.example")

    def test_an_event_with_the_same_updated_at_changes_nothing(self):
        clerk_id = new_user_id()
        created = user_event("created", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")
        before = rows_about(self.service, clerk_id)
        same_time = user_event("updated", clerk_id, updated_at=created["data"]["updated_at"])

        self.assertOutcome(self.service.deliver(same_time), "stale")

        self.assertEqual(rows_about(self.service, clerk_id), before)

    def test_user_updated_for_an_unknown_user_creates_it(self):
        updated = user_event("updated", new_user_id())
        data = updated["data"]

        self.assertOutcome(self.service.deliver(updated), "applied")

        row = user_row(self.service, data["id"])
        self.assertIsNotNone(row)
        self.assertEqual({k: row[k] for k in expected_user_columns(data)},
                         expected_user_columns(data))
        self.assertEqual(user_data(self.service, data["id"]), {
            "signup_date": iso8601_ms(data["created_at"]),
            "signup_source": "clerk",
            "name_history": [name_entry(data)],
        })

    def test_user_deleted_removes_the_user_and_its_data_and_keeps_a_tombstone(self):
        clerk_id = new_user_id()
        self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        internal_id = user_row(self.service, clerk_id)["id"]
        self.assertTrue(self.service.query("SELECT 1 FROM user_data WHERE user_id = ?",
                                           (internal_id,)))
        delete_id = new_msg_id()

        self.assertOutcome(self.service.deliver(user_event("deleted", clerk_id), delete_id),
                           "applied")

        self.assertIsNone(user_row(self.service, clerk_id))
        self.assertEqual(self.service.query("SELECT * FROM user_data WHERE user_id = ?",
                                            (internal_id,)), [])
        self.assertEqual(self.service.query(
            "SELECT clerk_id, svix_id FROM deleted_users WHERE clerk_id = ?", (clerk_id,)),
            [(clerk_id, delete_id)])

    def test_a_late_event_for_a_deleted_user_is_stale_and_does_not_bring_it_back(self):
        clerk_id = new_user_id()
        created = user_event("created", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")
        self.assertOutcome(self.service.deliver(user_event("deleted", clerk_id)), "applied")
        before = rows_about(self.service, clerk_id)
        later = created["data"]["updated_at"] + 86_400_000
        for kind in ("updated", "created"):
            with self.subTest(kind=kind):
                self.assertOutcome(
                    self.service.deliver(user_event(kind, clerk_id, updated_at=later)), "stale")
                self.assertEqual(rows_about(self.service, clerk_id), before)
                self.assertIsNone(before["user"])

    def test_deleting_an_unknown_user_answers_200(self):
        clerk_id = new_user_id()
        before = user_tables(self.service)["users"]

        response = self.service.deliver(user_event("deleted", clerk_id))

        self.assertEqual(response.status, 200, str(response))
        self.assertIn(response.json().get("outcome"), ("applied", "stale", "ignored"))
        self.assertEqual(user_tables(self.service)["users"], before)

    def test_a_deletion_that_overtakes_the_creation_keeps_the_user_away(self):
        clerk_id = new_user_id()
        self.assertEqual(self.service.deliver(user_event("deleted", clerk_id)).status, 200)

        self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "stale")

        self.assertIsNone(user_row(self.service, clerk_id))

    def test_a_second_deletion_of_the_same_user_answers_200_and_changes_nothing(self):
        clerk_id = new_user_id()
        self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        self.assertOutcome(self.service.deliver(user_event("deleted", clerk_id)), "applied")
        before = user_tables(self.service)

        response = self.service.deliver(user_event("deleted", clerk_id))

        self.assertEqual(response.status, 200, str(response))
        self.assertEqual(user_tables(self.service), before)

    def test_banned_and_locked_users_get_that_status_and_a_ban_wins(self):
        cases = {(True, False): "banned", (False, True): "locked", (True, True): "banned",
                 (False, False): "active"}
        for (banned, locked), status in cases.items():
            with self.subTest(banned=banned, locked=locked):
                clerk_id = new_user_id()
                event = user_event("created", clerk_id, banned=banned, locked=locked)
                self.assertOutcome(self.service.deliver(event), "applied")
                self.assertEqual(user_row(self.service, clerk_id)["status"], status)

    def test_a_primary_email_id_missing_from_the_list_stores_no_email(self):
        clerk_id = new_user_id()
        event = user_event("created", clerk_id, primary_email_address_id="idn_not_in_the_list")

        self.assertOutcome(self.service.deliver(event), "applied")

        self.assertIsNone(user_row(self.service, clerk_id)["email"])

    def test_an_unknown_event_type_is_ignored_and_recorded(self):
        session_id = "sess_e2e" + new_msg_id()[7:]
        event = {"object": "event", "type": "session.created", "timestamp": 1735689600160,
                 "data": {"id": session_id, "object": "session", "status": "active",
                          "user_id": new_user_id()}}
        before = user_tables(self.service)
        msg_id = new_msg_id()

        self.assertOutcome(self.service.deliver(event, msg_id), "ignored")

        self.assertEqual(user_tables(self.service), before)
        row = delivery_row(self.service, msg_id)
        self.assertIsNotNone(row, "the ignored delivery is not in webhook_deliveries")
        self.assertEqual((row[1], row[3]), ("session.created", "ignored"))


class MalformedEvents(SharedServiceTest):
    @staticmethod
    def bodies() -> dict[str, bytes]:
        clerk_id = new_user_id()
        no_type = user_event("created", clerk_id)
        del no_type["type"]
        no_id = user_event("created", clerk_id)
        del no_id["data"]["id"]
        string_time = user_event("created", clerk_id,
                                 updated_at=str(load_fixture("clerk-user-created")["data"]["updated_at"]))
        utf8 = encode(user_event("created", clerk_id))
        bad_utf8 = utf8.replace(b'"first_name": "Ada"', b'"first_name": "Ad\xffa"', 1)
        assert bad_utf8 != utf8
        nested = (b'{"type": "user.created", "data": {"id": "' + clerk_id.encode() +
                  b'", "created_at": 1, "updated_at": 1, "first_name": "Deep", "x": ' +
                  b"[" * 100 + b"]" * 100 + b"}}")
        return {
            "not JSON": b'{"type": "user.created", "data": {',
            "JSON but not an object": b'["user.created"]',
            "missing type": encode(no_type),
            "missing data.id": encode(no_id),
            "updated_at as a string": encode(string_time),
            "invalid UTF-8": bad_utf8,
            "100-deep nested arrays": nested,
            "data not an object": encode({"type": "user.created", "data": [clerk_id]}),
        }

    def test_a_signed_undecodable_body_is_answered_400_recorded_and_changes_no_user(self):
        for name, body in self.bodies().items():
            with self.subTest(body=name):
                before = self.service.dump()
                msg_id = new_msg_id()

                response = self.service.deliver(body, msg_id)

                self.assertRefused(response, 400, "malformed_event")
                after = self.service.dump()
                for table in (*USER_TABLES, "webhook_deliveries"):
                    self.assertEqual(after[table], before[table], table)
                rejected = self.service.query(
                    "SELECT body, error FROM rejected_deliveries WHERE svix_id = ?", (msg_id,))
                self.assertEqual(len(rejected), 1, "no row in rejected_deliveries")
                self.assertEqual(rejected[0][0].encode("utf-8", "surrogateescape"), body)
                self.assertTrue(rejected[0][1], "the rejection records no reason")


class SignatureVerification(SharedServiceTest):
    def assertRefusedAndNothingWritten(self, send, error: str) -> None:
        before = self.service.dump()
        self.assertRefused(send(), 401, error)
        self.assertEqual(self.service.dump(), before)

    def test_one_changed_body_byte_is_refused_and_writes_nothing(self):
        body = encode(user_event("created", new_user_id()))
        headers = signed_headers(body, self.service.secret)
        i = body.index(b"Lovelace")
        tampered = body[:i] + b"L0velace" + body[i + 8:]
        self.assertEqual(len(tampered), len(body))

        self.assertRefusedAndNothingWritten(
            lambda: self.service.https_request("POST", WEBHOOK, tampered, headers),
            "no_matching_signature")

    def test_a_timestamp_older_than_the_tolerance_is_refused(self):
        event = user_event("created", new_user_id())
        self.assertRefusedAndNothingWritten(
            lambda: self.service.deliver(event, timestamp=int(time.time()) - 400),
            "timestamp_too_old")

    def test_a_timestamp_further_ahead_than_the_tolerance_is_refused(self):
        event = user_event("created", new_user_id())
        self.assertRefusedAndNothingWritten(
            lambda: self.service.deliver(event, timestamp=int(time.time()) + 400),
            "timestamp_too_new")

    def test_a_timestamp_within_the_tolerance_either_way_is_accepted(self):
        for offset in (-290, +290):
            with self.subTest(offset=offset):
                event = user_event("created", new_user_id())
                self.assertOutcome(
                    self.service.deliver(event, timestamp=int(time.time()) + offset), "applied")

    def test_one_valid_signature_among_several_is_enough(self):
        body = encode(user_event("created", new_user_id()))
        headers = signed_headers(body, self.service.secret)
        valid = headers["svix-signature"]
        other = sign(body, new_secret(), headers["svix-id"], headers["svix-timestamp"])
        headers["svix-signature"] = f"{other} v2,{valid[3:]} nonsense {valid} v1,AAAA"

        self.assertOutcome(self.service.https_request("POST", WEBHOOK, body, headers), "applied")

    def test_several_signatures_none_valid_are_refused(self):
        body = encode(user_event("created", new_user_id()))
        headers = signed_headers(body, self.service.secret)
        valid = headers["svix-signature"]
        headers["svix-signature"] = (
            sign(body, new_secret(), headers["svix-id"], headers["svix-timestamp"]) +
            f" v1a,{valid[3:]} v2,{valid[3:]}")
        self.assertRefusedAndNothingWritten(
            lambda: self.service.https_request("POST", WEBHOOK, body, headers),
            "no_matching_signature")

    def test_webhook_prefixed_header_names_are_accepted(self):
        event = user_event("created", new_user_id())

        self.assertOutcome(self.service.deliver(event, prefix="webhook"), "applied")

        self.assertIsNotNone(user_row(self.service, event["data"]["id"]))

    def test_a_request_missing_a_svix_header_is_refused(self):
        body = encode(user_event("created", new_user_id()))
        for missing in ("svix-id", "svix-timestamp", "svix-signature"):
            with self.subTest(missing=missing):
                headers = signed_headers(body, self.service.secret)
                del headers[missing]
                self.assertRefusedAndNothingWritten(
                    lambda: self.service.https_request("POST", WEBHOOK, body, headers),
                    "missing_headers")

    def test_a_timestamp_that_is_not_plain_decimal_seconds_is_refused(self):
        body = encode(user_event("created", new_user_id()))
        now = int(time.time())
        for text in (f"{now}.5", f"-{now}", f"{now}abc", f"+{now}", "1e9"):
            with self.subTest(timestamp=text):
                msg_id = new_msg_id()
                headers = {"svix-id": msg_id, "svix-timestamp": text,
                           "svix-signature": sign(body, self.service.secret, msg_id, text)}
                self.assertRefusedAndNothingWritten(
                    lambda: self.service.https_request("POST", WEBHOOK, body, headers),
                    "invalid_timestamp")

    def test_a_signature_made_with_another_secret_is_refused(self):
        event = user_event("created", new_user_id())
        self.assertRefusedAndNothingWritten(
            lambda: self.service.deliver(event, secret=new_secret()), "no_matching_signature")

    def test_a_signature_for_another_svix_id_is_refused(self):
        body = encode(user_event("created", new_user_id()))
        headers = signed_headers(body, self.service.secret)
        headers["svix-id"] = new_msg_id()
        self.assertRefusedAndNothingWritten(
            lambda: self.service.https_request("POST", WEBHOOK, body, headers),
            "no_matching_signature")


class SecretRotation(ServiceTestCase, Assertions):
    """Two secrets on the command line and one in --webhook-secret-file are all accepted."""

    OLD, NEW, FROM_FILE = new_secret(), new_secret(), new_secret()
    SERVICE_SECRETS = (OLD, NEW)

    @classmethod
    def setUpClass(cls) -> None:
        cls.secret_dir = tempfile.mkdtemp(prefix="usersync-e2e-secret-")
        secret_file = Path(cls.secret_dir) / "secrets"
        secret_file.write_text(f"# rotated in\n{cls.FROM_FILE}\n")
        cls.SERVICE_ARGS = ("--webhook-secret-file", str(secret_file))
        super().setUpClass()
        cls.service.secrets.append(cls.FROM_FILE)  # so the log check looks for it too

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.secret_dir, ignore_errors=True)

    def test_a_message_signed_with_any_configured_secret_is_accepted(self):
        for name, secret in (("old", self.OLD), ("new", self.NEW), ("file", self.FROM_FILE)):
            with self.subTest(secret=name):
                event = user_event("created", new_user_id())
                self.assertOutcome(self.service.deliver(event, secret=secret), "applied")

    def test_a_message_signed_with_an_unconfigured_secret_is_refused(self):
        event = user_event("created", new_user_id())
        self.assertRefused(self.service.deliver(event, secret=new_secret()), 401,
                           "no_matching_signature")

    def test_no_dev_secret_is_made_when_secrets_are_configured(self):
        self.assertFalse((self.service.data_dir / "dev-webhook-secret").exists())


class TimestampToleranceOption(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--timestamp-tolerance", "60")

    def test_timestamp_tolerance_sets_the_window(self):
        now = int(time.time())
        self.assertRefused(self.service.deliver(user_event("created", new_user_id()),
                                                timestamp=now - 120), 401, "timestamp_too_old")
        self.assertRefused(self.service.deliver(user_event("created", new_user_id()),
                                                timestamp=now + 120), 401, "timestamp_too_new")
        self.assertOutcome(self.service.deliver(user_event("created", new_user_id()),
                                                timestamp=now - 30), "applied")


if __name__ == "__main__":
    harness.main()
