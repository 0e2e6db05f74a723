#pragma once
// Schema migrations: migrations/NNNN_title.up.sql, compiled into the binary, applied in
// order, each in its own transaction, and recorded in the database's schema_migrations table.
#include <vector>

namespace SQLite { class Database; }

namespace usersync {

struct migration {
  int version;
  const char* title;
  const char* sql;
};

// Every migration this binary knows, in increasing version order (generated at build time).
const std::vector<migration>& embedded_migrations();

// The highest version this binary knows.
int latest_schema_version();

struct migration_report {
  int from_version = 0;
  int to_version = 0;
  std::vector<int> applied;
};

// The version recorded in the database; 0 for a database never migrated.
int current_schema_version(SQLite::Database& db);

// Applies pending migrations. Throws std::runtime_error, without changing anything, when the
// database records a version newer than this binary knows (an older binary must not write
// to a schema it does not understand).
migration_report apply_migrations(SQLite::Database& db);

}  // namespace usersync
