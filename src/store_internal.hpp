#pragma once
// Internal to the store module (store.cpp, store_reader.cpp): SQLite's exceptions become
// storage_error, so callers act on a kind without knowing the backend; cached statements
// are reset around each use.
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <filesystem>

#include "store.hpp"

namespace usersync::detail {

inline storage_failure classify(int sqlite_code) {
  switch (sqlite_code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return storage_failure::busy;
    case SQLITE_FULL:
      return storage_failure::full;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return storage_failure::io;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return storage_failure::corrupt;
    default:
      return storage_failure::other;
  }
}

// Runs `work`, turning SQLite's exceptions into storage_error naming the file.
template <class Work>
auto translate_errors(const std::filesystem::path& file, Work&& work) -> decltype(work()) {
  try {
    return work();
  } catch (const SQLite::Exception& e) {
    throw storage_error(classify(e.getErrorCode()), file.string() + ": " + e.what());
  }
}

// Resets a cached statement before use (a previous use may have thrown mid-step) and after.
class statement_use {
 public:
  explicit statement_use(SQLite::Statement& s) : s_(s) {
    s_.tryReset();
    s_.clearBindings();
  }
  ~statement_use() { s_.tryReset(); }
  statement_use(const statement_use&) = delete;
  statement_use& operator=(const statement_use&) = delete;
  SQLite::Statement* operator->() { return &s_; }
  SQLite::Statement& operator*() { return s_; }

 private:
  SQLite::Statement& s_;
};

}  // namespace usersync::detail
