// The backups directory as a whole: listing, retention, and the start-up check that points
// at it when the live database is damaged.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "backup.hpp"
#include "backup_files.hpp"
#include "backup_internal.hpp"

namespace usersync {
namespace fs = std::filesystem;
using namespace backup_detail;

namespace {

constexpr std::size_t hint_backups_listed = 3;
constexpr std::size_t check_lines_kept = 5;

// A manifest outlives its backup only when a process was killed between two renames or two
// unlinks. Such a manifest is removed once it is an hour old, so that another process's
// backup, published between its two renames at this very moment, is never touched.
constexpr auto orphaned_manifest_age = std::chrono::hours(1);

void remove_orphaned_manifests(const fs::path& dir, sys_time now) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& mf = entry.path();
    // Only a manifest of a name list_backups would recognize: nothing else here is touched.
    if (mf.extension() != ".json" || !parse_backup_file_name(mf.stem().string())) continue;
    std::error_code stat_ec;
    if (fs::exists(mf.parent_path() / mf.stem(), stat_ec) || stat_ec) continue;
    const auto written = fs::last_write_time(mf, stat_ec);
    if (stat_ec) continue;
    const auto written_at = std::chrono::file_clock::to_sys(written);
    if (now - written_at > orphaned_manifest_age) fs::remove(mf, stat_ec);
  }
}

void classify(backup_entry& e) {
  const fs::path mf = manifest_path(e.file);
  std::error_code ec;
  if (!fs::exists(mf, ec)) {
    e.state = backup_state::unverified;
    e.state_detail = "no manifest";
    return;
  }
  try {
    std::ifstream in(mf, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    e.manifest = manifest_from_json(text.str(), e.file);
  } catch (const std::exception& ex) {
    e.state = backup_state::unverified;
    e.state_detail = ex.what();
    return;
  }
  if (e.manifest->integrity != "ok") {
    e.state = backup_state::damaged;
    e.state_detail = "integrity check failed when it was made";
  } else if (e.manifest->size_bytes != e.size_bytes) {
    e.state = backup_state::damaged;
    e.state_detail = "size changed since it was verified";
  } else {
    e.state = backup_state::verified;
  }
}

// "PRAGMA quick_check reports: ..." or "" when the database is fine.
std::string quick_check_problem(const fs::path& db_file) {
  try {
    SQLite::Database db(db_file, SQLite::OPEN_READONLY);
    SQLite::Statement check(db, "PRAGMA quick_check");
    std::string answer;
    std::size_t lines = 0;
    while (check.executeStep() && lines++ < check_lines_kept) {
      answer += (answer.empty() ? "" : "; ") + check.getColumn(0).getString();
    }
    return answer == "ok" ? std::string{} : "PRAGMA quick_check reports: " + answer;
  } catch (const SQLite::Exception& e) {
    const int code = e.getErrorCode() & 0xff;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return e.what();
    throw std::runtime_error("cannot check database " + db_file.string() + ": " + e.what() +
                             "; check that this user may read it and its directory");
  }
}

// Absolute paths throughout, so the command can be pasted from any directory.
std::string restore_hint(const fs::path& db_file, const fs::path& backups_dir) {
  const auto now = std::chrono::system_clock::now();
  const fs::path data_dir = fs::absolute(db_file).parent_path();
  std::vector<backup_entry> verified;
  for (auto& e : list_backups(backups_dir)) {
    if (e.state == backup_state::verified && verified.size() < hint_backups_listed) verified.push_back(e);
  }
  std::ostringstream out;
  if (verified.empty()) {
    out << "There is no verified backup in " << fs::absolute(backups_dir).string()
        << ". Restore one made elsewhere with `usersync restore --data-dir " << data_dir.string()
        << " FILE`, or move " << fs::absolute(db_file).string() << " (and its -wal) aside to start empty "
        << "and let the provider's webhooks fill it again.";
    return out.str();
  }
  out << "The newest verified backups in " << fs::absolute(backups_dir).string() << ":\n";
  for (const auto& e : verified) {
    out << "  " << e.file.filename().string() << "  "
        << human_age(std::chrono::duration_cast<std::chrono::seconds>(now - e.created_at)) << " old, "
        << human_size(e.size_bytes) << ", schema " << e.manifest->schema_version << ", "
        << "users: " << e.manifest->user_count << "\n";
  }
  out << "Restore the newest with:\n  usersync restore --data-dir " << data_dir.string() << " "
      << fs::absolute(verified.front().file).string() << "\n"
      << "It verifies the backup first, keeps the damaged database beside the restored one, "
      << "and prints how to undo.";
  return out.str();
}

}  // namespace

