#pragma once
// Restoring a backup over the live database, with the service stopped. The current database
// (and its -wal/-shm) is kept under another name, never deleted, so a restore can be undone.
#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "backup.hpp"
#include "migrations.hpp"

namespace usersync {

struct restore_options {
  std::filesystem::path data_dir;
  std::filesystem::path backup_file;
  std::chrono::milliseconds busy_timeout{5000};
};

struct restore_report {
  std::filesystem::path db_file;
  std::filesystem::path backup_file;
  backup_verification verified;
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> moved_aside;  // from, to
  std::vector<std::filesystem::path> removed;  // stale -wal/-shm found after installing
  migration_report migration;
};

// Verifies `backup_file`, moves the current database aside as
// usersync.db.before-restore-YYYYMMDDTHHMMSSZ (with its -wal/-shm), installs a copy of the
// backup atomically (temporary file in the data directory, fsync, rename, fsync of the
// directory), removes stale -wal/-shm and applies pending migrations. Holds the data
// directory's lock throughout. Throws std::runtime_error, having changed nothing, when a
// `serve` holds the data directory (naming its PID), when the backup fails verification, or
// when its schema is newer than this binary.
restore_report restore_backup(const restore_options& options, sys_time now);

// What restore did and how to undo it, for the operator.
std::string describe(const restore_report& report);

}  // namespace usersync
