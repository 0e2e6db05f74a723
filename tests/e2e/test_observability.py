"""End-to-end rules for operating usersync: the Prometheus metrics and the readiness probe on
the admin listener, SIGTERM under load, SIGHUP reloading certificates, secrets and tokens,
and what the stderr log may and may not say.

Expected values come from independent sources: the Prometheus text format is parsed here by a
strict parser written from the exposition-format specification, counts come from the requests
this module sent, the user count from a separate sqlite3 connection, file sizes from os.stat,
certificates from the `openssl` command-line tool.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_observability.py build/usersync [-k PATTERN]
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import secrets as pysecrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import (WEBHOOK, Assertions, Response, Service, ServiceTestCase, encode,
                     load_fixture, new_msg_id, new_secret, new_user_id, secret_key,
                     signed_headers, user_event)

FIXTURE_EMAIL = load_fixture("clerk-user-created")["data"]["email_addresses"][0]["email_address"]
CREATED_UPDATED_AT = load_fixture("clerk-user-created")["data"]["updated_at"]


# --------------------------------------------------------------------------------------------
# A strict reader of the Prometheus text exposition format (version 0.0.4), written from the
# specification: https://prometheus.io/docs/instrumenting/exposition_formats/


METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# Go's strconv.ParseFloat as Prometheus uses it, without the forms Python alone accepts
# ("1_000", "infinity", " 1 ").
FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(AssertionError):
    pass


@dataclass
class Family:
    name: str
    help: str | None = None
    type: str | None = None
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _fail(lineno: int, line: str, problem: str) -> None:
    raise ExpositionError(f"/metrics line {lineno}: {problem}: {line!r}")


def _parse_float(text: str, lineno: int, line: str) -> float:
    if not FLOAT.match(text):
        _fail(lineno, line, f"{text!r} is not a Prometheus float")
    return float(text)


def _parse_labels(text: str, lineno: int, line: str) -> dict[str, str]:
    """`text` is what lies between the braces: name="value" pairs separated by commas, values
    with the escapes \\\\, \\" and \\n only."""
    labels: dict[str, str] = {}
    i = 0
    while i < len(text):
        eq = text.find("=", i)
        if eq < 0:
            _fail(lineno, line, "a label without '='")
        name = text[i:eq]
        if not LABEL_NAME.match(name) or name.startswith("__"):
            _fail(lineno, line, f"invalid label name {name!r}")
        if name in labels:
            _fail(lineno, line, f"label {name!r} given twice")
        if eq + 1 >= len(text) or text[eq + 1] != '"':
            _fail(lineno, line, f"label {name!r}: value not quoted")
        j = eq + 2
        value = []
        while True:
            if j >= len(text):
                _fail(lineno, line, f"label {name!r}: unterminated value")
            c = text[j]
            if c == "\\":
                nxt = text[j + 1:j + 2]
                if nxt not in ("\\", '"', "n"):
                    _fail(lineno, line, f"label {name!r}: invalid escape \\{nxt}")
                value.append("\n" if nxt == "n" else nxt)
                j += 2
            elif c == '"':
                j += 1
                break
            elif c == "\n":
                _fail(lineno, line, "raw newline in a label value")
            else:
                value.append(c)
                j += 1
        labels[name] = "".join(value)
        if j == len(text):
            break
        if text[j] != ",":
            _fail(lineno, line, f"expected ',' after label {name!r}")
        i = j + 1
        if i == len(text):
            break  # a trailing comma is allowed by the format
    return labels


def _split_sample(line: str, lineno: int) -> tuple[str, str, str]:
    """name, label text (without braces) and the rest (value [timestamp])."""
    m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
    if not m:
        _fail(lineno, line, "a sample line must start with a metric name")
    name = m.group(0)
    rest = line[m.end():]
    labels = ""
    if rest.startswith("{"):
        # Find the closing brace outside quoted values.
        i, quoted = 1, False
        while i < len(rest):
            c = rest[i]
            if quoted and c == "\\":
                i += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == "}" and not quoted:
                break
            i += 1
        else:
            _fail(lineno, line, "unterminated label set")
        labels, rest = rest[1:i], rest[i + 1:]
    if not rest.startswith(" "):
        _fail(lineno, line, "expected a space before the value")
    return name, labels, rest[1:]