std::vector<backup_entry> list_backups(const fs::path& dir) {
  std::vector<backup_entry> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const auto name = parse_backup_file_name(item.path().filename().string());
    if (!name || !item.is_regular_file(ec)) continue;
    backup_entry e;
    e.file = item.path();
    e.created_at = name->created_at;
    e.label = name->label;
    e.size_bytes = item.file_size(ec);
    classify(e);
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const backup_entry& a, const backup_entry& b) {
    if (a.created_at != b.created_at) return a.created_at > b.created_at;
    return a.file.filename() > b.file.filename();
  });
  return out;
}

std::vector<backup_entry> backups_to_prune(const std::vector<backup_entry>& newest_first,
                                           const retention_policy& policy, sys_time now) {
  std::vector<bool> keep(newest_first.size(), false);
  for (std::size_t i = 0; i < newest_first.size() && i < policy.keep_last; ++i) keep[i] = true;
  const auto newest_verified =
      std::find_if(newest_first.begin(), newest_first.end(),
                   [](const backup_entry& e) { return e.state == backup_state::verified; });
  if (newest_verified != newest_first.end()) keep[static_cast<std::size_t>(newest_verified - newest_first.begin())] = true;
  if (policy.keep_daily_days > 0) {
    using std::chrono::days;
    const auto oldest_day = std::chrono::floor<days>(now) - days(policy.keep_daily_days - 1);
    std::set<std::chrono::sys_days> kept_days;
    for (std::size_t i = 0; i < newest_first.size(); ++i) {
      const auto day = std::chrono::floor<days>(newest_first[i].created_at);
      if (newest_first[i].state != backup_state::verified || day < oldest_day) continue;
      if (kept_days.insert(day).second) keep[i] = true;
    }
  }
  std::vector<backup_entry> out;
  for (std::size_t i = 0; i < newest_first.size(); ++i) {
    if (!keep[i]) out.push_back(newest_first[i]);
  }
  return out;
}

std::vector<fs::path> prune_backups(const fs::path& dir, const retention_policy& policy, sys_time now) {
  std::vector<fs::path> removed;
  std::string failures;
  for (const auto& e : backups_to_prune(list_backups(dir), policy, now)) {
    std::error_code ec;
    // The backup first: a kill in between leaves a manifest that nothing lists, not a backup
    // that `backups` would show as unverified.
    fs::remove(e.file, ec);
    if (!ec) fs::remove(manifest_path(e.file), ec);
    if (ec) {
      failures += (failures.empty() ? "" : "; ") + e.file.string() + ": " + ec.message();
    } else {
      removed.push_back(e.file);
    }
  }
  remove_orphaned_manifests(dir, now);
  if (!removed.empty()) backup_files::fsync_dir(dir);
  if (!failures.empty()) throw std::runtime_error("cannot remove old backups: " + failures);
  return removed;
}

void check_database_or_explain(const fs::path& db_file, const fs::path& backups_dir) {
  std::error_code ec;
  if (!fs::exists(db_file, ec)) return;
  const std::string problem = quick_check_problem(db_file);
  if (problem.empty()) return;
  throw damaged_database_error("database " + db_file.string() + " is damaged: " + problem +
                               ". Nothing was changed.\n" + restore_hint(db_file, backups_dir));
}

}  // namespace usersync
