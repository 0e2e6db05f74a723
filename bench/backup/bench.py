#!/usr/bin/env python3
"""Backup benchmark: `usersync backup` of a large database while `serve` ingests webhooks,
next to `sqlite3 DB ".backup X"` and `VACUUM INTO` of the same file when idle.

Usage: bench/backup/bench.py BUILD/usersync [--size-mb 1024] [--work-dir DIR] [--keep]

Method (see docs/backups.md):
 1. `usersync migrate`, then fill users and user_data with realistic rows (the clerk_json of
    the user.created fixture, a fresh id per row) through Python's sqlite3 until the file
    reaches --size-mb.
 2. `usersync serve --backup-interval 0`; one client delivers signed user.created events back
    to back on a kept-alive HTTPS connection, recording each request's latency.
 3. After a few seconds of ingestion alone, `usersync backup` runs (timed from outside:
    snapshot copy + integrity_check + SHA-256 + fsync + rename). Ingestion goes on
    throughout; latency percentiles are printed for "before" and "during" the backup.
 4. serve is stopped; on the now idle file: `usersync backup` again, `sqlite3 DB ".backup X"`
    and `sqlite3 DB "VACUUM INTO 'X'"`, each timed from outside, each output removed after.
Throughput is database size / wall time, in MB/s (1 MB = 10^6 bytes). Page cache is warm
for every run (the file fits in RAM and was just written); nothing is dropped between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))
import harness  # noqa: E402
from harness import Service, new_user_id, user_event  # noqa: E402


def run(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, env=harness.clean_env())
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return elapsed, result


def fill(db_file: Path, size_mb: int) -> int:
    """Adds users (and their user_data) until the file is about size_mb; returns users added."""
    template = harness.load_fixture("clerk-user-created")["data"]
    conn = sqlite3.connect(db_file)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # generation only; usersync itself uses FULL
    target = size_mb * 1_000_000
    users = 0
    batch = 5000
    while db_file.stat().st_size < target:
        rows, data = [], []
        for _ in range(batch):
            uid = f"user_bench_{users:09d}"
            obj = dict(template, id=uid, first_name=f"First{users}", username=f"u{users}")
            rows.append((uid, f"{uid}@example.com", obj["first_name"], "Bench", "user", "active",
                         "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z",
                         1735689600000, "2025-01-01T00:00:00.000Z", json.dumps(obj)))
            users += 1
        with conn:
            conn.executemany(
                "INSERT INTO users (clerk_id, email, first_name, last_name, role, status, "
                "created_at, updated_at, provider_updated_ms, synced_at, clerk_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            conn.execute(
                "INSERT INTO user_data (user_id, key, value, updated_at) "
                "SELECT id, 'signup_source', '\"clerk\"', synced_at FROM users "
                "WHERE id > (SELECT coalesce(max(user_id), 0) FROM user_data)")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return users


class Ingest(threading.Thread):
    """Delivers signed events back to back; records (start time, latency) per request."""

    def __init__(self, service: Service):
        super().__init__(daemon=True)
        self.service = service
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        with self.service.keep_alive() as client:
            while not self.stop_flag.is_set():
                start = time.monotonic()
                r = self.service.deliver(user_event("created", new_user_id()), client=client)
                self.samples.append((start, time.monotonic() - start))
                if r.status != 200:
                    self.errors += 1

    def window(self, begin: float, end: float) -> list[float]:
        return [lat for (t, lat) in self.samples if begin <= t < end]


def percentiles(latencies: list[float]) -> str:
    if len(latencies) < 2:
        return f"n={len(latencies)}"
    q = statistics.quantiles(latencies, n=100)
    return (f"n={len(latencies)} p50={q[49] * 1000:.2f} ms p99={q[98] * 1000:.2f} ms "
            f"max={max(latencies) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--work-dir")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    os.environ["USERSYNC_BIN"] = os.path.abspath(args.binary)
    usersync = harness.usersync_bin()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="usersync-bench-backup-"))
    data_dir = work / "data"
    db_file = data_dir / "usersync.db"
    try:
        if not db_file.exists() or db_file.stat().st_size < args.size_mb * 1_000_000:
            run([usersync, "migrate", "--data-dir", str(data_dir)])
            start = time.monotonic()
            users = fill(db_file, args.size_mb)
            print(f"generated {db_file.stat().st_size / 1e6:.0f} MB ({users} users) in "
                  f"{time.monotonic() - start:.0f} s")
        size = db_file.stat().st_size
        print(f"database: {size / 1e6:.1f} MB, machine: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, {platform.platform()}")

        service = Service("--backup-interval", "0", data_dir=data_dir)
        service.start()
        ingest = Ingest(service)
        ingest.start()
        time.sleep(5)  # ingestion alone, for the "before" latencies
        before_end = time.monotonic()
        live_s, result = run([usersync, "backup", "--data-dir", str(data_dir), "--name", "live",
                              "--log-level", "debug"])
        phases = next((l.split("phases: ")[1] for l in result.stdout.splitlines() if "phases: " in l), "?")
        during_end = time.monotonic()
        time.sleep(1)
        ingest.stop_flag.set()
        ingest.join()
        service.stop()
        live_file = Path(next(l for l in result.stdout.splitlines() if l.startswith("backup "))
                         .split()[1])
        manifest = json.loads(Path(str(live_file) + ".json").read_text())
        live_file.unlink()
        Path(str(live_file) + ".json").unlink()

        idle_s, result = run([usersync, "backup", "--data-dir", str(data_dir), "--name", "idle"])
        idle_file = Path(result.stdout.split()[1])
        idle_file.unlink()
        Path(str(idle_file) + ".json").unlink()
        copy = work / "sqlite3-backup.db"
        dot_s, _ = run(["sqlite3", str(db_file), f".backup '{copy}'"])
        # The verification steps of usersync backup, timed alone on that copy.
        check_s, _ = run(["sqlite3", str(copy), "PRAGMA integrity_check"])
        sha_s, _ = run(["openssl", "dgst", "-sha256", str(copy)])
        copy.unlink()
        vacuum = work / "vacuum-into.db"
        vac_s, _ = run(["sqlite3", str(db_file), f"VACUUM INTO '{vacuum}'"])
        vacuum.unlink()

        mbps = lambda s: size / 1e6 / s  # noqa: E731
        print()
        print(f"{'method':52} {'seconds':>8} {'MB/s':>8} {'vs .backup':>10}")
        rows = [
            ("usersync backup, while ingesting (verified, fsynced)", live_s),
            ("usersync backup, idle (verified, fsynced)", idle_s),
            ('sqlite3 db ".backup x", idle', dot_s),
            ("sqlite3 db \"VACUUM INTO 'x'\", idle", vac_s),
        ]
        for name, s in rows:
            print(f"{name:52} {s:8.2f} {mbps(s):8.1f} {dot_s / s:9.2f}x")
        print(f"{'  of which: PRAGMA integrity_check alone (sqlite3)':52} {check_s:8.2f}")
        print(f"{'  of which: SHA-256 alone (openssl dgst)':52} {sha_s:8.2f}")
        print()
        print(f"phases of the live backup: {phases}")
        print(f"manifest duration of the live backup: {manifest['duration_ms']} ms, "
              f"{manifest['user_count']} users, integrity {manifest['integrity_check']}")
        print(f"ingestion before the backup: {percentiles(ingest.window(0, before_end))}")
        print(f"ingestion during the backup: {percentiles(ingest.window(before_end, during_end))}")
        print(f"ingestion errors: {ingest.errors}")
        slow = [(t - before_end, lat) for (t, lat) in ingest.samples if lat > 0.05]
        print("requests over 50 ms (seconds after the backup started: latency): " +
              (", ".join(f"{o:.2f}: {lat * 1000:.0f} ms" for o, lat in slow) or "none"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
