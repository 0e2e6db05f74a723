#include "migrations.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <set>

#include "temp_dir.hpp"

namespace usersync {
namespace {

struct fresh_db {
  test::temp_dir dir;
  std::filesystem::path file = dir.path() / "usersync.db";
  SQLite::Database db{file, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
};

long long scalar(SQLite::Database& db, const std::string& sql) { return db.execAndGet(sql).getInt64(); }

}  // namespace

TEST_CASE("every file in migrations/ is embedded, in increasing version order") {
  std::set<int> on_disk;
  const std::regex name(R"((\d{4})_[a-z0-9_]+\.up\.sql)");
  for (const auto& entry : std::filesystem::directory_iterator(USERSYNC_MIGRATIONS_DIR)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    REQUIRE_MESSAGE(std::regex_match(file, m, name), file);
    on_disk.insert(std::stoi(m[1]));
  }
  std::set<int> embedded;
  int previous = 0;
  for (const migration& m : embedded_migrations()) {
    CHECK(m.version > previous);
    previous = m.version;
    embedded.insert(m.version);
  }
  CHECK(embedded == on_disk);
  CHECK(latest_schema_version() == *on_disk.rbegin());
}

TEST_CASE("an empty database is migrated to the latest version and the steps are recorded") {
  fresh_db f;
  const migration_report report = apply_migrations(f.db);
  CHECK(report.from_version == 0);
  CHECK(report.to_version == latest_schema_version());
  CHECK(report.applied.size() == embedded_migrations().size());
  CHECK(scalar(f.db, "SELECT count(*) FROM schema_migrations") ==
        static_cast<long long>(embedded_migrations().size()));
  CHECK(scalar(f.db, "PRAGMA user_version") == latest_schema_version());
}

TEST_CASE("the schema's tables are STRICT") {
  fresh_db f;
  apply_migrations(f.db);
  SQLite::Statement q(f.db, "SELECT name, strict FROM pragma_table_list WHERE schema = 'main' "
                            "AND type = 'table' AND name NOT LIKE 'sqlite_%'");
  int tables = 0;
  while (q.executeStep()) {
    ++tables;
    CHECK_MESSAGE(q.getColumn(1).getInt() == 1, q.getColumn(0).getString());
  }
  CHECK(tables >= 5);
}

TEST_CASE("migrating an up-to-date database changes nothing and keeps its data") {
  fresh_db f;
  apply_migrations(f.db);
  f.db.exec("INSERT INTO deleted_users (clerk_id, deleted_at, svix_id)"
            " VALUES ('user_x', '2026-01-01T00:00:00.000Z', 'msg_x')");
  const migration_report again = apply_migrations(f.db);
  CHECK(again.applied.empty());
  CHECK(again.from_version == again.to_version);
  CHECK(scalar(f.db, "SELECT count(*) FROM deleted_users") == 1);
  CHECK(scalar(f.db, "SELECT count(*) FROM schema_migrations") ==
        static_cast<long long>(embedded_migrations().size()));
}

TEST_CASE("upgrading a version-1 database numbers its users and tombstones for the change feed") {
  fresh_db f;
  // Build a version-1 database as that release did: migration 1 only, recorded.
  f.db.exec(embedded_migrations().at(0).sql);
  f.db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, title TEXT NOT NULL,"
            " applied_at TEXT NOT NULL) STRICT");
  f.db.exec("INSERT INTO schema_migrations VALUES (1, 'initial_schema', '2026-01-01T00:00:00.000Z')");
  for (const char* id : {"user_a", "user_b", "user_c"}) {
    f.db.exec(std::string("INSERT INTO users (clerk_id, created_at, updated_at, provider_updated_ms,"
                          " synced_at, clerk_json) VALUES ('") + id + "', 'x', 'x', 1, 'x', '{}')");
  }
  f.db.exec("INSERT INTO deleted_users VALUES ('user_d', '2026-01-02T00:00:00.000Z', 'msg_d')");
  f.db.exec("INSERT INTO deleted_users VALUES ('user_e', '2026-01-01T00:00:00.000Z', 'msg_e')");

  const migration_report report = apply_migrations(f.db);
  CHECK(report.from_version == 1);
  CHECK(scalar(f.db, "SELECT count(DISTINCT change_seq) FROM (SELECT change_seq FROM users"
                     " UNION ALL SELECT change_seq FROM deleted_users)") == 5);
  CHECK(scalar(f.db, "SELECT count(*) FROM users WHERE change_seq IS NULL") == 0);
  // Tombstones come after users, in deletion order.
  CHECK(scalar(f.db, "SELECT change_seq FROM deleted_users WHERE clerk_id = 'user_e'") == 4);
  CHECK(scalar(f.db, "SELECT change_seq FROM deleted_users WHERE clerk_id = 'user_d'") == 5);
  CHECK(scalar(f.db, "SELECT last_seq FROM change_sequence") == 5);
}

TEST_CASE("a database from a newer usersync is refused and left unchanged") {
  fresh_db f;
  apply_migrations(f.db);
  const int newer = latest_schema_version() + 1;
  f.db.exec("INSERT INTO schema_migrations VALUES (" + std::to_string(newer) +
            ", 'from_the_future', '2030-01-01T00:00:00.000Z')");
  const long long tables = scalar(f.db, "SELECT count(*) FROM sqlite_schema");
  CHECK_THROWS_WITH_AS(apply_migrations(f.db),
                       doctest::Contains("newer than this usersync understands"), std::runtime_error);
  CHECK(scalar(f.db, "SELECT count(*) FROM sqlite_schema") == tables);
  CHECK(current_schema_version(f.db) == newer);
}

TEST_CASE("a failing migration rolls back and records nothing") {
  fresh_db f;
  // A table the first migration creates already exists: its CREATE TABLE fails mid-way.
  f.db.exec("CREATE TABLE deleted_users (x)");
  CHECK_THROWS(apply_migrations(f.db));
  CHECK(current_schema_version(f.db) == 0);
  CHECK(scalar(f.db, "SELECT count(*) FROM sqlite_schema WHERE name = 'users'") == 0);
}

}  // namespace usersync
