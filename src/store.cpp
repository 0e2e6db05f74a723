#include "store.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "store_internal.hpp"
#include "time_format.hpp"

namespace usersync {
using detail::statement_use;
using detail::translate_errors;

namespace sql {

constexpr const char* seen_delivery = "SELECT 1 FROM webhook_deliveries WHERE svix_id = ?1";
constexpr const char* record_delivery =
    "INSERT INTO webhook_deliveries (svix_id, event_type, clerk_id, outcome, received_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* is_deleted = "SELECT 1 FROM deleted_users WHERE clerk_id = ?1";
constexpr const char* find_user =
    "SELECT id, provider_updated_ms, first_name, last_name FROM users WHERE clerk_id = ?1";
constexpr const char* insert_user =
    "INSERT INTO users (clerk_id, email, first_name, last_name, role, status, created_at,"
    " updated_at, provider_updated_ms, synced_at, clerk_json, change_seq)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
constexpr const char* update_user =
    "UPDATE users SET clerk_id = ?1, email = ?2, first_name = ?3, last_name = ?4, role = ?5,"
    " status = ?6, created_at = ?7, updated_at = ?8, provider_updated_ms = ?9,"
    " synced_at = ?10, clerk_json = ?11, change_seq = ?12 WHERE id = ?13";
constexpr const char* put_data =
    "INSERT INTO user_data (user_id, key, value, updated_at) VALUES (?1, ?2, json(?3), ?4)"
    " ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value,"
    " updated_at = excluded.updated_at";
// Appends {first_name, last_name, timestamp} to the user's name_history array.
constexpr const char* append_name =
    "INSERT INTO user_data (user_id, key, value, updated_at) VALUES (?1, 'name_history',"
    " json_array(json_object('first_name', ?2, 'last_name', ?3, 'timestamp', ?4)), ?5)"
    " ON CONFLICT (user_id, key) DO UPDATE SET value = json_insert(user_data.value, '$[#]',"
    " json_object('first_name', ?2, 'last_name', ?3, 'timestamp', ?4)), updated_at = ?5";
constexpr const char* delete_user = "DELETE FROM users WHERE clerk_id = ?1";
constexpr const char* insert_tombstone =
    "INSERT INTO deleted_users (clerk_id, deleted_at, svix_id, change_seq) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (clerk_id) DO NOTHING";
// The feed's position; the single writer makes it increase in commit order.
constexpr const char* read_change_seq = "SELECT last_seq FROM change_sequence WHERE id = 1";
constexpr const char* save_change_seq = "UPDATE change_sequence SET last_seq = ?1 WHERE id = 1";
constexpr const char* record_rejected =
    "INSERT INTO rejected_deliveries (svix_id, received_at, error, body) VALUES (?1, ?2, ?3, ?4)";
// Must change the row: SQLite writes no page for an UPDATE that leaves it as it was.
constexpr const char* probe = "UPDATE readiness_probe SET probes = probes + 1 WHERE id = 1";
constexpr const char* begin = "BEGIN IMMEDIATE";
constexpr const char* commit = "COMMIT";
constexpr const char* rollback = "ROLLBACK";
constexpr const char* savepoint = "SAVEPOINT delivery";
constexpr const char* release = "RELEASE delivery";
constexpr const char* rollback_to = "ROLLBACK TO delivery";
constexpr const char* prune_deliveries = "DELETE FROM webhook_deliveries WHERE received_at < ?1";
constexpr const char* prune_rejected = "DELETE FROM rejected_deliveries WHERE received_at < ?1";

}  // namespace sql

// Statements prepared once per connection, after migrations have created the tables.
struct store::statements {
  explicit statements(SQLite::Database& db)
      : seen_delivery(db, sql::seen_delivery),
        record_delivery(db, sql::record_delivery),
        is_deleted(db, sql::is_deleted),
        find_user(db, sql::find_user),
        insert_user(db, sql::insert_user),
        update_user(db, sql::update_user),
        put_data(db, sql::put_data),
        append_name(db, sql::append_name),
        delete_user(db, sql::delete_user),
        insert_tombstone(db, sql::insert_tombstone),
        read_change_seq(db, sql::read_change_seq),
        save_change_seq(db, sql::save_change_seq),
        record_rejected(db, sql::record_rejected),
        begin(db, sql::begin),
        commit(db, sql::commit),
        rollback(db, sql::rollback),
        savepoint(db, sql::savepoint),
        release(db, sql::release),
        rollback_to(db, sql::rollback_to) {}