def parse_exposition(text: str) -> dict[str, Family]:
    """Every metric family in `text`, or ExpositionError naming the first line that breaks the
    format: HELP and TYPE at most once each and before the family's samples, every family's
    samples together, valid names, labels and floats, no series twice, counters never negative,
    and histograms whose buckets are cumulative, increasing in `le`, end in +Inf and agree with
    _count. For this service also: every family has both HELP and TYPE."""
    if not text.endswith("\n"):
        raise ExpositionError("/metrics does not end with a line feed")
    families: dict[str, Family] = {}
    finished: set[str] = set()
    current: Family | None = None
    seen_series: set[tuple] = set()

    def switch_to(name: str, lineno: int, line: str) -> Family:
        nonlocal current
        if current is not None and current.name == name:
            return current
        if name in families:
            _fail(lineno, line, f"family {name} appears in two places")
        if current is not None:
            finished.add(current.name)
        current = families[name] = Family(name)
        return current

    for lineno, line in enumerate(text[:-1].split("\n"), start=1):
        if line == "":
            continue  # the format ignores empty lines
        if line.startswith("#"):
            m = re.match(r"# (HELP|TYPE) (\S+)(?: (.*))?\Z", line)
            if not m:
                if re.match(r"#\s*(HELP|TYPE)\b", line):
                    _fail(lineno, line, "malformed HELP or TYPE line")
                continue  # any other comment
            keyword, name, rest = m.group(1), m.group(2), m.group(3) or ""
            if not METRIC_NAME.match(name):
                _fail(lineno, line, f"invalid metric name {name!r}")
            family = switch_to(name, lineno, line)
            if keyword == "HELP":
                if family.help is not None:
                    _fail(lineno, line, "second HELP for the family")
                if re.search(r"\\(?![\\n])", rest):
                    _fail(lineno, line, "HELP may only escape \\\\ and \\n")
                family.help = rest
            else:
                if family.type is not None:
                    _fail(lineno, line, "second TYPE for the family")
                if family.samples:
                    _fail(lineno, line, "TYPE after the family's samples")
                if rest not in TYPES:
                    _fail(lineno, line, f"unknown type {rest!r}")
                family.type = rest
            continue
        name, label_text, rest = _split_sample(line, lineno)
        labels = _parse_labels(label_text, lineno, line)
        parts = rest.split(" ")
        if len(parts) not in (1, 2) or (len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1])):
            _fail(lineno, line, "expected `value [timestamp]` after the labels")
        value = _parse_float(parts[0], lineno, line)
        owner = name
        if current is not None and current.type == "histogram" and name in (
                current.name + "_bucket", current.name + "_sum", current.name + "_count"):
            owner = current.name
        elif current is not None and current.type == "summary" and name in (
                current.name, current.name + "_sum", current.name + "_count"):
            owner = current.name
        family = switch_to(owner, lineno, line)
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            _fail(lineno, line, "the same series twice")
        seen_series.add(key)
        if family.type == "counter" and not (value >= 0):
            _fail(lineno, line, "a counter must be a non-negative number")
        if name.endswith("_bucket") and family.type == "histogram" and "le" not in labels:
            _fail(lineno, line, "a histogram bucket without le")
        family.samples.append((name, labels, value))

    for family in families.values():
        if family.help is None or family.type is None:
            raise ExpositionError(f"family {family.name} lacks a HELP or TYPE line")
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    groups: dict[tuple, dict] = {}
    for name, labels, value in family.samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        group = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        where = f"histogram {family.name}{dict(rest)}"
        if name == family.name + "_bucket":
            le = labels["le"]
            if not FLOAT.match(le):
                raise ExpositionError(f"{where}: le={le!r} is not a float")
            group["buckets"].append((float(le), value))
        else:
            if "le" in labels:
                raise ExpositionError(f"{where}: {name} carries an le label")
            kind = "sum" if name.endswith("_sum") else "count"
            group[kind] = value
    for rest, group in groups.items():
        where = f"histogram {family.name}{dict(rest)}"
        buckets = group["buckets"]
        if not buckets:
            raise ExpositionError(f"{where}: no buckets")
        if group["sum"] is None or group["count"] is None:
            raise ExpositionError(f"{where}: _sum or _count missing")
        les = [le for le, _ in buckets]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ExpositionError(f"{where}: le values not strictly increasing: {les}")
        if les[-1] != math.inf:
            raise ExpositionError(f"{where}: the last bucket is not le=\"+Inf\"")
        counts = [c for _, c in buckets]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ExpositionError(f"{where}: buckets are not cumulative: {counts}")
        if any(c != int(c) or c < 0 for c in counts):
            raise ExpositionError(f"{where}: bucket counts must be non-negative integers")
        if counts[-1] != group["count"]:
            raise ExpositionError(
                f"{where}: +Inf bucket {counts[-1]} differs from _count {group['count']}")
        if not group["sum"] >= 0:
            raise ExpositionError(f"{where}: negative or NaN _sum for durations")


class ExpositionParserSelfTest(Assertions):
    """The parser must refuse what Prometheus refuses, or the tests below prove nothing."""

    GOOD = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="1",y="q\\"\\\\\\n"} 3\n'
            '# HELP h H.\n# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\n'
            'h_sum 0.7\nh_count 2\n')

    def test_a_well_formed_exposition_parses(self):
        families = parse_exposition(self.GOOD)
        self.assertEqual(families["a_total"].samples,
                         [("a_total", {"x": "1", "y": 'q"\\\n'}, 3.0)])

    def test_malformed_expositions_are_refused(self):
        bad = {
            "no final newline": self.GOOD[:-1],
            "count differs from +Inf": self.GOOD.replace("h_count 2", "h_count 3"),
            "not cumulative": self.GOOD.replace('h_bucket{le="0.5"} 1', 'h_bucket{le="0.5"} 3'),
            "no +Inf": self.GOOD.replace('h_bucket{le="+Inf"} 2\n', ""),
            "bad value": self.GOOD.replace("a_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3",
                                           'a_total{x="1"} 3x'),
            "bad escape": self.GOOD.replace('y="q\\"', 'y="q\\t'),
            "TYPE twice": self.GOOD.replace("# TYPE h histogram\n",
                                            "# TYPE h histogram\n# TYPE h histogram\n"),
            "split family": self.GOOD + 'a_total{x="2"} 1\n',
            "duplicate series": self.GOOD + "h_count 2\n",
            "sample before TYPE": "# HELP c C.\nc 1\n# TYPE c counter\n",
            "negative counter": self.GOOD.replace("} 3\n", "} -3\n"),
            "no TYPE": self.GOOD + "b 1\n",
            "unquoted label": self.GOOD.replace('x="1"', "x=1"),
        }
        for name, text in bad.items():
            with self.subTest(name):
                with self.assertRaises(ExpositionError):
                    parse_exposition(text)


# --------------------------------------------------------------------------------------------
# Helpers


