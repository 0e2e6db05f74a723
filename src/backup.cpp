// Taking backups. Verification is in backup_verify.cpp; listing, retention and the start-up
// check in backup_catalog.cpp.
#include "backup.hpp"

#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "backup_files.hpp"
#include "backup_internal.hpp"
#include "version.hpp"

namespace usersync {
namespace fs = std::filesystem;
namespace files = backup_files;
using namespace backup_detail;

namespace {

void throw_if_stopped(const std::stop_token& stop, const fs::path& file) {
  if (stop.stop_requested()) throw std::runtime_error("backup to " + file.string() + " stopped: usersync is shutting down");
}

// Creates the backups directory owner-only when missing; an existing one is left as it is.
void prepare_backups_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  fs::create_directories(dir, ec);
  if (!ec) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) {
    throw std::runtime_error("cannot create backups directory " + dir.string() + ": " + ec.message() +
                             "; choose another with --backup-dir");
  }
}

std::string temporary_suffix() {
  static std::atomic<unsigned> counter{0};
  return ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// What an operator should do about a failed SQLite step of a backup.
std::string advice(int sqlite_code, const backup_options& o) {
  switch (sqlite_code & 0xff) {
    case SQLITE_FULL:
      return "the disk holding " + o.backups_dir.string() + " is full: free space there, lower "
             "--backup-keep, or point --backup-dir at a larger disk";
    case SQLITE_IOERR:
      return "an I/O error: check the disks holding " + o.db_file.string() + " and " +
             o.backups_dir.string();
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return "the database looks damaged: run `usersync backups` and restore a verified backup "
             "with `usersync restore FILE`";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "the database stayed locked; try again";
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return "check that this user may read " + o.db_file.string() + " and write to " +
             o.backups_dir.string();
    default:
      return "see the message above";
  }
}

// Copies the whole source in one backup step. The step holds one read transaction on the
// read-only source connection from its first page to its last, so in WAL mode it copies one
// consistent snapshot while the writer keeps committing; stepping in chunks instead would
// restart after every commit and might never finish.
void copy_snapshot(const backup_options& o, const fs::path& tmp) {
  SQLite::Database source(o.db_file, SQLite::OPEN_READONLY, static_cast<int>(o.busy_timeout.count()));
  files::create_exclusive(tmp);
  SQLite::Database copy(tmp, SQLite::OPEN_READWRITE);
  {
    const files::writeback_pacer pacer(tmp, std::chrono::milliseconds(50));
    SQLite::Backup backup(copy, source);
    const auto deadline = std::chrono::steady_clock::now() + o.busy_timeout;
    while (backup.executeStep(-1) != SQLITE_DONE) {  // BUSY/LOCKED: nothing copied yet
      if (std::chrono::steady_clock::now() >= deadline) {
        throw SQLite::Exception("the database stayed locked for " +
                                    std::to_string(o.busy_timeout.count()) + " ms",
                                SQLITE_BUSY);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  // The copy carries the source's WAL flag; a rollback-journal file is self-contained (no
  // -wal or -shm needed to read it). The store turns WAL back on when it is restored.
  copy.exec("PRAGMA journal_mode = DELETE");
}

// Where a backup spends its time, logged at debug level ("copy=812ms check=640ms ...").
class phase_timer {
 public:
  void mark(const char* phase) {
    const auto now = std::chrono::steady_clock::now();
    text_ += std::string(text_.empty() ? "" : " ") + phase + "=" +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - last_).count()) + "ms";
    last_ = now;
  }
  const std::string& text() const { return text_; }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::string text_;
};

void check_inputs(const backup_options& o) {
  if (!o.label.empty() && !valid_backup_label(o.label)) {
    throw std::runtime_error("invalid backup label '" + o.label +
                             "': use 1 to 64 letters, digits, '_' or '-'");
  }
  if (!fs::exists(o.db_file)) {
    throw std::runtime_error("no database at " + o.db_file.string() +
                             " to back up; check --data-dir (usersync serve or migrate creates it)");
  }
}

// The final names, and the hidden temporary names the backup is written under first.
struct backup_paths {
  fs::path final_file, final_manifest, tmp, tmp_manifest;
};

backup_paths plan(const backup_options& o, sys_time now) {
  backup_paths p;
  p.final_file = o.backups_dir / backup_file_name(now, o.label);
  p.final_manifest = manifest_path(p.final_file);
  if (fs::exists(p.final_file) || fs::exists(p.final_manifest)) {
    throw std::runtime_error("backup " + p.final_file.string() +
                             " already exists; wait a second, or give this one a --name");
  }
  const std::string suffix = temporary_suffix();
  p.tmp = o.backups_dir / ("." + p.final_file.filename().string() + suffix);
  p.tmp_manifest = o.backups_dir / ("." + p.final_manifest.filename().string() + suffix);
  return p;
}

// Snapshot, integrity check, fsync and SHA-256 of the copy at paths.tmp; its manifest.
backup_manifest make_verified_copy(const backup_options& o, const backup_paths& paths, sys_time now,
                                   const std::stop_token& stop, phase_timer& phases) {
  copy_snapshot(o, paths.tmp);
  phases.mark("copy");
  throw_if_stopped(stop, paths.final_file);
  const database_facts facts = inspect_copy(paths.tmp, stop);
  phases.mark("integrity_check");
  if (facts.integrity != "ok") {
    throw std::runtime_error("PRAGMA integrity_check failed on the copy (" + facts.integrity +
                             "); the live database may be damaged: stop usersync and run it "
                             "again to get its start-up check");
  }
  files::fsync_file(paths.tmp);
  phases.mark("fsync");
  backup_manifest m;
  m.file = paths.final_file;
  m.created_at = now;
  m.source = fs::absolute(o.db_file);
  m.label = o.label;
  m.size_bytes = fs::file_size(paths.tmp);
  m.page_size = facts.page_size;
  m.page_count = facts.page_count;
  m.schema_version = facts.schema_version;
  m.user_count = facts.user_count;
  m.sha256 = files::sha256_file(paths.tmp, stop);
  phases.mark("sha256");
  m.integrity = facts.integrity;
  m.usersync_version = version;
  return m;
}

// The manifest is renamed into place first, then the backup, then the directory is fsynced:
// a kill between the two renames leaves a manifest without its backup, which nothing lists
// (and retention removes once it is old), never a backup without its manifest, which
// `backups` would list as unverified.
void publish(const backup_paths& paths, const backup_manifest& m, files::cleanup_guard& cleanup,
             const fs::path& dir) {
  files::write_new_file(paths.tmp_manifest, manifest_to_json(m));
  files::rename_no_replace(paths.tmp_manifest, paths.final_manifest);
  cleanup.add(paths.final_manifest);  // until the backup is in place too
  files::rename_no_replace(paths.tmp, paths.final_file);
  files::fsync_dir(dir);
}

}  // namespace

backup_manifest create_backup(const backup_options& o, sys_time now, std::stop_token stop) {
  const auto started = std::chrono::steady_clock::now();
  check_inputs(o);
  prepare_backups_dir(o.backups_dir);
  files::remove_orphaned_temporaries(o.backups_dir, ".usersync-");  // of killed backups
  const backup_paths paths = plan(o, now);
  files::cleanup_guard cleanup;  // declared first: removes the files after the connections close
  cleanup.add(paths.tmp);
  for (const auto& side : files::sqlite_side_files(paths.tmp)) cleanup.add(side);
  cleanup.add(paths.tmp_manifest);
  try {
    phase_timer phases;
    backup_manifest m = make_verified_copy(o, paths, now, stop, phases);
    m.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    publish(paths, m, cleanup, o.backups_dir);
    phases.mark("manifest+rename");
    spdlog::debug("backup {} phases: {}", paths.final_file.string(), phases.text());
    cleanup.release();
    return m;
  } catch (const SQLite::Exception& e) {
    throw std::runtime_error("backup of " + o.db_file.string() + " to " + o.backups_dir.string() +
                             " failed: " + e.what() + "; " + advice(e.getErrorCode(), o) +
                             ". Earlier backups are untouched");
  } catch (const std::exception& e) {
    throw std::runtime_error("backup of " + o.db_file.string() + " to " + o.backups_dir.string() +
                             " failed: " + e.what() + ". Earlier backups are untouched");
  }
}

}  // namespace usersync
