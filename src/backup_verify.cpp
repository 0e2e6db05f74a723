// Checking a backup: the integrity check and facts of a copy, and verify_backup.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "backup.hpp"
#include "backup_files.hpp"
#include "backup_internal.hpp"
#include "migrations.hpp"

namespace usersync {
namespace fs = std::filesystem;
namespace files = backup_files;
using namespace backup_detail;

namespace {

constexpr const char* users_table_exists_sql =
    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'users'";
constexpr const char* count_users_sql = "SELECT count(*) FROM users";
constexpr std::size_t integrity_lines_kept = 5;

// SQLite's progress callback: a non-zero answer interrupts the running statement.
int stop_if_requested(void* token) {
  return static_cast<const std::stop_token*>(token)->stop_requested() ? 1 : 0;
}

// "file:/abs/path?immutable=1", with the characters a URI gives meaning to escaped.
std::string immutable_uri(const fs::path& file) {
  std::string uri = "file:";
  for (char c : fs::absolute(file).string()) {
    if (c == '%' || c == '?' || c == '#') {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
      uri += buf;
    } else {
      uri += c;
    }
  }
  return uri + "?immutable=1";
}

void throw_if_stopped(const std::stop_token& stop, const fs::path& file) {
  if (stop.stop_requested()) throw std::runtime_error("stopped while checking " + file.string() + ": usersync is shutting down");
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

namespace backup_detail {

database_facts inspect_copy(const fs::path& file, std::stop_token stop) {
  database_facts facts;
  try {
    SQLite::Database db(immutable_uri(file), SQLite::OPEN_READONLY | SQLite::OPEN_URI);
    if (stop.stop_possible()) sqlite3_progress_handler(db.getHandle(), 10000, stop_if_requested, &stop);
    SQLite::Statement check(db, "PRAGMA integrity_check");
    std::vector<std::string> lines;
    while (check.executeStep() && lines.size() < integrity_lines_kept) lines.push_back(check.getColumn(0).getString());
    for (const auto& line : lines) facts.integrity += (facts.integrity.empty() ? "" : "; ") + line;
    if (facts.integrity != "ok") return facts;
    facts.page_size = db.execAndGet("PRAGMA page_size").getInt64();
    facts.page_count = db.execAndGet("PRAGMA page_count").getInt64();
    facts.schema_version = current_schema_version(db);
    if (db.execAndGet(users_table_exists_sql).getInt() > 0) {
      facts.user_count = db.execAndGet(count_users_sql).getInt64();
    }
  } catch (const SQLite::Exception& e) {
    throw_if_stopped(stop, file);
    facts.integrity = std::string("not readable as a database: ") + e.what();
  }
  return facts;
}

}  // namespace backup_detail

backup_verification verify_backup(const fs::path& file, std::stop_token stop) {
  backup_verification r;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    r.problems.push_back(file.string() + " is not a file; `usersync backups` lists the backups");
    return r;
  }
  const fs::path mf = manifest_path(file);
  if (!fs::exists(mf, ec)) {
    r.problems.push_back("no manifest " + mf.string() + ", so its SHA-256 cannot be checked; "
                         "only backups made by usersync can be verified");
  } else {
    try {
      r.manifest = manifest_from_json(read_text(mf), file);
    } catch (const std::exception& e) {
      r.problems.push_back(e.what());
    }
  }
  try {
    r.sha256 = files::sha256_file(file, stop);
  } catch (const std::runtime_error& e) {
    throw_if_stopped(stop, file);
    r.problems.push_back(e.what());
  }
  if (r.manifest) {
    const std::uint64_t size = fs::file_size(file, ec);
    if (size != r.manifest->size_bytes) {
      r.problems.push_back("size is " + std::to_string(size) + " bytes but the manifest records " +
                           std::to_string(r.manifest->size_bytes));
    }
    if (!r.sha256.empty() && r.sha256 != r.manifest->sha256) {
      r.problems.push_back("SHA-256 is " + r.sha256 + " but the manifest records " +
                           r.manifest->sha256 + ": the file changed after it was verified");
    }
    if (r.manifest->integrity != "ok") {
      r.problems.push_back("the manifest records a failed integrity check: " + r.manifest->integrity);
    }
  }
  const database_facts facts = inspect_copy(file, stop);
  r.integrity = facts.integrity;
  r.schema_version = facts.schema_version;
  r.user_count = facts.user_count;
  if (facts.integrity != "ok") r.problems.push_back("PRAGMA integrity_check: " + facts.integrity);
  return r;
}

}  // namespace usersync