def http_get(host: str, port: int, path: str, headers: dict | None = None) -> Response:
    conn = http.client.HTTPConnection(host, port, timeout=harness.REQUEST_TIMEOUT_S)
    try:
        conn.request("GET", path, headers=headers or {})
        return harness._read(conn)
    finally:
        conn.close()


def admin_get(service: Service, path: str) -> Response:
    return http_get("127.0.0.1", service.admin_port, path)


class Scrape:
    """One GET /metrics, parsed strictly."""

    def __init__(self, response: Response):
        if response.status != 200:
            raise AssertionError(f"GET /metrics: {response}")
        self.response = response
        self.families = parse_exposition(response.body.decode("utf-8"))

    def series(self, name: str) -> dict[tuple, float]:
        """Every sample named `name` (a family, or NAME_bucket/_sum/_count), keyed by its
        sorted label pairs."""
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in self.families \
                    and self.families[name[:-len(suffix)]].type == "histogram":
                family = name[:-len(suffix)]
        if family not in self.families:
            return {}
        return {tuple(sorted(labels.items())): value
                for sample, labels, value in self.families[family].samples if sample == name}

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist yet (a counter not yet
        incremented)."""
        return self.series(name).get(tuple(sorted(labels.items())), 0.0)


def scrape(service: Service) -> Scrape:
    return Scrape(admin_get(service, "/metrics"))


def delta(before: Scrape, after: Scrape, name: str) -> dict[tuple, float]:
    """The series of `name` whose value changed, with the change."""
    old, new = before.series(name), after.series(name)
    changes = {k: new.get(k, 0.0) - old.get(k, 0.0) for k in set(old) | set(new)}
    return {k: v for k, v in changes.items() if v != 0}


def session_event() -> dict:
    """A Clerk event type usersync does not act on."""
    return {"object": "event", "type": "session.created", "timestamp": 1735689600160,
            "data": {"id": "sess_e2e" + uuid.uuid4().hex, "object": "session",
                     "status": "active", "user_id": new_user_id()}}


MALFORMED_BODY = b'{"type": "user.created", "data": {'


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_for_log(service: Service, pattern: str, count: int = 1,
                 limit: float = harness.STARTUP_TIMEOUT_S) -> str:
    """Waits until `pattern` (a regex) occurs `count` times in the service's stderr; returns
    the stderr. `limit` bounds a hang only."""
    deadline = time.monotonic() + limit
    while True:
        text = service.stderr()
        if len(re.findall(pattern, text)) >= count:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} did not appear {count} time(s) in the log:\n"
                                 f"{text[-3000:]}")
        time.sleep(0.02)


def send_and_wait_for_close(host: str, port: int, payload: bytes) -> None:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(payload)
        harness.wait_for_close(sock)


# --------------------------------------------------------------------------------------------
# /metrics


class Metrics(ServiceTestCase, Assertions):
    """One service for the metric rules; each test compares scrapes taken before and after
    its own requests, so the tests do not depend on each other's traffic. Nothing here calls
    /readyz, whose probe is a write transaction (see ReadinessProbe)."""

    def test_metrics_is_valid_prometheus_text_with_the_documented_families(self):
        self.assertOutcome(self.service.deliver(user_event("created", new_user_id())), "applied")
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)

        response = admin_get(self.service, "/metrics")

        self.assertEqual(response.status, 200, str(response))
        self.assertRegex(response.headers.get("content-type", ""),
                         r"^text/plain; version=0\.0\.4(; charset=utf-8)?$")
        families = Scrape(response).families
        expected = {
            "usersync_webhook_deliveries_total": "counter",
            "usersync_http_requests_total": "counter",
            "usersync_http_request_duration_seconds": "histogram",
            "usersync_commit_duration_seconds": "histogram",
            "usersync_tls_handshake_failures_total": "counter",
            "usersync_writer_commits_total": "counter",
            "usersync_writer_deliveries_committed_total": "counter",
            "usersync_users": "gauge",
            "usersync_database_size_bytes": "gauge",
            "usersync_wal_size_bytes": "gauge",
            "process_resident_memory_bytes": "gauge",
        }
        for name, kind in expected.items():
            with self.subTest(family=name):
                self.assertIn(name, families)
                self.assertEqual(families[name].type, kind)
                self.assertTrue(families[name].samples, "no samples")

    def test_each_delivery_is_counted_once_by_type_and_outcome(self):
        applied = 3
        before = scrape(self.service)
        ids = [new_user_id() for _ in range(applied)]
        first_msg = new_msg_id()
        self.assertOutcome(self.service.deliver(user_event("created", ids[0]), first_msg),
                           "applied")
        for clerk_id in ids[1:]:
            self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        self.assertOutcome(self.service.deliver(user_event("created", ids[0]), first_msg),
                           "duplicate")
        older = user_event("updated", ids[1], updated_at=CREATED_UPDATED_AT - 1000)
        self.assertOutcome(self.service.deliver(older), "stale")
        self.assertOutcome(self.service.deliver(session_event()), "ignored")
        self.assertRefused(self.service.deliver(MALFORMED_BODY), 400, "malformed_event")
        self.assertRefused(self.service.deliver(user_event("created", new_user_id()),
                                                secret=new_secret()), 401)
        after = scrape(self.service)

        key = lambda t, o: (("outcome", o), ("type", t))  # noqa: E731
        self.assertEqual(delta(before, after, "usersync_webhook_deliveries_total"), {
            key("user.created", "applied"): applied,
            key("user.created", "duplicate"): 1,
            key("user.updated", "stale"): 1,
            key("session.created", "ignored"): 1,
            key("unknown", "rejected"): 1,
            key("unknown", "unauthorized"): 1,
        })
        requests = {k: v for k, v in delta(before, after, "usersync_http_requests_total").items()
                    if ("handler", "webhook") in k}
        self.assertEqual(requests, {
            (("code", "200"), ("handler", "webhook")): applied + 3,
            (("code", "400"), ("handler", "webhook")): 1,
            (("code", "401"), ("handler", "webhook")): 1,
        })
        latency = "usersync_http_request_duration_seconds"
        sent = applied + 5
        self.assertEqual(after.value(f"{latency}_count", handler="webhook")
                         - before.value(f"{latency}_count", handler="webhook"), sent)
        self.assertEqual(after.value(f"{latency}_bucket", handler="webhook", le="+Inf")
                         - before.value(f"{latency}_bucket", handler="webhook", le="+Inf"), sent)
        self.assertGreater(after.value(f"{latency}_sum", handler="webhook"),
                           before.value(f"{latency}_sum", handler="webhook"))

        # Everything that reached the writer (all but the 401) was committed: applied,
        # duplicate, stale and ignored deliveries, and the malformed one's rejection record.
        committed = (after.value("usersync_writer_deliveries_committed_total")
                     - before.value("usersync_writer_deliveries_committed_total"))
        commits = (after.value("usersync_writer_commits_total")
                   - before.value("usersync_writer_commits_total"))
        self.assertEqual(committed, applied + 4)
        self.assertGreaterEqual(commits, 1)
        self.assertLessEqual(commits, committed, "fewer than one delivery per commit")
        self.assertEqual(after.value("usersync_commit_duration_seconds_count")
                         - before.value("usersync_commit_duration_seconds_count"), commits)
        # Over the service's whole life too: group commit means >= 1 delivery per commit.
        self.assertGreaterEqual(after.value("usersync_writer_deliveries_committed_total"),
                                after.value("usersync_writer_commits_total"))

    def test_the_users_gauge_matches_count_star_in_the_database(self):
        ids = [new_user_id() for _ in range(4)]
        for clerk_id in ids:
            self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        self.assertOutcome(self.service.deliver(user_event("deleted", ids[0])), "applied")

        gauge = scrape(self.service).value("usersync_users")

        (count,), = self.service.query("SELECT count(*) FROM users")
        self.assertEqual(gauge, count)
        self.assertGreaterEqual(count, 3)

    def test_the_file_size_gauges_match_the_files_after_a_quiet_moment(self):
        for _ in range(5):
            self.assertOutcome(self.service.deliver(user_event("created", new_user_id())),
                               "applied")
        db = self.service.db_file
        wal = Path(f"{db}-wal")
        # The sizes are compared only when they were the same just before and just after the
        # scrape, so a write (or checkpoint) in between cannot make the test flaky.
        for _ in range(100):
            sizes_before = (file_size(db), file_size(wal))
            metrics = scrape(self.service)
            sizes_after = (file_size(db), file_size(wal))
            if sizes_before == sizes_after:
                break
            time.sleep(0.1)
        else:
            self.fail("the database files never stayed the same size across a scrape")
        self.assertEqual(metrics.value("usersync_database_size_bytes"), sizes_before[0])
        self.assertEqual(metrics.value("usersync_wal_size_bytes"), sizes_before[1])
        self.assertGreater(sizes_before[0], 0)
        self.assertGreater(sizes_before[1], 0, "WAL mode: the WAL exists while serving")

    def test_process_gauges_describe_this_process(self):
        metrics = scrape(self.service)
        rss = metrics.value("process_resident_memory_bytes")
        self.assertGreater(rss, 0)
        status = Path(f"/proc/{self.service.pid}/status").read_text()
        vm_rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024
        self.assertLess(abs(rss - vm_rss), max(rss, vm_rss) / 2,
                        f"metric {rss} vs /proc VmRSS {vm_rss}")
        started = metrics.value("process_start_time_seconds")
        self.assertLessEqual(started, time.time())
        self.assertGreater(started, time.time() - 3600)

    def test_garbage_on_the_tls_port_counts_as_a_failed_handshake(self):
        before = scrape(self.service).value("usersync_tls_handshake_failures_total")

        port = self.service.port
        send_and_wait_for_close("127.0.0.1", port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        send_and_wait_for_close("127.0.0.1", port, b"\xff" * 72)

        after = scrape(self.service).value("usersync_tls_handshake_failures_total")
        self.assertEqual(after - before, 2)
        # A good handshake is not a failure.
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)
        self.assertEqual(scrape(self.service).value("usersync_tls_handshake_failures_total"), after)

    def test_admin_endpoints_are_not_served_on_the_public_listener(self):
        for path in ("/metrics", "/readyz"):
            with self.subTest(path=path):
                response = self.service.https_request("GET", path)
                self.assertRefused(response, 404)
                self.assertNotIn(b"usersync_", response.body)
        self.assertEqual(admin_get(self.service, "/healthz").status, 200)
        self.assertEqual(admin_get(self.service, "/healthz").json(), {"status": "ok"})

    def test_the_admin_listener_serves_no_webhooks_or_queries(self):
        self.assertEqual(admin_get(self.service, "/v1/users").status, 404)
        conn = http.client.HTTPConnection("127.0.0.1", self.service.admin_port, timeout=30)
        try:
            body = encode(user_event("created", new_user_id()))
            headers = signed_headers(body, self.service.secret)
            self.service.note_sent(headers)
            conn.request("POST", WEBHOOK, body=body, headers=headers)
            self.assertEqual(harness._read(conn).status, 404)
        finally:
            conn.close()


class RequestsRefusedBeforeRouting(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--max-body-bytes", "1024")

    def test_an_oversized_webhook_is_counted_and_logged_under_the_webhook_handler(self):
        # A sender whose deliveries are all too large must show up where an operator looks
        # for webhook trouble: the webhook handler's request counter and a log line naming
        # the endpoint.
        before = scrape(self.service)

        response = self.service.https_request("POST", WEBHOOK, b"x" * 4096,
                                              {"content-type": "application/json"})

        self.assertRefused(response, 413)
        after = scrape(self.service)
        self.assertEqual(after.value("usersync_http_requests_total", handler="webhook", code="413")
                         - before.value("usersync_http_requests_total", handler="webhook",
                                        code="413"), 1,
                         f"413 counted as {delta(before, after, 'usersync_http_requests_total')}")
        self.assertRegex(self.service.stderr(), r"POST /webhooks/clerk 413 ")


class AdminListenerDisabled(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--admin-listen", "none")

    def test_metrics_and_readyz_are_served_on_the_main_listener(self):
        self.assertNotRegex(self.service.stderr(), r"admin endpoints on")
        self.assertOutcome(self.service.deliver(user_event("created", new_user_id())), "applied")

        metrics = self.service.https_request("GET", "/metrics")
        ready = self.service.https_request("GET", "/readyz")

        families = Scrape(metrics).families
        self.assertIn("usersync_webhook_deliveries_total", families)
        self.assertEqual(ready.status, 200, str(ready))
        self.assertEqual(ready.json(), {"status": "ready"})
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)


# --------------------------------------------------------------------------------------------
# /readyz


class ReadinessProbe(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--busy-timeout-ms", "200")

    def test_readyz_answers_200_ready(self):
        response = admin_get(self.service, "/readyz")
        self.assertEqual(response.status, 200, str(response))
        self.assertEqual(response.headers.get("content-type"), "application/json")
        self.assertEqual(response.json(), {"status": "ready"})

    def test_readyz_answers_503_with_a_reason_while_the_database_is_locked(self):
        locker = sqlite3.connect(self.service.db_file, isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN IMMEDIATE")

            response = admin_get(self.service, "/readyz")

            self.assertRefused(response, 503, "not_ready")
            reason = response.json().get("message")
            self.assertIsInstance(reason, str)
            self.assertRegex(reason, r"(?i)database|lock|busy")
            self.assertRegex(response.headers.get("retry-after", ""), r"^\d+$")
            locker.execute("ROLLBACK")
        finally:
            locker.close()

        response = admin_get(self.service, "/readyz")
        self.assertEqual(response.status, 200, str(response))
        self.assertEqual(response.json(), {"status": "ready"})

    def test_readiness_probes_do_not_count_as_delivery_commits(self):
        # A probe every few seconds (a kubelet's) must not turn "deliveries per commit" into
        # a number below one, nor fill the commit-latency histogram with probes.
        before = scrape(self.service)
        self.assertOutcome(self.service.deliver(user_event("created", new_user_id())), "applied")
        for _ in range(5):
            self.assertEqual(admin_get(self.service, "/readyz").status, 200)
        after = scrape(self.service)

        commits = (after.value("usersync_writer_commits_total")
                   - before.value("usersync_writer_commits_total"))
        committed = (after.value("usersync_writer_deliveries_committed_total")
                     - before.value("usersync_writer_deliveries_committed_total"))
        self.assertEqual(committed, 1)
        self.assertLessEqual(commits, committed,
                             f"{commits:g} commits for {committed:g} delivery: /readyz probes "
                             "are counted in usersync_writer_commits_total")


# --------------------------------------------------------------------------------------------
# SIGTERM under load


class SigtermUnderLoad(Assertions):
    THREADS = 6

    def test_sigterm_under_load_loses_no_acknowledged_event_and_exits_0(self):
        # Group commit with a wait, so deliveries are queued in the writer when the signal lands.
        with Service("--shutdown-timeout", "30", "--writer-batch-wait-us", "3000") as service:
            secret = service.secret
            acknowledged: list[str] = []
            answers: dict[object, int] = {}
            lock = threading.Lock()
            stop = threading.Event()

            def send_continuously() -> None:
                conn = service.connection(timeout=30)
                try:
                    while not stop.is_set():
                        clerk_id = new_user_id()
                        body = encode(user_event("created", clerk_id))
                        headers = signed_headers(body, secret)
                        service.note_sent(headers)
                        try:
                            conn.request("POST", WEBHOOK, body=body, headers=headers)
                            response = harness._read(conn)
                        except (OSError, http.client.HTTPException) as e:
                            conn.close()  # the next request opens a new connection
                            with lock:
                                answers[type(e).__name__] = answers.get(type(e).__name__, 0) + 1
                            time.sleep(0.005)
                            continue
                        with lock:
                            answers[response.status] = answers.get(response.status, 0) + 1
                            if 200 <= response.status < 300:
                                acknowledged.append(clerk_id)
                finally:
                    conn.close()

            threads = [threading.Thread(target=send_continuously) for _ in range(self.THREADS)]
            for t in threads:
                t.start()
            try:
                deadline = time.monotonic() + 60
                while len(acknowledged) < 100 and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.assertGreaterEqual(len(acknowledged), 100, f"load never got going: {answers}")
                at_signal = len(acknowledged)
                service.proc.send_signal(signal.SIGTERM)
                try:
                    code = service.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.fail("usersync was still running 60 s after SIGTERM under load")
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
            service.proc = None

            self.assertEqual(code, 0, service.stderr()[-3000:])
            self.assertRegex(service.stderr(), r"stopped cleanly")
            self.assertNotRegex(service.stderr(), r"\b(error|critical)\b")
            service.assert_no_secrets_logged()
            conn = harness.open_db_readonly(service.db_file)
            try:
                stored = {row[0] for row in conn.execute("SELECT clerk_id FROM users")}
                (integrity,), = conn.execute("PRAGMA integrity_check").fetchall()
            finally:
                conn.close()
            self.assertEqual(integrity, "ok")
            lost = [c for c in acknowledged if c not in stored]
            self.assertEqual(lost, [], f"{len(lost)} of {len(acknowledged)} acknowledged "
                                       f"events are missing; answers: {answers}")
            self.assertGreaterEqual(len(acknowledged), at_signal)


# --------------------------------------------------------------------------------------------
# SIGHUP


def make_certificate(directory: Path, name: str, serial: int) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 made by the openssl CLI."""
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN=usersync e2e {name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-set_serial", str(serial)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def der_of(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def serial_of(der: bytes) -> int:
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
                         input=der, capture_output=True, check=True, timeout=60).stdout
    return int(out.decode().strip().split("=", 1)[1], 16)


