#include "cli_backup.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>

#include "backup.hpp"
#include "backup_internal.hpp"
#include "backup_restore.hpp"
#include "data_dir.hpp"

namespace usersync {
namespace fs = std::filesystem;
using backup_detail::human_age;
using backup_detail::human_size;

namespace {

// FILE as given, else the file of that name in the backups directory, so both
// `restore /path/to/usersync-...db` and `restore usersync-...db` work.
fs::path resolve_backup(const config& cfg) {
  const fs::path& given = cfg.backup.file;
  std::error_code ec;
  if (fs::exists(given, ec) || given.has_parent_path()) return given;
  const fs::path in_dir = cfg.backup.dir / given;
  return fs::exists(in_dir, ec) ? in_dir : given;
}

int verify_command(const config& cfg) {
  const fs::path file = resolve_backup(cfg);
  const backup_verification r = verify_backup(file);
  if (r.ok()) {
    std::cout << file.string() << ": verified: SHA-256 " << r.sha256 << " matches the manifest, "
              << "integrity_check ok, schema " << r.schema_version << ", users: " << r.user_count << "\n";
    return 0;
  }
  std::cout << file.string() << ": FAILED verification\n";
  for (const auto& problem : r.problems) std::cout << "  " << problem << "\n";
  std::cout << "Do not restore it; `usersync backups` lists the others.\n";
  return 1;
}

int take_backup(const config& cfg) {
  const backup_options options{database_path(cfg.storage.data_dir), cfg.backup.dir,
                               cfg.backup.label, cfg.storage.busy_timeout};
  const auto now = std::chrono::system_clock::now();
  const backup_manifest m = create_backup(options, now);
  std::cout << "backup " << m.file.string() << "\n  " << human_size(m.size_bytes) << ", "
            << "users: " << m.user_count << ", schema " << m.schema_version << ", integrity_check "
            << m.integrity << ", SHA-256 " << m.sha256 << ", " << m.duration.count() << " ms\n"
            << "  manifest " << manifest_path(m.file).string() << "\n";
  const retention_policy policy{cfg.backup.keep_last, cfg.backup.keep_daily_days};
  for (const auto& removed : prune_backups(cfg.backup.dir, policy, now)) {
    std::cout << "retention removed " << removed.string() << "\n";
  }
  return 0;
}

}  // namespace

int backup_command(const config& cfg) { return cfg.backup.verify ? verify_command(cfg) : take_backup(cfg); }

int backups_command(const config& cfg) {
  const auto entries = list_backups(cfg.backup.dir);
  if (entries.empty()) {
    std::cout << "no backups in " << cfg.backup.dir.string() << "; take one with: usersync backup\n";
    return 0;
  }
  const auto now = std::chrono::system_clock::now();
  std::size_t width = 6;
  for (const auto& e : entries) width = std::max(width, e.file.filename().string().size());
  std::cout << "backups in " << cfg.backup.dir.string() << ", newest first:\n" << std::left
            << std::setw(static_cast<int>(width) + 2) << "BACKUP" << std::setw(10) << "AGE"
            << std::setw(10) << "SIZE" << std::setw(8) << "SCHEMA" << std::setw(9) << "USERS"
            << "STATE\n";
  for (const auto& e : entries) {
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - e.created_at);
    std::cout << std::setw(static_cast<int>(width) + 2) << e.file.filename().string()
              << std::setw(10) << human_age(age) << std::setw(10) << human_size(e.size_bytes)
              << std::setw(8) << (e.manifest ? std::to_string(e.manifest->schema_version) : "?")
              << std::setw(9) << (e.manifest ? std::to_string(e.manifest->user_count) : "?")
              << to_string(e.state) << (e.state_detail.empty() ? "" : " (" + e.state_detail + ")")
              << "\n";
  }
  std::cout << "verified = checked when made; `usersync backup verify FILE` checks again now\n";
  return 0;
}

int restore_command(const config& cfg) {
  const restore_options options{cfg.storage.data_dir, resolve_backup(cfg), cfg.storage.busy_timeout};
  std::cout << describe(restore_backup(options, std::chrono::system_clock::now()));
  return 0;
}

}  // namespace usersync
