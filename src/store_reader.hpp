#pragma once
// The read side of the store module: typed queries over read-only connections, used from HTTP
// threads. In WAL mode each query reads a consistent snapshot and never waits for the writer.
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace SQLite { class Database; }

namespace usersync {

struct user_view {
  std::string clerk_id;
  std::optional<std::string> email, first_name, last_name;
  std::string role, status, created_at, updated_at, synced_at;
  std::int64_t change_seq = 0;
  std::string data_json;  // user_data as one JSON object: {"key": value, ...}
};

struct tombstone_view {
  std::string clerk_id;
  std::string deleted_at;
  std::int64_t change_seq = 0;
};

// One entry of the change feed: a user as it is now, or its tombstone.
struct change_view {
  std::int64_t change_seq = 0;
  std::optional<user_view> user;
  std::optional<tombstone_view> deleted;
};

struct data_item {
  std::string key;
  std::string value_json;
  std::string updated_at;
};

// One read-only connection; not thread-safe (the pool hands it to one thread at a time).
// Every query throws storage_error.
class store_reader {
 public:
  store_reader(const std::filesystem::path& db_file, int busy_timeout_ms);
  ~store_reader();

  std::optional<user_view> user(std::string_view clerk_id);
  std::optional<tombstone_view> tombstone(std::string_view clerk_id);
  // Case-insensitive (ASCII), through the users_email index.
  std::vector<user_view> users_by_email(std::string_view email);
  // Changes with change_seq > after_seq applied at or after `since` (ISO-8601; "" for all),
  // in change_seq order.
  std::vector<change_view> changes(std::string_view since, std::int64_t after_seq, int limit);
  std::optional<data_item> data(std::string_view clerk_id, std::string_view key);
  std::int64_t user_count();
  int schema_version();

 private:
  struct statements;
  std::filesystem::path file_;
  std::unique_ptr<SQLite::Database> db_;
  std::unique_ptr<statements> stmts_;
};

// A fixed set of readers shared by the HTTP threads.
class reader_pool {
 public:
  reader_pool(const std::filesystem::path& db_file, std::size_t size, int busy_timeout_ms);
  ~reader_pool();

  // A reader for the current scope; returned to the pool when destroyed.
  class lease {
   public:
    lease(reader_pool& pool, std::unique_ptr<store_reader> reader);
    ~lease();
    lease(lease&&) = default;
    store_reader* operator->() { return reader_.get(); }

   private:
    reader_pool* pool_;
    std::unique_ptr<store_reader> reader_;
  };
  // Waits when every reader is in use (the pool is sized to the HTTP threads, so rarely).
  lease acquire();

 private:
  void release(std::unique_ptr<store_reader> reader);
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<store_reader>> idle_;
};

}  // namespace usersync
