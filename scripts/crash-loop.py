#!/usr/bin/env python3
"""Crash-consistency loop: SIGKILL the real `usersync serve` at random moments under load and
prove that nothing it acknowledged is ever lost.

Each iteration restarts `serve` on the same data directory (alternately over TLS and plain HTTP),
lets several threads drive signed Clerk events at it (creates, updates with increasing
updated_at, deletes; many users; unique svix-ids; every unanswered event retried as Svix would),
and kills it with SIGKILL after a random time; now and then a kill lands while the service is
still starting, and now and then `usersync backup` runs concurrently and is killed too. After
every kill, on a copy of the files exactly as the kill left them (opened by Python's sqlite3,
not by usersync):

  * PRAGMA integrity_check is ok and foreign_key_check finds nothing;
  * every event answered 2xx is in webhook_deliveries, and each user is in the state of its last
    acknowledged event, or of the one event still unanswered when the kill came (a user row with
    that updated_at and name, plus its user_data, or the tombstone of an acknowledged delete);
  * nothing is stored that was never sent.

After each restart the data directory holds nothing but what the service keeps there; before
it, the backups directory holds only complete backups that `usersync backup verify` accepts
(the temporaries of a killed backup may stay only until the next backup). Some restarts run
serve's own backups every second, so that kills land in those too. At the end every
acknowledged event is redelivered with its svix-id (200 duplicate) and each user's last one
under a new svix-id (200 stale): the user tables do not change.

Only the standard library is used; the service is driven through tests/e2e/harness.py.

  python3 scripts/crash-loop.py --bin build/usersync --iterations 100

Prints one summary line; exits 1 on any failure (details above the summary), 2 on bad usage.
tests/e2e/test_crash.py imports this file and runs a short loop in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
import harness  # noqa: E402  (needs the path above)

# What `serve` may keep in its data directory (README: database, lock, dev credentials, dev TLS
# pair, backups); anything else after a restart is a temporary file left behind.
DATA_DIR_FILES = {"usersync.db", "usersync.db-wal", "usersync.db-shm", "usersync.lock",
                  "dev-webhook-secret", "dev-query-token"}
TLS_FILES = {"dev-cert.pem", "dev-key.pem"}
BACKUP_RE = re.compile(r"^usersync-\d{8}T\d{6}Z(-[A-Za-z0-9_-]+)?\.db$")
BACKUP_TMP_RE = re.compile(r"^\.usersync-.*\.tmp-(\d+)-\d+")
CREATED_MS = 1735689600123  # the fixture's created_at; every user's first updated_at


# ------------------------------------------------------------------------------------------
# Events and what was acknowledged


@dataclass
class Event:
    svix_id: str
    kind: str              # created, updated, deleted
    clerk_id: str
    updated_at: int | None  # None for deleted
    sends: int = 0
    outcome: str = ""       # the outcome of the 2xx answer, once acknowledged

    @property
    def body(self) -> bytes:
        """The same bytes on every call; made on demand, so a long run keeps no bodies."""
        if self.kind == "deleted":
            return harness.encode(harness.user_event("deleted", self.clerk_id))
        return harness.encode(harness.user_event(
            self.kind, self.clerk_id, created_at=CREATED_MS, updated_at=self.updated_at,
            first_name=f"v{self.updated_at}"))

    def state(self) -> tuple:
        """The stored state this event leaves when it is the user's latest."""
        return ("deleted",) if self.kind == "deleted" else ("user", self.updated_at)


def make_event(kind: str, clerk_id: str, updated_at: int | None) -> Event:
    return Event(harness.new_msg_id(), kind, clerk_id, updated_at)


