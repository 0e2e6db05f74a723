#include "migrations.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "time_format.hpp"

namespace usersync {
namespace {

// Bookkeeping only; the schema itself lives in migrations/*.sql.
constexpr const char* create_bookkeeping_sql =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, title TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT";
constexpr const char* bookkeeping_exists_sql =
    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'";
constexpr const char* max_version_sql = "SELECT coalesce(max(version), 0) FROM schema_migrations";
constexpr const char* record_sql =
    "INSERT INTO schema_migrations (version, title, applied_at) VALUES (?, ?, ?)";

void apply_one(SQLite::Database& db, const migration& m) {
  SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
  db.exec(m.sql);
  SQLite::Statement record(db, record_sql);
  record.bind(1, m.version);
  record.bind(2, m.title);
  record.bind(3, iso8601_utc(std::chrono::system_clock::now()));
  record.exec();
  // user_version mirrors the recorded version so `PRAGMA user_version` tells it at a glance.
  db.exec("PRAGMA user_version = " + std::to_string(m.version));
  tx.commit();
}

}  // namespace

int latest_schema_version() {
  const auto& all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

int current_schema_version(SQLite::Database& db) {
  if (db.execAndGet(bookkeeping_exists_sql).getInt() == 0) return 0;
  return db.execAndGet(max_version_sql).getInt();
}

migration_report apply_migrations(SQLite::Database& db) {
  migration_report report;
  report.from_version = current_schema_version(db);
  if (report.from_version > latest_schema_version()) {
    throw std::runtime_error(
        "database " + db.getFilename() + " has schema version " +
        std::to_string(report.from_version) + ", newer than this usersync " +
        "understands (" + std::to_string(latest_schema_version()) +
        "); run the usersync release that wrote it, or restore a backup made by this one");
  }
  db.exec(create_bookkeeping_sql);
  for (const migration& m : embedded_migrations()) {
    if (m.version <= report.from_version) continue;
    apply_one(db, m);
    report.applied.push_back(m.version);
  }
  report.to_version = current_schema_version(db);
  return report;
}

}  // namespace usersync