  SQLite::Statement seen_delivery, record_delivery, is_deleted, find_user, insert_user,
      update_user, put_data, append_name, delete_user, insert_tombstone, read_change_seq, save_change_seq,
      record_rejected, begin, commit, rollback, savepoint, release, rollback_to;
};

namespace {

void bind_optional(SQLite::Statement& s, int index, const std::optional<std::string>& value) {
  if (value) {
    s.bind(index, *value);
  } else {
    s.bind(index);  // NULL
  }
}

// Creates the database file owner-only before SQLite opens it, so it is never briefly
// readable by others whatever the umask. SQLite gives -wal and -shm the same mode.
void create_private_file(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw storage_error(storage_failure::io,
                        "cannot create " + file.string() + ": " + std::strerror(errno));
  }
  ::close(fd);
}

void configure_connection(SQLite::Database& db, const store_options& options) {
  db.setBusyTimeout(static_cast<int>(options.busy_timeout.count()));
  const std::string mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
  if (mode != "wal") {
    throw storage_error(storage_failure::other,
                        db.getFilename() + ": could not switch to WAL mode (got " + mode + ")");
  }
  db.exec("PRAGMA synchronous = FULL");
  // Once a long reader (an admin's shell) lets a checkpoint finish, the WAL file is cut back
  // to this size instead of keeping its high-water mark.
  db.exec("PRAGMA journal_size_limit = 4194304");
  db.exec("PRAGMA foreign_keys = ON");
}

bool exists(statement_use& s) { return s->executeStep(); }

}  // namespace

std::string_view to_string(apply_outcome outcome) {
  switch (outcome) {
    case apply_outcome::applied: return "applied";
    case apply_outcome::duplicate: return "duplicate";
    case apply_outcome::stale: return "stale";
    case apply_outcome::ignored: return "ignored";
  }
  return "unknown";
}