def replace_file(target: Path, content: bytes) -> None:
    tmp = target.with_name(target.name + ".new")
    tmp.write_bytes(content)
    os.replace(tmp, target)


class Reload(Assertions):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="usersync-e2e-reload-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def served_certificate(self, service: Service, context: ssl.SSLContext) -> bytes:
        with socket.create_connection(("127.0.0.1", service.port), timeout=30) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.getpeercert(binary_form=True)

    def test_sighup_serves_a_new_certificate_to_new_connections_and_keeps_old_ones(self):
        a_cert, a_key = make_certificate(self.dir, "a", 1001)
        b_cert, b_key = make_certificate(self.dir, "b", 2002)
        c_cert, _ = make_certificate(self.dir, "c", 3003)
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        shutil.copy(a_cert, cert)
        shutil.copy(a_key, key)
        context = ssl.create_default_context(
            cadata=a_cert.read_text() + b_cert.read_text() + c_cert.read_text())

        with Service("--tls-cert", str(cert), "--tls-key", str(key)) as service:
            service._ssl = context  # the harness's client trusts the dev certificate otherwise
            self.assertEqual(serial_of(self.served_certificate(service, context)), 1001)
            kept = http.client.HTTPSConnection("127.0.0.1", service.port, timeout=30,
                                               context=context)
            self.addCleanup(kept.close)
            kept.request("GET", "/healthz")
            self.assertEqual(harness._read(kept).status, 200)
            kept_socket = kept.sock
            self.assertEqual(kept_socket.getpeercert(binary_form=True), der_of(a_cert))

            # A new certificate: new connections get it, the kept-alive one carries on.
            replace_file(key, b_key.read_bytes())
            replace_file(cert, b_cert.read_bytes())
            service.proc.send_signal(signal.SIGHUP)
            wait_for_log(service, r"TLS certificate reloaded")

            self.assertEqual(self.served_certificate(service, context), der_of(b_cert))
            self.assertEqual(serial_of(self.served_certificate(service, context)), 2002)
            kept.request("GET", "/healthz")
            self.assertEqual(harness._read(kept).status, 200)
            self.assertIs(kept.sock, kept_socket, "the kept-alive connection was reopened")
            self.assertOutcome(service.deliver(user_event("created", new_user_id())), "applied")

            # A garbage certificate file: the current certificate stays, the log says why.
            replace_file(cert, b"this is not a PEM certificate\n")
            service.proc.send_signal(signal.SIGHUP)
            log = wait_for_log(service, r"TLS certificate not reloaded")
            line = re.search(r".*TLS certificate not reloaded.*", log).group(0)
            self.assertIn(str(cert), line)
            self.assertRegex(line, r"keeping the current one")
            self.assertEqual(self.served_certificate(service, context), der_of(b_cert))

            # A certificate whose key is not in the key file: refused the same way.
            replace_file(cert, c_cert.read_bytes())
            service.proc.send_signal(signal.SIGHUP)
            log = wait_for_log(service, r"TLS certificate not reloaded", count=2)
            line = re.findall(r".*TLS certificate not reloaded.*", log)[1]
            self.assertRegex(line, r"does not match|key")
            self.assertEqual(self.served_certificate(service, context), der_of(b_cert))
            kept.request("GET", "/healthz")
            self.assertEqual(harness._read(kept).status, 200)
            self.assertOutcome(service.deliver(user_event("created", new_user_id())), "applied")

    def test_sighup_reloads_the_webhook_secret_file_for_a_rotation(self):
        old, new = new_secret(), new_secret()
        secret_file = self.dir / "webhook-secret"
        secret_file.write_text(old + "\n")
        with Service("--webhook-secret-file", str(secret_file)) as service:
            service.secrets.extend([old, new])  # for the harness's no-secret-in-the-log check
            self.assertOutcome(service.deliver(user_event("created", new_user_id()), secret=old),
                               "applied")
            self.assertRefused(service.deliver(user_event("created", new_user_id()), secret=new),
                               401, "no_matching_signature")

            # Rotation: both listed.
            replace_file(secret_file, f"{old}\n{new}\n".encode())
            service.proc.send_signal(signal.SIGHUP)
            wait_for_log(service, r"webhook secrets reloaded")
            self.assertOutcome(service.deliver(user_event("created", new_user_id()), secret=new),
                               "applied")
            self.assertOutcome(service.deliver(user_event("created", new_user_id()), secret=old),
                               "applied")

            # Rotation finished: the old one is no longer listed.
            replace_file(secret_file, f"{new}\n".encode())
            service.proc.send_signal(signal.SIGHUP)
            wait_for_log(service, r"webhook secrets reloaded", count=2)
            self.assertRefused(service.deliver(user_event("created", new_user_id()), secret=old),
                               401, "no_matching_signature")
            self.assertOutcome(service.deliver(user_event("created", new_user_id()), secret=new),
                               "applied")

            # A broken file changes nothing and says so.
            replace_file(secret_file, b"whsec_%%%not-base64%%%\n")
            service.proc.send_signal(signal.SIGHUP)
            log = wait_for_log(service, r"reload failed|not reloaded")
            self.assertRegex(log, r"keeping the current")
            self.assertNotIn("%%%not-base64%%%", log)
            self.assertOutcome(service.deliver(user_event("created", new_user_id()), secret=new),
                               "applied")

    def test_sighup_reloads_the_query_token_file(self):
        first, second = pysecrets.token_hex(24), pysecrets.token_hex(24)
        token_file = self.dir / "query-tokens"
        token_file.write_text(first + "\n")
        with Service("--query-token-file", str(token_file)) as service:
            service.secrets.extend([first, second])
            def status_with(token: str) -> int:
                return service.https_request("GET", "/v1/users",
                                             headers={"Authorization": f"Bearer {token}"}).status

            self.assertEqual(status_with(first), 200)
            self.assertEqual(status_with(second), 401)

            replace_file(token_file, f"{first}\n{second}\n".encode())
            service.proc.send_signal(signal.SIGHUP)
            wait_for_log(service, r"query tokens reloaded")

            self.assertEqual(status_with(second), 200)
            self.assertEqual(status_with(first), 200)


