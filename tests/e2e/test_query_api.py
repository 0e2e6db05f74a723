"""End-to-end rules for the read side: the /v1 query API over TLS, its bearer tokens, and what
readers (the API's and an admin's sqlite3 shell) may and may not do to the writer.

Expected values come from the fixtures parsed here in Python and from a separate read-only
sqlite3 connection to the service's database, never from usersync's code.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -p test_query_api.py -v
 or: python3 tests/e2e/test_query_api.py build/usersync [-k PATTERN]
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import sqlite3
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

import harness
from harness import (WEBHOOK, Assertions, Service, encode, expected_user_fields, iso8601_ms,
                     new_user_id, signed_headers, user_data, user_event, user_row)

# One service shared by the test classes below that need no options of their own; each test
# uses its own user ids, so they do not interfere.
SHARED = harness.SharedService()

# Bounds on a hang, not measures of speed.
POLL_DEADLINE_S = 30.0
MiB = 1024 * 1024
JOURNAL_SIZE_LIMIT = 4 * MiB  # PRAGMA journal_size_limit set by the service


def setUpModule() -> None:
    SHARED.start()


def tearDownModule() -> None:
    SHARED.stop()


# ----------------------------------------------------------------------------------------------
# Helpers: tokens, requests, and expected values computed in Python


def dev_query_token(service: Service) -> str:
    return (service.data_dir / "dev-query-token").read_text().strip()


def new_token() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]  # 40 characters, over the 16 minimum


def get(service: Service, path: str, token: str | None = None,
        authorization: str | None = None) -> harness.Response:
    """GET `path` with `Authorization: Bearer <token>` (the dev token unless given), or with the
    literal `authorization` header when that is given ("" sends none)."""
    if authorization is None:
        authorization = "Bearer " + (token if token is not None else dev_query_token(service))
    headers = {"Authorization": authorization} if authorization else {}
    return service.request("GET", path, headers=headers)


def get_json(test: Assertions, service: Service, path: str, token: str | None = None):
    response = get(service, path, token)
    test.assertEqual(response.status, 200, str(response))
    test.assertEqual(response.headers.get("content-type"), "application/json")
    return response.json()


def feed_path(**params) -> str:
    return "/v1/users?" + urlencode(params) if params else "/v1/users"


def with_email(event: dict, address: str) -> dict:
    """`event` whose user has `address` as its only, primary email address."""
    event = copy.deepcopy(event)
    entry = copy.deepcopy(event["data"]["email_addresses"][0])
    entry["id"] = "idn_e2e" + uuid.uuid4().hex
    entry["email_address"] = address
    event["data"]["email_addresses"] = [entry]
    event["data"]["primary_email_address_id"] = entry["id"]
    return event


def name_entry(data: dict) -> dict:
    return {"first_name": data.get("first_name"), "last_name": data.get("last_name"),
            "timestamp": iso8601_ms(data["updated_at"])}


def stored_user(service: Service, clerk_id: str) -> dict:
    """The user as the API should render it, built from a separate sqlite3 read."""
    row = user_row(service, clerk_id)
    assert row is not None, f"{clerk_id} is not in the users table"
    return {k: row[k] for k in ("clerk_id", "email", "first_name", "last_name", "role", "status",
                                "created_at", "updated_at", "synced_at", "change_seq")} | {
        "data": user_data(service, clerk_id)}


def tombstone(service: Service, clerk_id: str) -> dict | None:
    rows = service.query("SELECT deleted_at, change_seq FROM deleted_users WHERE clerk_id = ?",
                         (clerk_id,))
    return {"deleted_at": rows[0][0], "change_seq": rows[0][1]} if rows else None


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class SharedServiceTest(SHARED.test_case()):
    def assertBadParameter(self, response) -> None:
        """400 with a JSON body naming the problem: {"error": "bad_parameter", "message": ...}."""
        self.assertRefused(response, 400, "bad_parameter")
        message = response.json().get("message")
        self.assertIsInstance(message, str)
        self.assertTrue(message.strip(), "the 400 carries no message")


# ----------------------------------------------------------------------------------------------
# GET /v1/users/{clerk_id}


class OneUser(SharedServiceTest):
    def test_a_user_is_served_with_its_core_fields_and_its_data_as_an_object(self):
        event = user_event("created", new_user_id(), public_metadata={"role": "admin"},
                           first_name="Ada Ζ", last_name="Lovelace 🚂")
        data = event["data"]
        self.assertOutcome(self.service.deliver(event), "applied")

        body = get_json(self, self.service, f"/v1/users/{data['id']}")

        # From the fixture, read in Python.
        self.assertEqual({k: body.get(k) for k in expected_user_fields(data)},
                         expected_user_fields(data))
        self.assertEqual(body["role"], "admin")
        self.assertIsInstance(body["data"], dict, "user_data must be a JSON object, not text")
        self.assertEqual(body["data"], {
            "signup_date": iso8601_ms(data["created_at"]),
            "signup_source": "clerk",
            "name_history": [name_entry(data)],
        })
        # From a separate sqlite3 read: every field, synced_at and change_seq included.
        self.assertEqual(body, stored_user(self.service, data["id"]))
        self.assertRegex(body["synced_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_an_updated_user_is_served_as_updated(self):
        clerk_id = new_user_id()
        created, updated = user_event("created", clerk_id), user_event("updated", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")
        self.assertOutcome(self.service.deliver(updated), "applied")

        body = get_json(self, self.service, f"/v1/users/{clerk_id}")

        self.assertEqual({k: body.get(k) for k in expected_user_fields(updated["data"])},
                         expected_user_fields(updated["data"]))
        self.assertEqual(body["data"]["name_history"],
                         [name_entry(created["data"]), name_entry(updated["data"])])
        self.assertEqual(body, stored_user(self.service, clerk_id))

    def test_an_unknown_user_is_404_json(self):
        response = get(self.service, f"/v1/users/{new_user_id()}")

        self.assertRefused(response, 404, "user_not_found")
        self.assertTrue(response.json().get("message"))

    def test_a_deleted_user_is_410_with_its_deletion_time(self):
        clerk_id = new_user_id()
        self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        self.assertOutcome(self.service.deliver(user_event("deleted", clerk_id)), "applied")

        response = get(self.service, f"/v1/users/{clerk_id}")

        self.assertRefused(response, 410, "user_deleted")
        self.assertEqual(response.json()["deleted_at"],
                         tombstone(self.service, clerk_id)["deleted_at"])
        self.assertRegex(response.json()["deleted_at"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ----------------------------------------------------------------------------------------------
# GET /v1/users?email=ADDR


class EmailLookup(SharedServiceTest):
    def test_an_email_lookup_ignores_case(self):
        address = f"Grace.Hopper.{uuid.uuid4().hex[:12]}@Example.com"
        event = with_email(user_event("created", new_user_id()), address)
        self.assertOutcome(self.service.deliver(event), "applied")
        clerk_id = event["data"]["id"]

        for sent in (address.upper(), address.lower(), address):
            with self.subTest(email=sent):
                body = get_json(self, self.service, "/v1/users?" + urlencode({"email": sent}))
                self.assertEqual(body, {"data": [stored_user(self.service, clerk_id)]})
                self.assertEqual(body["data"][0]["email"], address)  # stored as the provider sent it

    def test_a_percent_encoded_plus_in_an_address_is_matched(self):
        tag = uuid.uuid4().hex[:12]
        address = f"grace+{tag}@example.com"
        event = with_email(user_event("created", new_user_id()), address)
        self.assertOutcome(self.service.deliver(event), "applied")

        body = get_json(self, self.service, f"/v1/users?email=GRACE%2B{tag.upper()}%40example.com")

        self.assertEqual([u["clerk_id"] for u in body["data"]], [event["data"]["id"]])
        self.assertEqual(body["data"][0]["email"], address)

    def test_every_user_with_the_address_is_listed_in_change_order(self):
        address = f"shared.{uuid.uuid4().hex[:12]}@example.com"
        first = with_email(user_event("created", new_user_id()), address)
        second = with_email(user_event("created", new_user_id()), address.upper())
        for event in (first, second):
            self.assertOutcome(self.service.deliver(event), "applied")

        body = get_json(self, self.service, "/v1/users?" + urlencode({"email": address}))

        self.assertEqual(body["data"], [stored_user(self.service, first["data"]["id"]),
                                        stored_user(self.service, second["data"]["id"])])

    def test_an_unknown_address_gives_an_empty_list(self):
        address = f"nobody.{uuid.uuid4().hex}@example.com"

        self.assertEqual(get_json(self, self.service, "/v1/users?" + urlencode({"email": address})),
                         {"data": []})

    def test_a_deleted_users_address_gives_an_empty_list(self):
        address = f"gone.{uuid.uuid4().hex[:12]}@example.com"
        event = with_email(user_event("created", new_user_id()), address)
        self.assertOutcome(self.service.deliver(event), "applied")
        self.assertOutcome(self.service.deliver(user_event("deleted", event["data"]["id"])),
                           "applied")

        self.assertEqual(get_json(self, self.service, "/v1/users?" + urlencode({"email": address})),
                         {"data": []})

    def test_email_combined_with_another_parameter_is_400(self):
        address = f"ada.{uuid.uuid4().hex[:8]}@example.com"
        for other in ({"limit": "10"}, {"cursor": "0"}, {"updated_since": "2025-01-01"},
                      {"page": "2"}):
            with self.subTest(other=other):
                self.assertBadParameter(
                    get(self.service, "/v1/users?" + urlencode({"email": address, **other})))


# ----------------------------------------------------------------------------------------------
# GET /v1/users?updated_since=...&limit=N&cursor=C: the change feed


def page_through(test: Assertions, service: Service, limit: int, cursor: str | None = None,
                 **params) -> tuple[list[dict], str]:
    """Every entry of the feed after `cursor`, page by page; and the last next_cursor."""
    entries: list[dict] = []
    for _ in range(10_000):
        query = dict(params, limit=limit) | ({"cursor": cursor} if cursor is not None else {})
        page = get_json(test, service, feed_path(**query))
        test.assertEqual(set(page), {"data", "next_cursor", "has_more"})
        test.assertLessEqual(len(page["data"]), limit)
        entries += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return entries, cursor
    raise AssertionError("the feed never said has_more: false")


def parse_utc(text: str) -> datetime:
    """An updated_since value or a stored time ("2026-01-31", "...T12:00:00Z", "...T12:00:00.000Z")
    as an aware datetime, read here in Python."""
    for shape in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    raise ValueError(f"not an ISO-8601 UTC time: {text!r}")


def applied_at(entry: dict) -> datetime:
    """When a feed entry's change was applied: synced_at, or deleted_at for a tombstone."""
    return parse_utc(entry["deleted_at"] if entry["deleted"] else entry["user"]["synced_at"])