store::store(const std::filesystem::path& db_file, const store_options& options)
    : file_(db_file) {
  translate_errors(file_, [&] {
    if (!std::filesystem::exists(file_)) create_private_file(file_);
    db_ = std::make_unique<SQLite::Database>(file_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    configure_connection(*db_, options);
    return 0;
  });
}

store::~store() = default;

migration_report store::migrate() {
  return translate_errors(file_, [&] {
    auto report = apply_migrations(*db_);
    stmts_ = std::make_unique<statements>(*db_);
    return report;
  });
}

apply_outcome store::apply(const delivery& d) {
  write_batch batch(*this);
  const apply_outcome outcome = batch.apply(d);
  batch.commit();
  return outcome;
}

namespace {
void run(SQLite::Statement& s) {
  statement_use use(s);
  use->exec();
}
}  // namespace

write_batch::write_batch(store& s) : store_(s) {
  store_.batch_seq_.reset();
  translate_errors(store_.file_, [&] {
    run(store_.stmts_->begin);
    return 0;
  });
  open_ = true;
}

write_batch::~write_batch() {
  if (!open_) return;
  // Destructors never throw: a failed rollback leaves SQLite to roll back on the next BEGIN.
  statement_use rollback(store_.stmts_->rollback);
  rollback->tryExecuteStep();
}

template <class Work>
auto write_batch::in_savepoint(Work&& work) -> decltype(work()) {
  return translate_errors(store_.file_, [&] {
    run(store_.stmts_->savepoint);
    const auto seq_before = store_.batch_seq_;
    try {
      auto result = work();
      run(store_.stmts_->release);
      return result;
    } catch (const SQLite::Exception& e) {
      // Only this delivery's changes are undone, its change_seq numbers included (so the feed
      // has no gap); busy, full and I/O errors are rethrown to abort the whole batch, as
      // SQLite may already have rolled the transaction back.
      if (detail::classify(e.getErrorCode()) == storage_failure::other) {
        run(store_.stmts_->rollback_to);
        run(store_.stmts_->release);
        store_.batch_seq_ = seq_before;
      }
      throw;
    }
  });
}

apply_outcome write_batch::apply(const delivery& d) {
  return in_savepoint([&] { return store_.apply_in_transaction(d); });
}

void write_batch::record_rejected(const rejected_delivery& r) {
  in_savepoint([&] {
    store_.insert_rejected(r);
    return 0;
  });
}

void write_batch::probe() {
  in_savepoint([&] {
    SQLite::Statement touch(*store_.db_, sql::probe);
    return touch.exec();
  });
}

void write_batch::commit() {
  translate_errors(store_.file_, [&] {
    store_.save_change_seq();
    run(store_.stmts_->commit);
    return 0;
  });
  open_ = false;
}

apply_outcome store::apply_in_transaction(const delivery& d) {
  {
    statement_use seen(stmts_->seen_delivery);
    seen->bind(1, d.svix_id);
    if (exists(seen)) return apply_outcome::duplicate;
  }
  apply_outcome outcome = apply_outcome::ignored;
  switch (d.event.kind) {
    case event_kind::user_created:
    case event_kind::user_updated: outcome = upsert_user(d); break;
    case event_kind::user_deleted: outcome = delete_user(d); break;
    case event_kind::other: break;
  }
  statement_use record(stmts_->record_delivery);
  record->bind(1, d.svix_id);
  record->bind(2, d.event.type);
  bind_optional(*record, 3, d.event.subject_id);
  record->bind(4, std::string(to_string(outcome)));
  record->bind(5, iso8601_utc(d.received_at));
  record->exec();
  return outcome;
}

namespace {

struct stored_user {
  std::int64_t id;
  std::int64_t provider_updated_ms;
  std::optional<std::string> first_name;
  std::optional<std::string> last_name;
};

std::optional<std::string> optional_text(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getString();
}

void bind_user_columns(SQLite::Statement& s, const user_profile& u, sys_time synced_at) {
  s.bind(1, u.clerk_id);
  bind_optional(s, 2, u.primary_email);
  bind_optional(s, 3, u.first_name);
  bind_optional(s, 4, u.last_name);
  s.bind(5, u.role);
  s.bind(6, u.status);
  s.bind(7, iso8601_utc(u.created_at_ms));
  s.bind(8, iso8601_utc(u.updated_at_ms));
  s.bind(9, static_cast<std::int64_t>(u.updated_at_ms));
  s.bind(10, iso8601_utc(synced_at));
  s.bind(11, u.data_json);
}

}  // namespace

apply_outcome store::upsert_user(const delivery& d) {
  const user_profile& u = *d.event.user;
  {
    statement_use deleted(stmts_->is_deleted);
    deleted->bind(1, u.clerk_id);
    if (exists(deleted)) return apply_outcome::stale;  // a late event for a deleted user
  }
  std::optional<stored_user> current;
  {
    statement_use find(stmts_->find_user);
    find->bind(1, u.clerk_id);
    if (find->executeStep()) {
      current = stored_user{find->getColumn(0).getInt64(), find->getColumn(1).getInt64(),
                            optional_text(find->getColumn(2)), optional_text(find->getColumn(3))};
    }
  }
  // Order comes from the provider's updated_at: an equal or older version changes nothing.
  if (current && u.updated_at_ms <= current->provider_updated_ms) return apply_outcome::stale;

  const std::string now = iso8601_utc(d.received_at);
  std::int64_t user_id = 0;
  if (current) {
    statement_use update(stmts_->update_user);
    bind_user_columns(*update, u, d.received_at);
    update->bind(12, next_change_seq());
    update->bind(13, static_cast<std::int64_t>(current->id));
    update->exec();
    user_id = current->id;
  } else {
    statement_use insert(stmts_->insert_user);
    bind_user_columns(*insert, u, d.received_at);
    insert->bind(12, next_change_seq());
    insert->exec();
    user_id = db_->getLastInsertRowid();
    // A user we first hear of (user.created, or user.updated for an unknown user) gets its
    // sign-up data once.
    for (const auto& [key, json] :
         {std::pair<const char*, std::string>{"signup_date",
                                              "\"" + iso8601_utc(u.created_at_ms) + "\""},
          std::pair<const char*, std::string>{"signup_source", "\"clerk\""}}) {
      statement_use put(stmts_->put_data);
      put->bind(1, static_cast<std::int64_t>(user_id));
      put->bind(2, key);
      put->bind(3, json);
      put->bind(4, now);
      put->exec();
    }
  }
  // The first known name starts the history; every change after it is appended.
  if (!current || current->first_name != u.first_name || current->last_name != u.last_name) {
    statement_use append(stmts_->append_name);
    append->bind(1, static_cast<std::int64_t>(user_id));
    bind_optional(*append, 2, u.first_name);
    bind_optional(*append, 3, u.last_name);
    append->bind(4, iso8601_utc(u.updated_at_ms));
    append->bind(5, now);
    append->exec();
  }
  return apply_outcome::applied;
}

std::int64_t store::next_change_seq() {
  if (!batch_seq_) {
    statement_use read(stmts_->read_change_seq);
    if (!read->executeStep()) throw storage_error(storage_failure::other, "change_sequence has no row");
    batch_seq_ = read->getColumn(0).getInt64();
  }
  return ++*batch_seq_;
}

void store::save_change_seq() {
  if (!batch_seq_) return;  // no change in this batch took a number
  statement_use save(stmts_->save_change_seq);
  save->bind(1, *batch_seq_);
  save->exec();
}

apply_outcome store::delete_user(const delivery& d) {
  const std::string& clerk_id = *d.event.subject_id;
  {
    statement_use deleted(stmts_->is_deleted);
    deleted->bind(1, clerk_id);
    if (exists(deleted)) return apply_outcome::stale;  // already deleted by another delivery
  }
  {
    statement_use del(stmts_->delete_user);  // user_data goes with it (ON DELETE CASCADE)
    del->bind(1, clerk_id);
    del->exec();
  }
  statement_use tombstone(stmts_->insert_tombstone);
  tombstone->bind(1, clerk_id);
  tombstone->bind(2, iso8601_utc(d.received_at));
  tombstone->bind(3, d.svix_id);
  tombstone->bind(4, next_change_seq());
  tombstone->exec();
  return apply_outcome::applied;
}

void store::record_rejected(const rejected_delivery& r) {
  write_batch batch(*this);
  batch.record_rejected(r);
  batch.commit();
}

void store::insert_rejected(const rejected_delivery& r) {
  statement_use insert(stmts_->record_rejected);
  insert->bind(1, r.svix_id);
  insert->bind(2, iso8601_utc(r.received_at));
  insert->bind(3, r.error);
  insert->bind(4, r.body);
  insert->exec();
}

std::int64_t store::prune_deliveries(sys_time cutoff) {
  return translate_errors(file_, [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    std::int64_t removed = 0;
    for (const char* text : {sql::prune_deliveries, sql::prune_rejected}) {
      SQLite::Statement prune(*db_, text);
      prune.bind(1, iso8601_utc(cutoff));
      removed += prune.exec();
    }
    tx.commit();
    return removed;
  });
}

void store::checkpoint() {
  translate_errors(file_, [&] { return db_->exec("PRAGMA wal_checkpoint(TRUNCATE)"); });
}

}  // namespace usersync
