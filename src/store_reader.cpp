#include "store_reader.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include "migrations.hpp"
#include "store_internal.hpp"

namespace usersync {
using detail::statement_use;
using detail::translate_errors;

namespace sql {

#define USERSYNC_USER_COLUMNS                                                           \
  "u.clerk_id, u.email, u.first_name, u.last_name, u.role, u.status, u.created_at,"     \
  " u.updated_at, u.synced_at, u.change_seq,"                                           \
  " (SELECT json_group_object(d.key, json(d.value)) FROM user_data AS d WHERE d.user_id = u.id)"

constexpr const char* user_by_id = "SELECT " USERSYNC_USER_COLUMNS " FROM users AS u WHERE u.clerk_id = ?1";
constexpr const char* users_by_email =
    "SELECT " USERSYNC_USER_COLUMNS " FROM users AS u WHERE u.email = ?1 COLLATE NOCASE"
    " ORDER BY u.change_seq";
constexpr const char* tombstone =
    "SELECT clerk_id, deleted_at, change_seq FROM deleted_users WHERE clerk_id = ?1";
// Users as they are now and tombstones, merged in change order. Tombstone rows carry NULL in
// the user columns and their deletion time in the last one.
constexpr const char* changes =
    "SELECT " USERSYNC_USER_COLUMNS ", NULL FROM users AS u"
    " WHERE u.change_seq > ?1 AND u.synced_at >= ?2"
    " UNION ALL"
    " SELECT t.clerk_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, t.change_seq, NULL,"
    " t.deleted_at FROM deleted_users AS t WHERE t.change_seq > ?1 AND t.deleted_at >= ?2"
    " ORDER BY 10 LIMIT ?3";
constexpr const char* data_item =
    "SELECT d.key, d.value, d.updated_at FROM user_data AS d JOIN users AS u ON u.id = d.user_id"
    " WHERE u.clerk_id = ?1 AND d.key = ?2";

#undef USERSYNC_USER_COLUMNS
}  // namespace sql

namespace {

std::optional<std::string> optional_text(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getString();
}

user_view read_user(SQLite::Statement& q) {
  return {q.getColumn(0).getString(), optional_text(q.getColumn(1)), optional_text(q.getColumn(2)),
          optional_text(q.getColumn(3)), q.getColumn(4).getString(), q.getColumn(5).getString(),
          q.getColumn(6).getString(), q.getColumn(7).getString(), q.getColumn(8).getString(),
          q.getColumn(9).getInt64(), q.getColumn(10).getString()};
}

}  // namespace

// Prepared once per connection: the read path is the hot one.
struct store_reader::statements {
  explicit statements(SQLite::Database& db)
      : user_by_id(db, sql::user_by_id),
        users_by_email(db, sql::users_by_email),
        tombstone(db, sql::tombstone),
        changes(db, sql::changes),
        data_item(db, sql::data_item) {}
  SQLite::Statement user_by_id, users_by_email, tombstone, changes, data_item;
};

store_reader::store_reader(const std::filesystem::path& db_file, int busy_timeout_ms) : file_(db_file) {
  translate_errors(file_, [&] {
    db_ = std::make_unique<SQLite::Database>(file_, SQLite::OPEN_READONLY);
    db_->setBusyTimeout(busy_timeout_ms);
    stmts_ = std::make_unique<statements>(*db_);
    return 0;
  });
}

store_reader::~store_reader() = default;

std::optional<user_view> store_reader::user(std::string_view clerk_id) {
  return translate_errors(file_, [&]() -> std::optional<user_view> {
    statement_use q(stmts_->user_by_id);
    q->bind(1, std::string(clerk_id));
    if (!q->executeStep()) return std::nullopt;
    return read_user(*q);
  });
}

std::optional<tombstone_view> store_reader::tombstone(std::string_view clerk_id) {
  return translate_errors(file_, [&]() -> std::optional<tombstone_view> {
    statement_use q(stmts_->tombstone);
    q->bind(1, std::string(clerk_id));
    if (!q->executeStep()) return std::nullopt;
    return tombstone_view{q->getColumn(0).getString(), q->getColumn(1).getString(),
                          q->getColumn(2).getInt64()};
  });
}

std::vector<user_view> store_reader::users_by_email(std::string_view email) {
  return translate_errors(file_, [&] {
    statement_use q(stmts_->users_by_email);
    q->bind(1, std::string(email));
    std::vector<user_view> out;
    while (q->executeStep()) out.push_back(read_user(*q));
    return out;
  });
}

std::vector<change_view> store_reader::changes(std::string_view since, std::int64_t after_seq, int limit) {
  return translate_errors(file_, [&] {
    statement_use q(stmts_->changes);
    q->bind(1, after_seq);
    q->bind(2, std::string(since));
    q->bind(3, limit);
    std::vector<change_view> out;
    while (q->executeStep()) {
      change_view c;
      c.change_seq = q->getColumn(9).getInt64();
      if (q->getColumn(11).isNull()) {
        c.user = read_user(*q);
      } else {
        c.deleted = tombstone_view{q->getColumn(0).getString(), q->getColumn(11).getString(), c.change_seq};
      }
      out.push_back(std::move(c));
    }
    return out;
  });
}

std::optional<data_item> store_reader::data(std::string_view clerk_id, std::string_view key) {
  return translate_errors(file_, [&]() -> std::optional<data_item> {
    statement_use q(stmts_->data_item);
    q->bind(1, std::string(clerk_id));
    q->bind(2, std::string(key));
    if (!q->executeStep()) return std::nullopt;
    return data_item{q->getColumn(0).getString(), q->getColumn(1).getString(), q->getColumn(2).getString()};
  });
}

std::int64_t store_reader::user_count() {
  return translate_errors(file_, [&] { return db_->execAndGet("SELECT count(*) FROM users").getInt64(); });
}

int store_reader::schema_version() {
  return translate_errors(file_, [&] { return current_schema_version(*db_); });
}

reader_pool::reader_pool(const std::filesystem::path& db_file, std::size_t size, int busy_timeout_ms) {
  for (std::size_t i = 0; i < size; ++i) idle_.push_back(std::make_unique<store_reader>(db_file, busy_timeout_ms));
}

reader_pool::~reader_pool() = default;

reader_pool::lease::lease(reader_pool& pool, std::unique_ptr<store_reader> reader)
    : pool_(&pool), reader_(std::move(reader)) {}

reader_pool::lease::~lease() {
  if (reader_) pool_->release(std::move(reader_));
}

reader_pool::lease reader_pool::acquire() {
  std::unique_lock lock(mutex_);
  available_.wait(lock, [&] { return !idle_.empty(); });
  auto reader = std::move(idle_.back());
  idle_.pop_back();
  return lease(*this, std::move(reader));
}

void reader_pool::release(std::unique_ptr<store_reader> reader) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(reader));
  }
  available_.notify_one();
}

}  // namespace usersync