class ChangeFeed(Assertions):
    """Each test runs its own service, so the feed holds exactly the changes the test made."""

    def feed_entry(self, service: Service, clerk_id: str) -> dict:
        """The entry the feed should show for `clerk_id`, from a separate sqlite3 read."""
        if user_row(service, clerk_id) is not None:
            user = stored_user(service, clerk_id)
            return {"change_seq": user["change_seq"], "clerk_id": clerk_id, "deleted": False,
                    "user": user}
        t = tombstone(service, clerk_id)
        self.assertIsNotNone(t, f"{clerk_id} is neither a user nor a tombstone")
        return {"change_seq": t["change_seq"], "clerk_id": clerk_id, "deleted": True,
                "deleted_at": t["deleted_at"]}

    def test_the_feed_lists_the_latest_change_of_each_user_in_update_order_with_tombstones(self):
        with Service() as service:
            a, b, c = new_user_id(), new_user_id(), new_user_id()
            for clerk_id in (a, b, c):
                self.assertOutcome(service.deliver(user_event("created", clerk_id)), "applied")
            self.assertOutcome(service.deliver(user_event("updated", a)), "applied")
            self.assertOutcome(service.deliver(user_event("deleted", b)), "applied")

            first = get_json(self, service, feed_path(limit=2))
            second = get_json(self, service, feed_path(limit=2, cursor=first["next_cursor"]))

            # The order of the last write to each user: c (created), a (updated), b (deleted).
            expected = [self.feed_entry(service, x) for x in (c, a, b)]
            self.assertEqual(first, {"data": expected[:2], "has_more": True,
                                     "next_cursor": str(expected[1]["change_seq"])})
            self.assertEqual(second, {"data": expected[2:], "has_more": False,
                                      "next_cursor": str(expected[2]["change_seq"])})
            self.assertEqual(expected[2]["deleted"], True)
            seqs = [e["change_seq"] for e in first["data"] + second["data"]]
            self.assertEqual(seqs, sorted(set(seqs)), "change_seq is not increasing")
            self.assertEqual(first["data"][1]["user"]["first_name"], "Ada")
            self.assertEqual(first["data"][1]["user"]["last_name"], "King, Countess of Lovelace")
            # The last page's cursor leads to an empty page that keeps the cursor.
            self.assertEqual(get_json(self, service, feed_path(cursor=second["next_cursor"])),
                             {"data": [], "has_more": False, "next_cursor": second["next_cursor"]})

    def test_updated_since_keeps_only_changes_applied_at_or_after_it(self):
        with Service() as service:
            before, boundary, after, deleted = (new_user_id() for _ in range(4))
            self.assertOutcome(service.deliver(user_event("created", before)), "applied")
            self.assertOutcome(service.deliver(user_event("created", deleted)), "applied")
            time.sleep(0.01)  # a later millisecond for the boundary user's synced_at
            self.assertOutcome(service.deliver(user_event("created", boundary)), "applied")
            self.assertOutcome(service.deliver(user_event("created", after)), "applied")
            self.assertOutcome(service.deliver(user_event("deleted", deleted)), "applied")
            since = user_row(service, boundary)["synced_at"]
            self.assertGreater(since, user_row(service, before)["synced_at"])

            entries, _ = page_through(self, service, 2, updated_since=since)
            self.assertEqual(entries, [self.feed_entry(service, x)
                                       for x in (boundary, after, deleted)])

            # Whole days select by the same rule: applied at or after the given instant,
            # compared here in Python as times, not as text.
            everything = sorted((self.feed_entry(service, x)
                                 for x in (before, boundary, after, deleted)),
                                key=lambda e: e["change_seq"])
            day = parse_utc(since[:10])
            for form in (since[:10], (day + timedelta(days=1)).strftime("%Y-%m-%d"),
                         (day - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")):
                with self.subTest(updated_since=form):
                    entries, _ = page_through(self, service, 2, updated_since=form)
                    self.assertEqual(entries, [e for e in everything
                                               if applied_at(e) >= parse_utc(form)])
            self.assertEqual(len(everything), 4)

    def test_updated_since_in_whole_seconds_includes_changes_applied_within_that_second(self):
        # "2026-01-31T12:00:00Z" is the instant 12:00:00.000; a change applied at 12:00:00.250
        # is after it and must be listed.
        with Service() as service:
            kept, deleted = new_user_id(), new_user_id()
            self.assertOutcome(service.deliver(user_event("created", kept)), "applied")
            self.assertOutcome(service.deliver(user_event("created", deleted)), "applied")
            self.assertOutcome(service.deliver(user_event("deleted", deleted)), "applied")
            cases = {"user": (kept, user_row(service, kept)["synced_at"]),
                     "tombstone": (deleted, tombstone(service, deleted)["deleted_at"])}
            for kind, (clerk_id, applied) in cases.items():
                since = applied[:19] + "Z"
                with self.subTest(kind=kind, applied=applied, updated_since=since):
                    self.assertGreaterEqual(parse_utc(applied), parse_utc(since))
                    entries, _ = page_through(self, service, 10, updated_since=since)
                    self.assertIn(self.feed_entry(service, clerk_id), entries)

    def test_a_limit_of_1_and_of_1000_are_accepted(self):
        with Service() as service:
            ids = [new_user_id() for _ in range(3)]
            for clerk_id in ids:
                self.assertOutcome(service.deliver(user_event("created", clerk_id)), "applied")

            entries, _ = page_through(self, service, 1)
            self.assertEqual([e["clerk_id"] for e in entries], ids)
            page = get_json(self, service, feed_path(limit=1000))
            self.assertEqual([e["clerk_id"] for e in page["data"]], ids)
            self.assertFalse(page["has_more"])


class ChangeFeedParameters(SharedServiceTest):
    def test_bad_limit_cursor_updated_since_or_an_unknown_parameter_is_400_with_a_message(self):
        cases = {
            "limit=0": "limit=0",
            "limit=1001": "limit=1001",
            "limit=x": "limit=x",
            "limit=-1": "limit=-1",
            "limit empty": "limit=",
            "limit=5.5": "limit=5.5",
            "cursor=abc": "cursor=abc",
            "cursor=-1": "cursor=-1",
            "cursor beyond int64": "cursor=99999999999999999999",
            "updated_since=yesterday": "updated_since=yesterday",
            "updated_since with a space": "updated_since=" + quote("2026-01-31 12:00:00"),
            "updated_since with an offset": "updated_since=" + quote("2026-01-31T12:00:00+01:00"),
            "updated_since=2026-1-31": "updated_since=2026-1-31",
            "unknown parameter": "page=2",
            "unknown parameter beside good ones": "limit=5&sort=desc",
            "malformed %-escape": "updated_since=%ZZ",
        }
        for name, query in cases.items():
            with self.subTest(name):
                self.assertBadParameter(get(self.service, "/v1/users?" + query))


# ----------------------------------------------------------------------------------------------
# Paging while the writer keeps writing


class PaginationAcrossConcurrentWrites(Assertions):
    CREATES = 80
    UPDATE_EVERY = 4  # after every 4th creation, update an earlier user
    PAGE = 3

    def test_paging_while_users_are_written_skips_and_repeats_no_change(self):
        with Service() as service:
            created: list[str] = []
            final_first_name: dict[str, str] = {}
            updated_at: dict[str, int] = {}
            failures: list[str] = []
            writing = threading.Event()
            done = threading.Event()

            def write() -> None:
                try:
                    for i in range(self.CREATES):
                        clerk_id = new_user_id()
                        event = user_event("created", clerk_id, first_name=f"Created{i}")
                        response = service.deliver(event)
                        if response.json() != {"outcome": "applied"}:
                            failures.append(f"create {i}: {response}")
                        created.append(clerk_id)
                        final_first_name[clerk_id] = f"Created{i}"
                        updated_at[clerk_id] = event["data"]["updated_at"]
                        if i >= 5:
                            writing.set()
                        if i % self.UPDATE_EVERY == self.UPDATE_EVERY - 1:
                            target = created[(i * 7) % len(created)]
                            updated_at[target] += 1000
                            name = f"Updated{i}"
                            update = user_event("created", target, first_name=name,
                                                updated_at=updated_at[target])
                            update["type"] = "user.updated"
                            response = service.deliver(update)
                            if response.json() != {"outcome": "applied"}:
                                failures.append(f"update {i}: {response}")
                            final_first_name[target] = name
                except Exception as e:  # reported by the test thread
                    failures.append(f"writer: {e!r}")
                finally:
                    writing.set()
                    done.set()

            writer = threading.Thread(target=write)
            writer.start()
            try:
                self.assertTrue(writing.wait(POLL_DEADLINE_S), "the writer did not start")
                seen: list[dict] = []
                cursor = "0"
                pages_while_writing = 0
                deadline = time.monotonic() + 120
                while True:
                    self.assertLess(time.monotonic(), deadline, "paging did not finish")
                    in_flight = not done.is_set()  # read before the page: no write after it is missed
                    page = get_json(self, service, feed_path(limit=self.PAGE, cursor=cursor))
                    self.assertLessEqual(len(page["data"]), self.PAGE)
                    seen += page["data"]
                    cursor = page["next_cursor"]
                    pages_while_writing += in_flight
                    if not page["has_more"] and not in_flight:
                        break
                    if not page["has_more"]:
                        time.sleep(0.005)
            finally:
                writer.join(120)
            self.assertFalse(writer.is_alive())
            self.assertEqual(failures, [])
            self.assertGreater(pages_while_writing, 3, "the pages did not overlap the writes")

            # No change_seq repeated, and they increase across pages.
            seqs = [e["change_seq"] for e in seen]
            self.assertEqual(len(seqs), len(set(seqs)), "a change_seq was served twice")
            self.assertEqual(seqs, sorted(seqs), "change_seq went backwards across pages")
            # Every user that exists now was seen, and its last appearance is its final state.
            final = {row[0]: row[1] for row in service.query("SELECT clerk_id, change_seq FROM users")}
            self.assertEqual(set(final), set(created))
            last_seen = {e["clerk_id"]: e for e in seen}
            self.assertEqual(set(last_seen), set(final), "a user was skipped")
            for clerk_id in created:
                entry = last_seen[clerk_id]
                self.assertEqual(entry["change_seq"], final[clerk_id], clerk_id)
                self.assertFalse(entry["deleted"])
                self.assertEqual(entry["user"], stored_user(service, clerk_id))
                self.assertEqual(entry["user"]["first_name"], final_first_name[clerk_id])
            # Repeated appearances are updates: each has a newer updated_at than the one before.
            by_user: dict[str, list[dict]] = {}
            for e in seen:
                by_user.setdefault(e["clerk_id"], []).append(e["user"])
            for clerk_id, versions in by_user.items():
                stamps = [v["updated_at"] for v in versions]
                self.assertEqual(stamps, sorted(set(stamps)), f"{clerk_id} repeated without a change")
            # One more page from the last cursor: nothing new.
            self.assertEqual(get_json(self, service, feed_path(limit=self.PAGE, cursor=cursor)),
                             {"data": [], "has_more": False, "next_cursor": cursor})


# ----------------------------------------------------------------------------------------------
# GET /v1/users/{clerk_id}/data and /data/{key}


class UserData(SharedServiceTest):
    def stored_items(self, clerk_id: str) -> dict[str, tuple[str, str]]:
        rows = self.service.query(
            "SELECT d.key, d.value, d.updated_at FROM user_data d JOIN users u ON u.id = d.user_id"
            " WHERE u.clerk_id = ?", (clerk_id,))
        return {key: (json.loads(value), updated_at) for key, value, updated_at in rows}

    def test_a_users_data_is_served_as_one_object(self):
        clerk_id = new_user_id()
        created = user_event("created", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")
        self.assertOutcome(self.service.deliver(user_event("updated", clerk_id)), "applied")

        body = get_json(self, self.service, f"/v1/users/{clerk_id}/data")

        self.assertEqual(body, user_data(self.service, clerk_id))
        self.assertEqual(set(body), {"signup_date", "signup_source", "name_history"})
        self.assertEqual(body["signup_date"], iso8601_ms(created["data"]["created_at"]))

    def test_one_data_key_is_served_with_its_value_and_update_time(self):
        clerk_id = new_user_id()
        created, updated = user_event("created", clerk_id), user_event("updated", clerk_id)
        self.assertOutcome(self.service.deliver(created), "applied")
        self.assertOutcome(self.service.deliver(updated), "applied")
        stored = self.stored_items(clerk_id)

        expected_values = {
            "name_history": [name_entry(created["data"]), name_entry(updated["data"])],
            "signup_source": "clerk",
            "signup_date": iso8601_ms(created["data"]["created_at"]),
        }
        for key, value in expected_values.items():
            with self.subTest(key=key):
                body = get_json(self, self.service, f"/v1/users/{clerk_id}/data/{key}")
                self.assertEqual(body, {"key": key, "value": value,
                                        "updated_at": stored[key][1]})
                self.assertEqual(stored[key][0], value)

    def test_an_unknown_key_is_404(self):
        clerk_id = new_user_id()
        self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")

        self.assertRefused(get(self.service, f"/v1/users/{clerk_id}/data/no_such_key"), 404,
                           "key_not_found")

    def test_data_of_an_unknown_user_is_404(self):
        clerk_id = new_user_id()
        for path in (f"/v1/users/{clerk_id}/data", f"/v1/users/{clerk_id}/data/name_history"):
            with self.subTest(path=path):
                self.assertRefused(get(self.service, path), 404, "user_not_found")

    def test_data_of_a_deleted_user_is_410(self):
        clerk_id = new_user_id()
        self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        self.assertOutcome(self.service.deliver(user_event("deleted", clerk_id)), "applied")
        deleted_at = tombstone(self.service, clerk_id)["deleted_at"]

        for path in (f"/v1/users/{clerk_id}/data", f"/v1/users/{clerk_id}/data/name_history",
                     f"/v1/users/{clerk_id}/data/no_such_key"):
            with self.subTest(path=path):
                response = get(self.service, path)
                self.assertRefused(response, 410, "user_deleted")
                self.assertEqual(response.json()["deleted_at"], deleted_at)


# ----------------------------------------------------------------------------------------------
# Bearer tokens


class QueryAuthentication(SharedServiceTest):
    PATHS = ("/v1/users/user_x", "/v1/users?limit=1", "/v1/users?email=a%40example.com",
             "/v1/users/user_x/data", "/v1/users/user_x/data/name_history")

    def assertUnauthorized(self, response) -> None:
        self.assertRefused(response, 401)
        self.assertEqual(response.headers.get("www-authenticate", "").split(" ")[0], "Bearer")

    def test_a_request_without_authorization_is_401_with_www_authenticate_bearer(self):
        for path in self.PATHS:
            with self.subTest(path=path):
                self.assertUnauthorized(get(self.service, path, authorization=""))

    def test_a_wrong_token_is_401(self):
        token = dev_query_token(self.service)
        for name, header in {
            "another token": "Bearer " + new_token(),
            "the token with a byte more": f"Bearer {token}x",
            "the token less its last byte": f"Bearer {token[:-1]}",
            "the token alone, no scheme": token,
            "Basic scheme": "Basic " + base64.b64encode(f"x:{token}".encode()).decode(),
            "Bearer and nothing": "Bearer ",
        }.items():
            with self.subTest(name):
                for path in self.PATHS:
                    self.assertUnauthorized(get(self.service, path, authorization=header))

    def test_the_bearer_scheme_name_is_case_insensitive(self):
        # RFC 9110 section 11.1: the authentication scheme is a case-insensitive token, and some
        # HTTP clients send "bearer".
        token = dev_query_token(self.service)
        for scheme in ("bearer", "BEARER"):
            with self.subTest(scheme=scheme):
                response = get(self.service, "/v1/users?limit=1", authorization=f"{scheme} {token}")
                self.assertEqual(response.status, 200, str(response))

    def test_the_webhook_secret_is_not_a_query_token(self):
        secret = self.service.secret
        for token in (secret, secret[len("whsec_"):]):
            with self.subTest(token=token[:8] + "..."):
                self.assertUnauthorized(get(self.service, "/v1/users?limit=1", token=token))

    def test_the_query_token_is_not_a_webhook_secret(self):
        token = dev_query_token(self.service)
        forged = "whsec_" + base64.b64encode(token.encode("utf-8")).decode("ascii")
        event = user_event("created", new_user_id())
        before = self.service.dump()

        response = self.service.deliver(event, secret=forged)

        self.assertRefused(response, 401, "no_matching_signature")
        self.assertEqual(self.service.dump(), before)
        self.assertIsNone(user_row(self.service, event["data"]["id"]))

    def test_the_dev_token_is_made_owner_only_in_the_data_dir(self):
        path = self.service.data_dir / "dev-query-token"
        self.assertEqual(path.stat().st_mode & 0o077, 0, oct(path.stat().st_mode))
        self.assertGreaterEqual(len(dev_query_token(self.service)), 16)


class ConfiguredQueryTokens(Assertions):
    def test_an_explicit_query_token_opens_the_api_and_the_dev_token_does_not(self):
        token = new_token()
        with Service("--query-token", token) as service:
            self.assertEqual(get(service, "/v1/users?limit=1", token=token).status, 200)
            dev = service.data_dir / "dev-query-token"
            if dev.exists():
                self.assertEqual(get(service, "/v1/users?limit=1",
                                     token=dev.read_text().strip()).status, 401)
            self.assertEqual(get(service, "/v1/users?limit=1", token=new_token()).status, 401)

    def test_two_tokens_both_work_during_a_rotation(self):
        old, new = new_token(), new_token()
        token_file = Path(tempfile.mkdtemp(prefix="usersync-e2e-tokens-")) / "query-token"
        self.addCleanup(lambda: token_file.unlink(missing_ok=True) or token_file.parent.rmdir())
        token_file.write_text(f"{old}\n{new}\n")
        token_file.chmod(0o600)
        for args in (("--query-token", old, "--query-token", new),
                     ("--query-token", f"{old} {new}"),
                     ("--query-token-file", str(token_file))):
            with self.subTest(args=args[0]), Service(*args) as service:
                for token in (old, new):
                    self.assertEqual(get(service, "/v1/users?limit=1", token=token).status, 200)
                self.assertEqual(get(service, "/v1/users?limit=1", token=new_token()).status, 401)

    def test_sighup_rotates_the_tokens_in_the_token_file(self):
        old, new = new_token(), new_token()
        token_file = Path(tempfile.mkdtemp(prefix="usersync-e2e-tokens-")) / "query-token"
        self.addCleanup(lambda: token_file.unlink(missing_ok=True) or token_file.parent.rmdir())
        token_file.write_text(f"{old}\n")
        with Service("--query-token-file", str(token_file)) as service:
            self.assertEqual(get(service, "/v1/users?limit=1", token=new).status, 401)

            token_file.write_text(f"{old}\n{new}\n")
            service.proc.send_signal(signal.SIGHUP)
            self.wait_for_status(service, new, 200)
            self.assertEqual(get(service, "/v1/users?limit=1", token=old).status, 200)

            token_file.write_text(f"{new}\n")
            service.proc.send_signal(signal.SIGHUP)
            self.wait_for_status(service, old, 401)
            self.assertEqual(get(service, "/v1/users?limit=1", token=new).status, 200)

    def wait_for_status(self, service: Service, token: str, status: int) -> None:
        deadline = time.monotonic() + POLL_DEADLINE_S
        while True:
            got = get(service, "/v1/users?limit=1", token=token).status
            if got == status:
                return
            self.assertLess(time.monotonic(), deadline, f"still {got} after SIGHUP")
            time.sleep(0.05)

    def test_a_query_token_equal_to_the_webhook_secret_is_refused_at_start(self):
        secret = harness.new_secret()
        with self.assertRaises(harness.ServiceStartError) as refused:
            with Service("--query-token", secret, secrets=[secret]):
                pass
        self.assertIn("query-token", str(refused.exception))


# ----------------------------------------------------------------------------------------------
# Readers and the writer: an admin's sqlite3 connection next to the running service


class ReadsDoNotWaitForWrites(Assertions):
    def test_a_read_answers_while_another_connection_holds_the_write_lock(self):
        with Service("--busy-timeout-ms", "300") as service:
            clerk_id = new_user_id()
            self.assertOutcome(service.deliver(user_event("created", clerk_id)), "applied")
            expected = stored_user(service, clerk_id)
            pending = user_event("created", new_user_id())
            body = encode(pending)
            headers = signed_headers(body, service.secret)

            locker = sqlite3.connect(service.db_file, isolation_level=None, timeout=30)
            try:
                locker.execute("BEGIN IMMEDIATE")

                self.assertEqual(get_json(self, service, f"/v1/users/{clerk_id}"), expected)
                feed = get_json(self, service, feed_path(limit=10))
                self.assertEqual([e["clerk_id"] for e in feed["data"]], [clerk_id])
                self.assertEqual(get_json(self, service, f"/v1/users/{clerk_id}/data"),
                                 expected["data"])
                # The writer, meanwhile, gives up after the busy timeout.
                refused = service.https_request("POST", WEBHOOK, body, headers)
                self.assertEqual(refused.status, 503, str(refused))
                self.assertRegex(refused.headers.get("retry-after", ""), r"^\d+$")
                # And reads still answer after the writer gave up.
                self.assertEqual(get_json(self, service, f"/v1/users/{clerk_id}"), expected)
            finally:
                locker.execute("ROLLBACK")
                locker.close()

            self.assertOutcome(service.https_request("POST", WEBHOOK, body, headers), "applied")
            self.assertEqual(get_json(self, service, f"/v1/users/{pending['data']['id']}")
                             ["clerk_id"], pending["data"]["id"])


class WalAfterALongRead(Assertions):
    WAL_TARGET = 8 * MiB + MiB // 2
    MAX_BIG_EVENTS = 40

    @staticmethod
    def big_event() -> dict:
        # ~900 kB of incompressible metadata, under the 1 MiB body limit.
        return user_event("created", new_user_id(),
                          unsafe_metadata={"blob": os.urandom(450_000).hex()})

    def test_the_wal_shrinks_to_the_journal_size_limit_once_a_long_reader_ends(self):
        with Service() as service:
            wal = Path(f"{service.db_file}-wal")
            reader = sqlite3.connect(f"file:{service.db_file}?mode=ro", uri=True,
                                     isolation_level=None, timeout=30)
            try:
                reader.execute("BEGIN")
                snapshot = reader.execute("SELECT count(*) FROM users").fetchone()[0]
                sent = 0
                while file_size(wal) < self.WAL_TARGET:
                    self.assertLess(sent, self.MAX_BIG_EVENTS,
                                    f"the WAL is {file_size(wal)} bytes after {sent} events")
                    self.assertOutcome(service.deliver(self.big_event()), "applied")
                    sent += 1
                # The reader really held its snapshot throughout.
                self.assertEqual(reader.execute("SELECT count(*) FROM users").fetchone()[0],
                                 snapshot)
                grown = file_size(wal)
                reader.execute("COMMIT")
            finally:
                reader.close()

            largest_after = 0
            for _ in range(3):
                event = user_event("created", new_user_id())
                largest_after = max(largest_after, len(encode(event)))
                self.assertOutcome(service.deliver(event), "applied")
            # One small transaction: its body twice (clerk_json and the page images) plus the
            # index and data pages it touches, generously.
            bound = JOURNAL_SIZE_LIMIT + 2 * largest_after + 64 * 4096
            deadline = time.monotonic() + POLL_DEADLINE_S
            while file_size(wal) > bound and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertLessEqual(file_size(wal), bound,
                                 f"the WAL grew to {grown} bytes and stayed at {file_size(wal)}")
            self.assertEqual(service.query("SELECT count(*) FROM users")[0][0], sent + 3)


if __name__ == "__main__":
    harness.main()
