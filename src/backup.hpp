#pragma once
// Online backups of the database. A backup is one SQLite backup step over the whole file from
// a read-only connection: in WAL mode that is a consistent snapshot which never blocks the
// writer and cannot be restarted by its commits. The copy is written under a temporary name
// in the backups directory, verified (integrity_check, schema version, SHA-256), fsynced, and
// only then renamed to usersync-YYYYMMDDTHHMMSSZ[-LABEL].db with a JSON manifest beside it.
// Every function here opens its own connections and may run on any thread; none touches the
// writer's connection.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace usersync {

using sys_time = std::chrono::system_clock::time_point;

struct backup_options {
  std::filesystem::path db_file;      // the live database
  std::filesystem::path backups_dir;  // created 0700 when missing
  std::string label;                  // optional; see valid_backup_label
  std::chrono::milliseconds busy_timeout{5000};
};

// What a verified backup holds; written as FILE.json beside it.
struct backup_manifest {
  std::filesystem::path file;  // the backup itself
  sys_time created_at;
  std::filesystem::path source;
  std::string label;
  std::uint64_t size_bytes = 0;
  std::int64_t page_size = 0;
  std::int64_t page_count = 0;
  int schema_version = 0;
  std::int64_t user_count = 0;
  std::string sha256;     // lower-case hex of the whole file
  std::string integrity;  // PRAGMA integrity_check's answer on the copy: "ok"
  std::chrono::milliseconds duration{0};
  std::string usersync_version;
};

// Labels are 1 to 64 of [A-Za-z0-9_-], so a label never changes the meaning of a file name.
bool valid_backup_label(std::string_view label);

// "usersync-20260102T030405Z-LABEL.db" (seconds, UTC).
std::string backup_file_name(sys_time created_at, std::string_view label);

// The time and label encoded in a backup's file name; nullopt for any other name.
struct backup_name {
  sys_time created_at;
  std::string label;
};
std::optional<backup_name> parse_backup_file_name(std::string_view file_name);

// FILE.json
std::filesystem::path manifest_path(const std::filesystem::path& backup_file);

// Takes a verified backup of options.db_file as of `now` and returns its manifest. Throws
// std::runtime_error naming the file, the problem and the fix (no database, disk full,
// integrity_check failed, a backup with that name exists, `stop` requested); on failure
// nothing is left in the backups directory and earlier backups are untouched.
backup_manifest create_backup(const backup_options& options, sys_time now,
                              std::stop_token stop = {});

// The result of re-checking a backup against its manifest.
struct backup_verification {
  std::vector<std::string> problems;  // empty: the backup is good
  std::optional<backup_manifest> manifest;
  std::string sha256;     // recomputed
  std::string integrity;  // recomputed PRAGMA integrity_check, "ok" when good
  int schema_version = 0;
  std::int64_t user_count = 0;
  bool ok() const { return problems.empty(); }
};

// Recomputes the SHA-256 and PRAGMA integrity_check of `file` and compares them with its
// manifest. A bad backup is a value, not an exception; the file is opened read-only and is
// never modified.
backup_verification verify_backup(const std::filesystem::path& file, std::stop_token stop = {});

enum class backup_state {
  verified,    // its manifest records integrity "ok" and the file still has the recorded size
  unverified,  // no manifest (or an unreadable one): nothing is known about it
  damaged      // the manifest records a failure, or the size differs from it
};
std::string_view to_string(backup_state state);

struct backup_entry {
  std::filesystem::path file;
  sys_time created_at;  // from the file name
  std::string label;
  std::uint64_t size_bytes = 0;  // on disk now
  std::optional<backup_manifest> manifest;
  backup_state state = backup_state::unverified;
  std::string state_detail;  // why it is not verified
};

// Every usersync-*.db in `dir`, newest first (cheap: reads manifests, never whole files).
// An absent directory has no backups.
std::vector<backup_entry> list_backups(const std::filesystem::path& dir);

struct retention_policy {
  std::size_t keep_last = 10;  // the newest N backups, whatever their state
  int keep_daily_days = 0;     // and the newest verified one of each of the last D UTC days
};

// The entries of `newest_first` that `policy` does not keep. The newest verified backup is
// always kept. Pure: the caller deletes.
std::vector<backup_entry> backups_to_prune(const std::vector<backup_entry>& newest_first,
                                           const retention_policy& policy, sys_time now);

// Deletes (file and manifest) what backups_to_prune selects in `dir`; returns those files.
std::vector<std::filesystem::path> prune_backups(const std::filesystem::path& dir,
                                                 const retention_policy& policy, sys_time now);

// The live database is damaged: the message names the file and the problem, lists the newest
// verified backups and gives the exact restore command.
class damaged_database_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs PRAGMA quick_check on `db_file` through a read-only connection; throws
// damaged_database_error when it fails or the file is not a database. Modifies nothing.
// A missing file passes (serve creates it). Call before opening the store.
void check_database_or_explain(const std::filesystem::path& db_file,
                               const std::filesystem::path& backups_dir);

}  // namespace usersync
