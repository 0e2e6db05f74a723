#pragma once
// The only module that speaks SQL. Owns one read-write SQLite connection; not thread-safe:
// after start-up, only the writer thread calls it.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "clerk_event.hpp"
#include "migrations.hpp"

namespace SQLite { class Database; }

namespace usersync {

using sys_time = std::chrono::system_clock::time_point;

enum class apply_outcome {
  applied,    // the event changed the mirror
  duplicate,  // this svix-id was already accepted: nothing changed
  stale,      // older than what is stored, or for a deleted user: nothing changed
  ignored     // an event type usersync does not apply: recorded only
};
std::string_view to_string(apply_outcome outcome);

// A verified, decoded delivery ready to apply.
struct delivery {
  std::string svix_id;
  clerk_event event;
  sys_time received_at;
};

// A verified delivery whose body could not be decoded: recorded for admins, applied to nothing.
struct rejected_delivery {
  std::string svix_id;
  std::string error;
  std::string body;
  sys_time received_at;
};

// Why a storage operation failed, in terms a caller can act on without knowing the backend.
enum class storage_failure {
  busy,     // another writer holds the lock past the busy timeout: retry later
  full,     // the disk or the database is full: retry once space is back
  io,       // an I/O error: retry later; look at the disk
  corrupt,  // the database file is damaged: operator action needed
  other     // anything else (a bug, a constraint): not worth retrying as is
};

// Thrown by store operations; the transaction in progress has been rolled back.
class storage_error : public std::runtime_error {
 public:
  storage_error(storage_failure kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  storage_failure kind() const { return kind_; }

 private:
  storage_failure kind_;
};

struct store_options {
  std::chrono::milliseconds busy_timeout{5000};
};

class store;

// One write transaction holding several deliveries (group commit). Each delivery runs in its
// own savepoint: one that fails with storage_failure::other (a constraint, a bug) is rolled
// back alone and the rest commit. Busy, full and I/O failures abort the whole batch. Nothing
// is durable until commit() returns; the destructor rolls back an uncommitted batch.
class write_batch {
 public:
  explicit write_batch(store& s);  // BEGIN IMMEDIATE; throws storage_error
  ~write_batch();
  write_batch(const write_batch&) = delete;
  write_batch& operator=(const write_batch&) = delete;

  apply_outcome apply(const delivery& d);
  void record_rejected(const rejected_delivery& r);
  // Writes one page without changing anything: proves the database takes writes.
  void probe();
  void commit();

 private:
  template <class Work>
  auto in_savepoint(Work&& work) -> decltype(work());
  store& store_;
  bool open_ = false;
};

class store {
 public:
  // Opens `db_file` read-write (created 0600 when missing) in WAL mode with
  // synchronous=FULL and foreign keys on. Throws storage_error.
  store(const std::filesystem::path& db_file, const store_options& options);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // Applies pending migrations; throws std::runtime_error for a newer schema.
  migration_report migrate();

  // Applies one delivery in its own transaction (a batch of one) and records its svix-id;
  // returns once the commit is durable. Throws storage_error (rolled back, nothing changed).
  apply_outcome apply(const delivery& d);

  // Records an undecodable but genuine delivery in its own transaction.
  void record_rejected(const rejected_delivery& r);

  // Forgets delivery ids and rejections received before `cutoff`; returns rows deleted.
  std::int64_t prune_deliveries(sys_time cutoff);

  // Copies the WAL into the database and truncates it (on shutdown, and periodically).
  void checkpoint();

  const std::filesystem::path& file() const { return file_; }

 private:
  friend class write_batch;
  struct statements;
  apply_outcome apply_in_transaction(const delivery& d);
  void insert_rejected(const rejected_delivery& r);
  apply_outcome upsert_user(const delivery& d);
  apply_outcome delete_user(const delivery& d);
  std::int64_t next_change_seq();
  void save_change_seq();

  std::filesystem::path file_;
  std::unique_ptr<SQLite::Database> db_;
  std::unique_ptr<statements> stmts_;
  // The change sequence while a write_batch is open: read once, advanced in memory and
  // written back once before COMMIT (an UPDATE ... RETURNING per change cost SQLite an
  // ephemeral table each time). A delivery rolled back to its savepoint gives its numbers back.
  // Set only by taking a number, so set means "write it back".
  std::optional<std::int64_t> batch_seq_;
};

}  // namespace usersync
