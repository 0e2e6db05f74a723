#pragma once
// Pieces shared by backup.cpp, backup_catalog.cpp and backup_restore.cpp; not a public API.
#include <cstdint>
#include <filesystem>
#include <stop_token>
#include <string>

#include "backup.hpp"

namespace usersync::backup_detail {

// What SQLite says about a database file, read through a fresh read-only connection.
struct database_facts {
  std::string integrity;  // "ok", or the first problems reported, joined by "; "
  int schema_version = 0;
  std::int64_t user_count = 0;
  std::int64_t page_size = 0;
  std::int64_t page_count = 0;
};

// Opens `file` as an immutable read-only database (no locks, no side files: for copies no
// one writes) and runs PRAGMA integrity_check. An unreadable file is reported in
// `integrity`, not thrown; `stop` interrupts the check.
database_facts inspect_copy(const std::filesystem::path& file, std::stop_token stop);

// The manifest as pretty JSON, and back. from_json throws std::runtime_error on a malformed
// manifest; `file` is the backup the manifest belongs to.
std::string manifest_to_json(const backup_manifest& m);
backup_manifest manifest_from_json(const std::string& text, const std::filesystem::path& file);

// "20260102T030405Z": the compact UTC form used in file names.
std::string compact_utc(sys_time t);

// Human forms for listings: "12.3 MB", "3 d 4 h".
std::string human_size(std::uint64_t bytes);
std::string human_age(std::chrono::seconds age);

}  // namespace usersync::backup_detail