# --------------------------------------------------------------------------------------------
# What the log says


class LogSecrecy(Assertions):
    """Logs are for operators: one line per request, never a payload, secret, signature or
    token, in either format."""

    def exercise(self, log_format: str) -> tuple[str, list[str]]:
        """Runs a service with `log_format`, sends accepted and refused requests carrying
        credentials and personal data, stops it; returns its stderr and the strings that must
        not appear in it."""
        secret = new_secret()
        token, wrong_token = pysecrets.token_hex(24), pysecrets.token_hex(24)
        tmp = Path(tempfile.mkdtemp(prefix="usersync-e2e-logs-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        token_file = tmp / "tokens"
        token_file.write_text(token + "\n")
        marker = "Obsmarker" + uuid.uuid4().hex[:12]
        marker_email = f"{marker.lower()}@example.com"
        clerk_id = new_user_id()
        event = user_event("created", clerk_id, first_name=marker)
        event["data"]["email_addresses"][0]["email_address"] = marker_email
        body = encode(event)
        signatures: list[str] = []

        with Service("--log-format", log_format, "--query-token-file", str(token_file),
                     secrets=[secret]) as service:
            def post(headers: dict, payload: bytes = body) -> Response:
                for name in ("svix-signature", "webhook-signature"):
                    if name in headers:
                        signatures.extend(s.split(",", 1)[1] for s in headers[name].split())
                return service.https_request("POST", WEBHOOK, payload, headers)

            self.assertOutcome(post(signed_headers(body, secret)), "applied")
            # Refused: signed with another secret; correctly signed but too old; several
            # signatures; a correct signature over another body; credentials in Authorization.
            self.assertRefused(post(signed_headers(body, new_secret())), 401)
            self.assertRefused(post(signed_headers(body, secret,
                                                   timestamp=int(time.time()) - 3600)), 401)
            several = signed_headers(body, new_secret())
            another = signed_headers(body, new_secret(), several["svix-id"],
                                     several["svix-timestamp"])
            several["svix-signature"] += " " + another["svix-signature"]
            self.assertRefused(post(several), 401)
            other = signed_headers(b"{}", secret)
            other["authorization"] = f"Bearer {wrong_token}"
            self.assertRefused(post(other), 401)
            # Signed but undecodable, with personal data in it.
            malformed = b'{"type": "user.created", "data": {"email": "' + marker_email.encode()
            self.assertRefused(post(signed_headers(malformed, secret), malformed), 400)
            # The query API with a wrong and a right token, personal data in the query string.
            self.assertEqual(service.https_request(
                "GET", f"/v1/users/{clerk_id}", headers={"Authorization": f"Bearer {wrong_token}"}
            ).status, 401)
            self.assertEqual(service.https_request(
                "GET", f"/v1/users?email={marker_email}",
                headers={"Authorization": f"Bearer {token}"}).status, 200)
            self.assertEqual(service.https_request(
                "GET", f"/v1/users/{clerk_id}", headers={"Authorization": f"Bearer {token}"}
            ).status, 200)
            service.stop()  # also asserts, independently, that no secret or signature was logged
            log = service.stderr()

        forbidden = [secret, secret[len("whsec_"):], token, wrong_token, FIXTURE_EMAIL,
                     marker, marker.lower(), marker_email, *signatures]
        return log, forbidden

    def test_the_log_holds_no_secret_signature_token_or_payload(self):
        for log_format in ("text", "json"):
            with self.subTest(log_format=log_format):
                log, forbidden = self.exercise(log_format)
                # The log did record the requests: this is not an empty log passing by default.
                self.assertGreaterEqual(len(re.findall(r"/webhooks/clerk", log)), 6, log)
                self.assertRegex(log, r"401")
                for needle in forbidden:
                    self.assertNotIn(needle, log, f"{needle!r} appears in the {log_format} log")
                # And no shorter fragment of a secret key either (its raw or base64 form).
                key = secret_key(forbidden[0])
                self.assertNotIn(key.hex(), log)


class JsonLogFormat(Assertions):
    TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

    def json_lines(self, service: Service) -> list[dict]:
        raw = b"".join(p.read_bytes() for p in service.logs if p.exists())
        self.assertTrue(raw.endswith(b"\n"), "the log does not end with a line feed")
        objects = []
        for n, line in enumerate(raw.split(b"\n")[:-1], start=1):
            try:
                text = line.decode("utf-8")  # JSON text is UTF-8 (RFC 8259 section 8.1)
                obj = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                self.fail(f"stderr line {n} is not a JSON object in UTF-8 ({e}): {line[:300]!r}")
            self.assertIsInstance(obj, dict, f"line {n}")
            for key in ("time", "level", "msg"):
                self.assertIn(key, obj, f"line {n}: {text}")
            self.assertRegex(obj["time"], self.TIME)
            self.assertIn(obj["level"], ("trace", "debug", "info", "warning", "warn", "error",
                                         "critical"))
            self.assertIsInstance(obj["msg"], str)
            objects.append(obj)
        return objects

    def test_every_line_is_a_json_object_and_request_lines_carry_their_fields(self):
        with Service("--log-format", "json") as service:
            applied_id, unsigned_id, malformed_id, ignored_id = (new_msg_id() for _ in range(4))
            self.assertOutcome(service.deliver(user_event("created", new_user_id()), applied_id),
                               "applied")
            self.assertOutcome(service.deliver(session_event(), ignored_id), "ignored")
            self.assertRefused(service.deliver(user_event("created", new_user_id()), unsigned_id,
                                               secret=new_secret()), 401)
            self.assertRefused(service.deliver(MALFORMED_BODY, malformed_id), 400)
            self.assertEqual(service.https_request("GET", "/healthz?probe=1").status, 200)
            self.assertEqual(service.https_request("GET", "/nowhere").status, 404)
            self.assertEqual(admin_get(service, "/metrics").status, 200)
            service.stop()

            objects = self.json_lines(service)
            requests = [o for o in objects if o["msg"] == "request"]
            self.assertTrue(any(o["msg"] != "request" for o in objects), "no start-up lines")
            for o in requests:
                for key, kind in (("method", str), ("path", str), ("status", int)):
                    self.assertIsInstance(o.get(key), kind, f"{key} in {o}")
                self.assertIsInstance(o.get("ms"), (int, float), f"ms in {o}")
                self.assertGreaterEqual(o["ms"], 0)
                self.assertEqual(o["level"], "info")
            by_id = {o.get("svix_id"): o for o in requests if o["path"] == WEBHOOK}
            expectations = {
                applied_id: (200, "user.created", "applied"),
                ignored_id: (200, "session.created", "ignored"),
                unsigned_id: (401, None, r"unauthorized"),
                malformed_id: (400, None, r"malformed"),
            }
            for svix_id, (status, event_type, outcome) in expectations.items():
                with self.subTest(status=status, outcome=outcome):
                    self.assertIn(svix_id, by_id, f"no request line for {svix_id}")
                    line = by_id[svix_id]
                    self.assertEqual((line["method"], line["status"]), ("POST", status))
                    self.assertRegex(line.get("outcome", ""), outcome)
                    if event_type is not None:
                        self.assertEqual(line.get("type"), event_type)
            paths = [(o["method"], o["path"], o["status"]) for o in requests]
            self.assertIn(("GET", "/healthz", 200), paths, "the query string must not be logged")
            self.assertIn(("GET", "/nowhere", 404), paths)
            self.assertIn(("GET", "/metrics", 200), paths)

    def test_hostile_header_values_still_make_valid_json_lines(self):
        # The svix-id of a refused request is the sender's unverified claim, and it is logged:
        # quotes, backslashes, tabs and bytes that are not UTF-8 must not break the line, and
        # cutting a long id short must not split a UTF-8 character.
        cases = {
            "quotes and backslashes": b'h1-q"uo\\te',
            "a tab": b"h2-tab\there",
            "UTF-8": "h3-caf\u00e9".encode("utf-8"),
            "bytes that are not UTF-8": b"h4-bad\xff\xfe",
            "a 2-byte character across the 64-byte cut": b"h5-" + b"x" * 60 + "\u00e9".encode(),
        }
        with Service("--log-format", "json") as service:
            for raw_id in cases.values():
                body = encode(user_event("created", new_user_id()))
                headers = signed_headers(body, new_secret(), msg_id="placeholder")
                headers["svix-id"] = raw_id.decode("latin-1")  # http.client sends latin-1: raw_id
                response = service.https_request("POST", WEBHOOK, body, headers)
                self.assertRefused(response, 401)
            service.stop()
            raw_log = b"".join(p.read_bytes() for p in service.logs if p.exists())

        lines = raw_log.split(b"\n")
        for name, raw_id in cases.items():
            with self.subTest(name):
                found = [line for line in lines if raw_id[:3] in line and b"request" in line]
                self.assertEqual(len(found), 1, f"no request line for {raw_id!r}")
                try:
                    obj = json.loads(found[0].decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    self.fail(f"not a JSON line in UTF-8 ({e}): {found[0][:200]!r}")
                self.assertIsInstance(obj, dict)
                # Bytes that are not UTF-8 are logged as U+FFFD; a long id is cut at a
                # character boundary, never inside one.
                logged = obj.get("svix_id", "")
                sent = raw_id.decode("utf-8", "replace")
                self.assertTrue(sent.startswith(logged) and len(logged) >= 3,
                                f"logged svix_id {logged!r} is not a prefix of {sent!r}")

if __name__ == "__main__":
    harness.main()
