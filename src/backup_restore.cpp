#include "backup_restore.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "backup_files.hpp"
#include "backup_internal.hpp"
#include "data_dir.hpp"
#include "store.hpp"
#include "time_format.hpp"

namespace usersync {
namespace fs = std::filesystem;
namespace files = backup_files;

namespace {

void refuse_while_served(const fs::path& data_dir) {
  if (const long pid = lock_holder(data_dir); pid != 0) {
    throw std::runtime_error("usersync (pid " + std::to_string(pid) + ") is serving from " +
                             data_dir.string() + "; stop it first (systemctl stop usersync, or "
                             "kill -TERM " + std::to_string(pid) + "), then run the restore "
                             "again. Nothing was changed");
  }
}

backup_verification verify_or_refuse(const fs::path& backup_file) {
  backup_verification v = verify_backup(backup_file);
  if (!v.ok()) {
    std::string problems;
    for (const auto& p : v.problems) problems += "\n  " + p;
    throw std::runtime_error("backup " + backup_file.string() + " failed verification:" + problems +
                             "\nNothing was changed; choose another backup from `usersync backups`");
  }
  if (v.schema_version > latest_schema_version()) {
    throw std::runtime_error(
        "backup " + backup_file.string() + " has schema version " + std::to_string(v.schema_version) +
        ", newer than this usersync understands (" + std::to_string(latest_schema_version()) +
        "); restore it with the release that made it (usersync " + v.manifest->usersync_version +
        "). Nothing was changed");
  }
  return v;
}

// Keeps `db` and its side files under `aside`. The main file is hard-linked first, so the
// live name never disappears: a crash here leaves the old database in place.
std::vector<std::pair<fs::path, fs::path>> move_aside(const fs::path& db, const fs::path& aside) {
  std::vector<std::pair<fs::path, fs::path>> moved;
  std::error_code ec;
  if (!fs::exists(db, ec)) return moved;
  if (fs::exists(aside, ec)) throw std::runtime_error(aside.string() + " already exists; wait a second and try again");
  if (::link(db.c_str(), aside.c_str()) != 0) {
    throw std::runtime_error("cannot keep " + db.string() + " as " + aside.string() + ": " + std::strerror(errno));
  }
  moved.emplace_back(db, aside);
  for (const char* side : {"-wal", "-shm", "-journal"}) {
    const fs::path from = db.string() + side, to = aside.string() + side;
    if (!fs::exists(from, ec)) continue;
    files::rename_no_replace(from, to);
    moved.emplace_back(from, to);
  }
  return moved;
}

}  // namespace

restore_report restore_backup(const restore_options& o, sys_time now) {
  refuse_while_served(o.data_dir);
  restore_report r;
  r.db_file = database_path(o.data_dir);
  r.backup_file = fs::absolute(o.backup_file);
  r.verified = verify_or_refuse(r.backup_file);
  prepare_data_dir(o.data_dir);
  data_dir_lock lock(o.data_dir);  // and keep any serve from starting until we are done
  files::remove_orphaned_temporaries(o.data_dir, ".usersync.db.restore");  // of killed restores

  const fs::path tmp = o.data_dir / (".usersync.db.restore.tmp-" + std::to_string(::getpid()));
  files::cleanup_guard cleanup;
  cleanup.add(tmp);
  if (files::copy_file_synced(r.backup_file, tmp) != r.verified.sha256) {
    throw std::runtime_error("backup " + r.backup_file.string() + " changed while it was being "
                             "copied; nothing was changed, run the restore again");
  }
  r.moved_aside = move_aside(r.db_file, o.data_dir / (r.db_file.filename().string() +
                                                      ".before-restore-" + backup_detail::compact_utc(now)));
  files::rename_replace(tmp, r.db_file);
  cleanup.release();
  files::fsync_dir(o.data_dir);
  // Side files of the old database that appeared after it was moved aside (a reader that
  // still had it open) would be replayed into the restored file: remove them.
  for (const auto& side : files::sqlite_side_files(r.db_file)) {
    std::error_code ec;
    if (fs::remove(side, ec)) r.removed.push_back(side);
  }
  {
    store restored(r.db_file, store_options{o.busy_timeout});
    r.migration = restored.migrate();
    restored.checkpoint();
  }
  files::fsync_dir(o.data_dir);
  return r;
}

std::string describe(const restore_report& r) {
  std::ostringstream out;
  const auto& m = *r.verified.manifest;
  out << "Restored " << r.db_file.string() << " from " << r.backup_file.string() << "\n"
      << "  backup made " << iso8601_utc(m.created_at) << " (users: " << r.verified.user_count
      << ", schema " << r.verified.schema_version << "), SHA-256 and integrity_check verified\n";
  if (r.migration.applied.empty()) {
    out << "  schema is up to date (version " << r.migration.to_version << ")\n";
  } else {
    out << "  migrated from schema version " << r.migration.from_version << " to "
        << r.migration.to_version << "\n";
  }
  for (const auto& side : r.removed) out << "  removed stale " << side.string() << "\n";
  if (r.moved_aside.empty()) {
    out << "There was no database before. To undo: rm " << r.db_file.string() << "\n";
    return out.str();
  }
  out << "The previous database is kept:\n";
  for (const auto& [from, to] : r.moved_aside) out << "  " << to.string() << "\n";
  out << "To undo, with usersync stopped:\n"
      << "  rm -f " << r.db_file.string() << "-wal " << r.db_file.string() << "-shm\n";
  for (const auto& [from, to] : r.moved_aside) out << "  mv " << to.string() << " " << from.string() << "\n";
  return out.str();
}

}  // namespace usersync