class Ledger:
    """What was sent and what was answered 2xx. Each user belongs to one worker, which sends
    its events one at a time and moves on only after a 2xx, so per user there is a last
    acknowledged event and at most one unanswered one."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked: dict[str, Event] = {}         # svix_id -> event
        self.last_acked: dict[str, Event] = {}    # clerk_id -> event
        self.pending: dict[str, Event] = {}       # clerk_id -> event sent, not yet answered 2xx
        self.sent_ids: set[str] = set()
        self.failures: list[str] = []

    def sending(self, e: Event) -> None:
        with self.lock:
            self.pending[e.clerk_id] = e
            self.sent_ids.add(e.svix_id)
            e.sends += 1

    def answered(self, e: Event, outcome: str) -> None:
        with self.lock:
            # A first send can only be applied; a resend may find its first send committed.
            allowed = {"applied"} if e.sends == 1 else {"applied", "duplicate"}
            if outcome not in allowed:
                self.failures.append(f"{e.kind} {e.svix_id} (send {e.sends}) answered "
                                     f"{outcome!r}, expected one of {sorted(allowed)}")
            e.outcome = outcome
            self.acked[e.svix_id] = e
            self.last_acked[e.clerk_id] = e
            del self.pending[e.clerk_id]

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def snapshot(self) -> tuple[dict[str, Event], dict[str, Event], dict[str, Event], set[str]]:
        with self.lock:
            return dict(self.acked), dict(self.last_acked), dict(self.pending), set(self.sent_ids)


# ------------------------------------------------------------------------------------------
# Load: one thread per connection


class Worker(threading.Thread):
    """Sends events for its own users over one kept-alive connection; a request that gets no
    2xx is sent again (same svix-id, same body, fresh signature) once the service is up."""

    def __init__(self, loop: "CrashLoop", index: int):
        super().__init__(name=f"worker-{index}", daemon=True)
        self.loop, self.rng = loop, random.Random(loop.rng.random())
        self.users: dict[str, int] = {}  # live users -> last updated_at sent
        self.client: harness.Client | None = None

    def next_event(self) -> Event:
        if not self.users or (len(self.users) < self.loop.users_per_worker and
                              self.rng.random() < 0.3):
            clerk_id = harness.new_user_id()
            self.users[clerk_id] = CREATED_MS
            return make_event("created", clerk_id, CREATED_MS)
        clerk_id = self.rng.choice(list(self.users))
        if self.rng.random() < 0.08:
            del self.users[clerk_id]  # never written to again: Clerk does not reuse ids
            return make_event("deleted", clerk_id, None)
        self.users[clerk_id] += self.rng.randint(1, 1000)
        return make_event("updated", clerk_id, self.users[clerk_id])

    def run(self) -> None:
        event: Event | None = None
        while True:
            if event is None:
                if self.loop.stopping.is_set():
                    break
                event = self.next_event()
            if self.send(event):
                event = None
        if self.client:
            self.client.close()

    def send(self, event: Event) -> bool:
        """True once `event` is answered 2xx."""
        self.loop.up.wait()
        ledger = self.loop.ledger
        ledger.sending(event)
        try:
            if self.client is None:
                self.client = self.loop.service.keep_alive()
            response = self.loop.service.deliver(event.body, msg_id=event.svix_id, client=self.client)
        except Exception:  # the service was killed under us, or is not up yet: resend later
            if self.client:
                self.client.close()
            self.client = None
            time.sleep(0.02)
            return False
        if 200 <= response.status < 300:
            ledger.answered(event, response.json().get("outcome", ""))
            return True
        if response.status < 500:
            ledger.fail(f"{event.kind} {event.svix_id} answered {response}; retrying as Svix would")
        time.sleep(0.05)
        return False


# ------------------------------------------------------------------------------------------
# Checks


def copy_database(data_dir: Path, scratch: Path) -> Path | None:
    """The database and its WAL exactly as the kill left them, copied for Python to open."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if not (data_dir / "usersync.db").exists():
        return None
    for name in ("usersync.db", "usersync.db-wal"):
        if (data_dir / name).exists():
            shutil.copy2(data_dir / name, scratch / name)
    return scratch / "usersync.db"


def stored_state(conn: sqlite3.Connection) -> tuple[dict, dict, dict]:
    users = {cid: (ms, first, seq) for cid, ms, first, seq in conn.execute(
        "SELECT clerk_id, provider_updated_ms, first_name, change_seq FROM users")}
    tombstones = {cid: sid for cid, sid in conn.execute("SELECT clerk_id, svix_id FROM deleted_users")}
    deliveries = {sid: (outcome, cid) for sid, outcome, cid in conn.execute(
        "SELECT svix_id, outcome, clerk_id FROM webhook_deliveries")}
    return users, tombstones, deliveries


def check_schema_invariants(conn: sqlite3.Connection, failures: list[str]) -> None:
    integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        failures.append(f"integrity_check: {integrity[:5]}")
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    if fk:
        failures.append(f"foreign_key_check: {fk[:5]}")
    # A user row and its user_data are written in one transaction: the newest name_history
    # entry is the row's name, and the sign-up data is there.
    for cid, first, keys, last_name in conn.execute(
            "SELECT u.clerk_id, u.first_name, (SELECT group_concat(key) FROM (SELECT key FROM"
            " user_data d WHERE d.user_id = u.id ORDER BY key)),"
            " (SELECT json_extract(value, '$[#-1].first_name') FROM user_data d"
            "  WHERE d.user_id = u.id AND key = 'name_history') FROM users u"):
        if keys != "name_history,signup_date,signup_source" or last_name != first:
            failures.append(f"user {cid}: user_data {keys!r}, last name_history {last_name!r}, "
                            f"row first_name {first!r}")
    last_seq = conn.execute("SELECT last_seq FROM change_sequence").fetchone()[0]
    top = conn.execute("SELECT max(s) FROM (SELECT max(change_seq) s FROM users UNION ALL"
                       " SELECT max(change_seq) FROM deleted_users)").fetchone()[0] or 0
    if top > last_seq:
        failures.append(f"change_seq {top} above change_sequence.last_seq {last_seq}")


def state_in_db(cid: str, users: dict, tombstones: dict) -> tuple:
    if cid in tombstones:
        return ("deleted",) if cid not in users else ("both",)
    if cid in users:
        ms, first, _ = users[cid]
        return ("user", ms) if first == f"v{ms}" else ("mismatched", ms, first)
    return ("none",)


def check_against_ledger(conn: sqlite3.Connection, ledger: Ledger, failures: list[str]) -> int:
    """Every acknowledged event's effect is stored; returns how many acknowledged events it
    checked."""
    acked, last_acked, pending, sent = ledger.snapshot()
    users, tombstones, deliveries = stored_state(conn)
    for sid, e in acked.items():
        if sid not in deliveries:
            failures.append(f"acknowledged {e.kind} {sid} ({e.clerk_id}) missing from "
                            "webhook_deliveries")
        elif deliveries[sid] != ("applied", e.clerk_id):
            failures.append(f"acknowledged {sid} recorded as {deliveries[sid]}")
    for sid in deliveries.keys() - sent:
        failures.append(f"webhook_deliveries holds {sid}, which was never sent")
    for cid in users.keys() | tombstones.keys() | last_acked.keys() | pending.keys():
        allowed = {last_acked[cid].state() if cid in last_acked else ("none",)}
        if cid in pending:
            allowed.add(pending[cid].state())
        found = state_in_db(cid, users, tombstones)
        if found not in allowed:
            failures.append(f"user {cid}: stored {found}, expected one of {sorted(allowed)}")
    return len(acked)


def check_database(db_file: Path | None, ledger: Ledger, failures: list[str]) -> int:
    acked, *_ = ledger.snapshot()
    if db_file is None:
        if acked:
            failures.append(f"no database, but {len(acked)} events were acknowledged")
        return 0
    conn = sqlite3.connect(db_file, timeout=30)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if "webhook_deliveries" not in tables or "change_sequence" not in tables:
            if acked:
                failures.append(f"schema incomplete ({sorted(tables)}) after acknowledgements")
            return 0
        check_schema_invariants(conn, failures)
        return check_against_ledger(conn, ledger, failures)
    finally:
        conn.close()


def check_data_dir(data_dir: Path, failures: list[str]) -> None:
    for entry in sorted(data_dir.iterdir()):
        if entry.name in DATA_DIR_FILES and entry.is_file():
            continue
        if entry.name == "tls" and entry.is_dir():
            extra = {p.name for p in entry.iterdir()} - TLS_FILES
            if extra:
                failures.append(f"left behind in {entry}: {sorted(extra)}")
            continue
        if entry.name == "backups" and entry.is_dir():
            continue  # checked by BackupRuns
        failures.append(f"left behind in the data directory: {entry.name}")


# ------------------------------------------------------------------------------------------
# Backups run alongside, and sometimes killed


def run_usersync(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([harness.usersync_bin(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, env=harness.clean_env())


def backup_supported() -> bool:
    return run_usersync("backup", "--help", timeout=60).returncode == 0


class BackupRuns:
    """`usersync backup` processes started during the loop, and the files they leave."""

    def __init__(self, data_dir: Path):
        self.data_dir, self.dir = data_dir, data_dir / "backups"
        self.proc: subprocess.Popen | None = None
        # pid -> when we killed it: its temporaries may stay until a backup started after that
        self.killed_pids: dict[int, float] = {}
        self.ever_killed = False  # a backup-taking process was killed: orphan manifests may stay
        self.made = self.killed = self.failed = 0
        self.count = 0
        self.checked_at = 0  # self.count when the directory was last checked
        self.started_at = 0.0
        self.duration = 0.2  # seconds the last completed backup took: aims kills into the next

    def start(self) -> None:
        self.count += 1
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [harness.usersync_bin(), "backup", "--data-dir", str(self.data_dir),
             "--name", f"crash{self.count}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=harness.clean_env())

    def finish(self, kill: bool, failures: list[str]) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if kill and proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=300)
        if proc.returncode == -9:
            self.killed += 1
            self.killed_pids[proc.pid] = time.monotonic()
            self.ever_killed = True
            return
        if proc.returncode != 0:
            self.failed += 1  # reported, not a failure: a backup may fail; it must leave nothing
            print(f"note: usersync backup exited {proc.returncode}: {err.strip()[-300:]}", flush=True)
            return
        self.made += 1
        self.duration = time.monotonic() - self.started_at
        # This backup removed the temporaries of processes dead when it started.
        self.killed_pids = {pid: t for pid, t in self.killed_pids.items() if t > self.started_at}
        m = re.match(r"backup (\S+\.db)\n", out)
        if not m or not Path(m.group(1)).is_file():
            failures.append(f"usersync backup exited 0 without a backup file: {out!r}")

    def killed_by_us(self, pid: int) -> None:
        """`serve` with scheduled backups was killed: its temporaries may stay too."""
        self.killed_pids[pid] = time.monotonic()
        self.ever_killed = True
        self.count += 1  # and what it made is checked

    def check(self, failures: list[str]) -> int:
        """Only complete backups, each verified again; returns how many were verified. Does
        nothing when no backup ran since the last check."""
        if self.checked_at == self.count or not self.dir.is_dir():
            return 0
        self.checked_at = self.count
        verified = 0
        for entry in sorted(self.dir.iterdir()):
            name = entry.name
            tmp = BACKUP_TMP_RE.match(name)
            if tmp and int(tmp.group(1)) in self.killed_pids:
                continue
            if name.endswith(".json") and BACKUP_RE.match(name[:-len(".json")]):
                # A kill between the two renames of a publish, or the two unlinks of
                # retention, leaves a manifest without its backup: nothing lists it, and
                # retention removes it once it is an hour old (longer than this loop runs).
                if not (self.dir / name[:-len(".json")]).is_file() and not self.ever_killed:
                    failures.append(f"backup manifest without its backup, and no backup was "
                                    f"ever killed: {name}")
                continue
            if not BACKUP_RE.match(name):
                failures.append(f"partial or unexpected file in {self.dir}: {name}")
                continue
            if not (self.dir / f"{name}.json").exists():
                failures.append(f"backup {name} has no manifest, so it cannot be verified")
                continue
            result = run_usersync("backup", "verify", str(entry), "--data-dir", str(self.data_dir))
            if result.returncode != 0:
                failures.append(f"backup verify {name} exited {result.returncode}: "
                                f"{(result.stdout + result.stderr).strip()[-500:]}")
            verified += 1
        return verified


# ------------------------------------------------------------------------------------------
# The loop


@dataclass
class Result:
    iterations: int = 0
    kills: int = 0
    startup_kills: int = 0
    serve_backup_runs: int = 0
    killed_before_listening: int = 0
    restarts: int = 0
    acknowledged: int = 0
    checked: int = 0
    final_checked: int = 0
    redelivered: int = 0
    backups_made: int = 0
    backups_killed: int = 0
    backups_failed: int = 0
    backups_verified: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"crash-loop: kills survived {self.kills - self.kills_failed()}/{self.kills} "
                f"({self.startup_kills} early in a restart, {self.killed_before_listening} of them "
                f"before it listened), events acknowledged {self.acknowledged}, "
                f"events checked {self.checked} (after each kill, cumulative; "
                f"{self.final_checked} at the end), redelivered {self.redelivered}, "
                f"backups made {self.backups_made} killed {self.backups_killed} "
                f"(and serve's own, every second, in {self.serve_backup_runs} runs) "
                f"failed {self.backups_failed} verified {self.backups_verified}, "
                f"failures {len(self.failures)}, {self.seconds:.0f} s")

    def kills_failed(self) -> int:
        return len({f.split(":", 1)[0] for f in self.failures if f.startswith("kill ")})


class CrashLoop:
    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.rng = random.Random(options.seed)
        self.users_per_worker = options.users
        self.ledger = Ledger()
        self.up = threading.Event()
        self.stopping = threading.Event()
        self.result = Result()
        self.service = harness.Service("--backup-interval", "0", "--read-timeout", "5")
        self.backups = BackupRuns(self.service.data_dir)
        self.scratch = self.service.tmp / "after-kill"
        self.use_backups = (options.backups > 0 or options.serve_backups > 0) and backup_supported()
        self.serve_backups = False

    def serve_args(self, iteration: int) -> list[str]:
        """Alternates TLS and plain HTTP; now and then turns on serve's own backups, every
        second, so that kills land in them too."""
        mode = self.options.transport
        plain = mode == "plain" or (mode == "mixed" and iteration % 2 == 1)
        self.serve_backups = self.use_backups and self.rng.random() < self.options.serve_backups
        self.result.serve_backup_runs += self.serve_backups
        return (["--backup-interval", "1" if self.serve_backups else "0", "--read-timeout", "5"] +
                (["--plain-http"] if plain else []))

    def start_service(self, iteration: int) -> None:
        self.service.extra_args = self.serve_args(iteration)
        self.service.start()
        self.result.restarts += 1

    def killed_serve(self, pid: int) -> None:
        if self.serve_backups:  # its scheduled backup may have been cut short
            self.backups.killed_by_us(pid)

    def kill_during_startup(self, iteration: int) -> None:
        """Starts serve and kills it a few milliseconds in, before or after it listens."""
        self.service.extra_args = self.serve_args(iteration)
        starter = threading.Thread(target=self._start_quietly, daemon=True)
        starter.start()
        while self.service.proc is None and starter.is_alive():
            time.sleep(0.0005)
        time.sleep(self.rng.uniform(0, 0.05))
        proc = self.service.proc
        if proc is not None:
            proc.kill()
            self.killed_serve(proc.pid)
        starter.join()
        if self.service.proc is not None:
            self.service.proc.wait()
            self.service.proc = None

    def _start_quietly(self) -> None:
        try:
            self.service.start()
        except harness.ServiceStartError:
            self.result.killed_before_listening += 1  # that was the point

    def iteration(self, i: int) -> None:
        failures: list[str] = []
        run_for = self.rng.uniform(self.options.min_run, self.options.max_run)
        backup_at = run_for - self.rng.uniform(0, 1.2 * self.backups.duration) if (
            self.use_backups and self.rng.random() < self.options.backups) else None
        kill_backup = self.rng.random() < 0.5
        started = time.monotonic()
        self.up.set()
        while time.monotonic() - started < run_for:
            if backup_at is not None and time.monotonic() - started >= backup_at:
                self.backups.start()
                backup_at = None
            time.sleep(0.005)
        self.up.clear()
        self.service.proc.kill()
        self.killed_serve(self.service.pid)
        if self.backups.proc is not None and kill_backup:
            self.backups.finish(True, failures)
        self.service.proc.wait()
        self.service.proc = None
        self.result.kills += 1
        self.after_kill(failures)
        if self.rng.random() < self.options.startup_kills:
            self.kill_during_startup(i)
            self.result.kills += 1
            self.result.startup_kills += 1
            self.after_kill(failures)
        # Backups are checked while nothing can be writing or pruning them.
        self.backups.finish(False, failures)
        self.result.backups_verified += self.backups.check(failures)
        self.start_service(i + 1)
        check_data_dir(self.service.data_dir, failures)
        self.result.failures += [f"kill {i + 1}: {f}" for f in failures]

    def after_kill(self, failures: list[str]) -> None:
        db = copy_database(self.service.data_dir, self.scratch)
        self.result.checked += check_database(db, self.ledger, failures)

    def finish(self) -> None:
        """Lets every unanswered event be answered, then checks exactly and redelivers."""
        self.stopping.set()
        self.up.set()
        for w in self.workers:
            w.join(timeout=120)
            if w.is_alive():
                self.result.failures.append(f"{w.name} still has an unanswered event after 120 s")
        failures: list[str] = []
        _, _, pending, _ = self.ledger.snapshot()
        if pending:
            failures.append(f"{len(pending)} events never answered 2xx")
        conn = harness.open_db_readonly(self.service.db_file)
        try:
            check_schema_invariants(conn, failures)
            self.result.final_checked = check_against_ledger(conn, self.ledger, failures)
        finally:
            conn.close()
        self.redeliver(failures)
        self.result.failures += [f"end: {f}" for f in failures]

    def last_backup(self, stopped_pid: int) -> None:
        """With serve stopped (SIGTERM ends its backup cleanly), one more backup: it must
        succeed and leave no temporaries."""
        if not self.use_backups:
            return
        failures: list[str] = []
        if self.backups.dir.is_dir():
            for p in self.backups.dir.iterdir():
                tmp = BACKUP_TMP_RE.match(p.name)
                if tmp and int(tmp.group(1)) == stopped_pid:
                    failures.append(f"serve stopped by SIGTERM left {p.name} behind")
        self.backups.start()
        self.backups.finish(False, failures)
        self.result.backups_verified += self.backups.check(failures)
        if any(BACKUP_TMP_RE.match(p.name) for p in self.backups.dir.iterdir()):
            failures.append("temporaries of killed backups remain after a completed backup")
        self.result.failures += [f"end: {f}" for f in failures]

    def redeliver(self, failures: list[str]) -> None:
        acked, last_acked, _, _ = self.ledger.snapshot()
        before = self.service.dump()
        answers = self.send_all([(e.body, e.svix_id) for e in acked.values()])
        wrong = [(sid, a) for sid, a in answers if a != (200, "duplicate")]
        failures += [f"redelivered {sid} answered {a}" for sid, a in wrong[:20]]
        if self.service.dump() != before:
            failures.append("redelivering acknowledged events with their svix-ids changed "
                            "the database")
        fresh = [(e.body, harness.new_msg_id()) for e in last_acked.values()]
        answers = self.send_all(fresh)
        wrong = [(sid, a) for sid, a in answers if a != (200, "stale")]
        failures += [f"replayed last event as {sid} answered {a}" for sid, a in wrong[:20]]
        after = self.service.dump()
        for table in (*harness.USER_TABLES, "change_sequence"):
            if after[table] != before[table]:
                failures.append(f"replaying last events under new svix-ids changed {table}")
        self.result.redelivered = len(acked) + len(fresh)

    def check_no_signature_logged(self) -> None:
        """The harness's own check looks for each signature in the whole log, which takes hours
        after 100,000 deliveries; this finds every signature-shaped token once instead."""
        leaked = set()
        for run in re.findall(r"[A-Za-z0-9+/=]{44,}", self.service.stderr()):
            leaked |= {run[i:i + 44] for i in range(len(run) - 43)} & self.service.sent_signatures
        if leaked:
            self.result.failures.append(f"end: {len(leaked)} request signatures appear in the log")
        self.service.sent_signatures.clear()

    def send_all(self, items: list[tuple[bytes, str]]) -> list[tuple[str, tuple]]:
        answers: list[tuple[str, tuple]] = []
        lock = threading.Lock()

        def send(part: list[tuple[bytes, str]]) -> None:
            with self.service.keep_alive() as client:
                for body, sid in part:
                    try:
                        r = self.service.deliver(body, msg_id=sid, client=client)
                        outcome = r.json().get("outcome") if r.status == 200 else r.body[:100]
                        answer = (r.status, outcome)
                    except Exception as e:  # reported as a wrong answer
                        answer = ("exception", repr(e))
                    with lock:
                        answers.append((sid, answer))

        n = self.options.threads
        threads = [threading.Thread(target=send, args=(items[k::n],)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return answers

    def run(self) -> Result:
        began = time.monotonic()
        try:
            self.start_service(0)
            self.workers = [Worker(self, k) for k in range(self.options.threads)]
            for w in self.workers:
                w.start()
            for i in range(self.options.iterations):
                self.iteration(i)
                self.result.iterations += 1
                if self.options.verbose:
                    print(f"iteration {i + 1}: acknowledged {len(self.ledger.acked)}, "
                          f"checked {self.result.checked}", flush=True)
            self.finish()
            self.check_no_signature_logged()
            pid = self.service.pid
            self.service.stop()  # SIGTERM: exits 0 and logged no secret
            self.last_backup(pid)
        except Exception as e:  # the loop itself broke: a failure, with what happened
            self.result.failures.append(f"loop aborted: {type(e).__name__}: {e}")
        finally:
            self.stopping.set()
            self.up.set()
            if self.backups.proc is not None:
                self.backups.finish(True, [])
            self.result.failures = self.ledger.failures + self.result.failures
            self.result.acknowledged = len(self.ledger.acked)
            self.result.backups_made = self.backups.made
            self.result.backups_killed = self.backups.killed
            self.result.backups_failed = self.backups.failed
            self.result.seconds = time.monotonic() - began
            if self.options.keep:
                print(f"kept {self.service.tmp}", flush=True)
                if self.service.proc is not None:
                    self.service.terminate()
            else:
                self.service.cleanup()
        return self.result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=str(REPO_ROOT / "build" / "usersync"),
                   help="the usersync binary (default: build/usersync)")
    p.add_argument("--iterations", type=int, default=20, help="kills while serving (default 20)")
    p.add_argument("--threads", type=int, default=4, help="connections sending events (default 4)")
    p.add_argument("--users", type=int, default=40, help="live users per connection (default 40)")
    p.add_argument("--min-run", type=float, default=0.3, help="seconds of load before a kill, least")
    p.add_argument("--max-run", type=float, default=1.5, help="seconds of load before a kill, most")
    p.add_argument("--transport", choices=("mixed", "tls", "plain"), default="mixed",
                   help="TLS, plain HTTP, or alternating between restarts (default)")
    p.add_argument("--backups", type=float, default=0.3,
                   help="chance that `usersync backup` runs into a kill (default 0.3; 0: never)")
    p.add_argument("--serve-backups", type=float, default=0.3,
                   help="chance that a restart runs serve with --backup-interval 1 (default 0.3)")
    p.add_argument("--startup-kills", type=float, default=0.1,
                   help="chance of an extra kill a few ms into a restart (default 0.1)")
    p.add_argument("--seed", type=int, default=None, help="random seed, to repeat a run")
    p.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    p.add_argument("--verbose", "-v", action="store_true", help="a line per iteration")
    options = p.parse_args(argv)
    if options.seed is None:
        options.seed = random.randrange(1 << 32)
    if options.iterations < 1 or options.threads < 1 or not 0 < options.min_run <= options.max_run:
        p.error("need --iterations >= 1, --threads >= 1 and 0 < --min-run <= --max-run")
    return options


def run(options: argparse.Namespace) -> Result:
    """Runs the loop with parsed `options`; the binary is options.bin."""
    if not (os.path.isfile(options.bin) and os.access(options.bin, os.X_OK)):
        raise SystemExit(f"crash-loop: {options.bin} is not an executable file; build it first "
                         "(scripts/build.sh) or pass --bin")
    os.environ["USERSYNC_BIN"] = os.path.abspath(options.bin)
    return CrashLoop(options).run()


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    print(f"crash-loop: {options.iterations} iterations, seed {options.seed}, "
          f"{options.transport} transport, binary {options.bin}", flush=True)
    result = run(options)
    for failure in result.failures[:50]:
        print(f"FAIL {failure}", flush=True)
    if len(result.failures) > 50:
        print(f"... and {len(result.failures) - 50} more failures", flush=True)
    print(result.summary(), flush=True)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
