#include "store.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "temp_dir.hpp"

// The rules of applying events, checked by reading the database through a separate
// connection, so expected values come from SQLite itself.
namespace usersync {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

const sys_time t0 = std::chrono::sys_days{std::chrono::year{2026} / 1 / 1};

json::object fixture(const std::string& name) {
  std::ifstream in(std::string(USERSYNC_FIXTURES_DIR) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str()).as_object();
}

delivery make_delivery(const std::string& svix_id, const json::object& body, sys_time at = t0) {
  decode_result decoded = decode_clerk_event(json::serialize(body));
  REQUIRE_MESSAGE(decoded.event, decoded.error);
  return {svix_id, std::move(*decoded.event), at};
}

json::object with_user(json::object body, const std::string& id, std::int64_t updated_at) {
  auto& data = body["data"].as_object();
  data["id"] = id;
  if (data.contains("updated_at")) data["updated_at"] = updated_at;
  return body;
}

struct fixture_db {
  test::temp_dir dir;
  std::filesystem::path file = dir.path() / "usersync.db";
  store db{file, store_options{std::chrono::milliseconds(100)}};
  fixture_db() { db.migrate(); }

  // A separate read-only connection: what an admin or another process sees.
  SQLite::Database reader() const { return SQLite::Database(file, SQLite::OPEN_READONLY); }
  std::string text(const std::string& sql) const {
    auto r = reader();
    SQLite::Statement q(r, sql);
    return q.executeStep() && !q.getColumn(0).isNull() ? q.getColumn(0).getString() : "<none>";
  }
  long long count(const std::string& table) const {
    auto r = reader();
    return r.execAndGet("SELECT count(*) FROM " + table).getInt64();
  }
  // Every row of every table, for "changes nothing" checks.
  std::string dump() const {
    std::string out;
    for (const char* table : {"users", "user_data", "deleted_users", "webhook_deliveries"}) {
      auto r = reader();
      SQLite::Statement q(r, std::string("SELECT * FROM ") + table + " ORDER BY 1, 2");
      while (q.executeStep()) {
        for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "|";
        out += "\n";
      }
    }
    return out;
  }
};

constexpr const char* ada = "user_2qYl8v0Hn3mK1pQx6RtZ9wB5cJe";

}  // namespace

TEST_CASE("the database file is owner-only and in WAL mode") {
  fixture_db f;
  struct stat st{};
  REQUIRE(::stat(f.file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(f.text("PRAGMA journal_mode") == "wal");
}

TEST_CASE("user.created writes the user's columns from the payload") {
  fixture_db f;
  CHECK(f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::applied);
  CHECK(f.text("SELECT email FROM users") == "ada.lovelace@example.com");
  CHECK(f.text("SELECT first_name || ' ' || last_name FROM users") == "Ada Lovelace");
  CHECK(f.text("SELECT role || '/' || status FROM users") == "user/active");
  CHECK(f.text("SELECT created_at FROM users") == "2025-01-01T00:00:00.123Z");
  CHECK(f.text("SELECT updated_at FROM users") == "2025-01-01T00:00:00.140Z");
  CHECK(f.text("SELECT provider_updated_ms FROM users") == "1735689600140");
  CHECK(f.text("SELECT clerk_json ->> '$.id' FROM users") == ada);
}

TEST_CASE("user.created writes signup_date, signup_source and the first name_history entry") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  CHECK(f.text("SELECT value FROM user_data WHERE key = 'signup_date'") == "\"2025-01-01T00:00:00.123Z\"");
  CHECK(f.text("SELECT value FROM user_data WHERE key = 'signup_source'") == "\"clerk\"");
  CHECK(f.text("SELECT value FROM user_data WHERE key = 'name_history'") ==
        R"([{"first_name":"Ada","last_name":"Lovelace","timestamp":"2025-01-01T00:00:00.140Z"}])");
}

TEST_CASE("a redelivered svix-id changes nothing") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  const std::string before = f.dump();
  // Even a different body under the same id is not applied: the id is what the sender retries.
  CHECK(f.db.apply(make_delivery("msg_1", fixture("clerk-user-updated.json"), t0 + 1h)) ==
        apply_outcome::duplicate);
  CHECK(f.dump() == before);
}

TEST_CASE("user.updated applies the newer state: primary email by id, role, name history") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  CHECK(f.db.apply(make_delivery("msg_2", fixture("clerk-user-updated.json"))) == apply_outcome::applied);
  CHECK(f.text("SELECT email FROM users") == "ada@analytical-engine.example");
  CHECK(f.text("SELECT role FROM users") == "admin");
  CHECK(f.text("SELECT json_array_length(value) FROM user_data WHERE key = 'name_history'") == "2");
  CHECK(f.text("SELECT value ->> '$[1].last_name' FROM user_data WHERE key = 'name_history'") ==
        "King, Countess of Lovelace");
  CHECK(f.count("users") == 1);
}

TEST_CASE("an event older than the stored state changes nothing") {
  fixture_db f;
  f.db.apply(make_delivery("msg_2", fixture("clerk-user-updated.json")));
  const std::string before = f.text("SELECT clerk_json FROM users");
  CHECK(f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::stale);
  CHECK(f.text("SELECT clerk_json FROM users") == before);
  CHECK(f.text("SELECT email FROM users") == "ada@analytical-engine.example");
}

TEST_CASE("an event with the same updated_at as the stored state changes nothing") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  auto same_time = fixture("clerk-user-created.json");
  same_time["data"].as_object()["first_name"] = "Changed";
  CHECK(f.db.apply(make_delivery("msg_1b", same_time)) == apply_outcome::stale);
  CHECK(f.text("SELECT first_name FROM users") == "Ada");
}

TEST_CASE("user.updated for an unknown user creates it with its sign-up data") {
  fixture_db f;
  CHECK(f.db.apply(make_delivery("msg_2", fixture("clerk-user-updated.json"))) == apply_outcome::applied);
  CHECK(f.count("users") == 1);
  CHECK(f.text("SELECT value FROM user_data WHERE key = 'signup_source'") == "\"clerk\"");
}

TEST_CASE("a change that keeps the name does not append to name_history") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  auto newer = with_user(fixture("clerk-user-created.json"), ada, 1735689700000);
  newer["data"].as_object()["username"] = "ada";
  CHECK(f.db.apply(make_delivery("msg_2", newer)) == apply_outcome::applied);
  CHECK(f.text("SELECT json_array_length(value) FROM user_data WHERE key = 'name_history'") == "1");
}

TEST_CASE("user.deleted removes the user and its data and leaves a tombstone") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  CHECK(f.db.apply(make_delivery("msg_3", fixture("clerk-user-deleted.json"))) == apply_outcome::applied);
  CHECK(f.count("users") == 0);
  CHECK(f.count("user_data") == 0);
  CHECK(f.text("SELECT clerk_id || ' ' || svix_id FROM deleted_users") == std::string(ada) + " msg_3");
}

TEST_CASE("a late user.created or user.updated does not bring a deleted user back") {
  fixture_db f;
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  f.db.apply(make_delivery("msg_3", fixture("clerk-user-deleted.json")));
  CHECK(f.db.apply(make_delivery("msg_2", fixture("clerk-user-updated.json"))) == apply_outcome::stale);
  auto much_later = with_user(fixture("clerk-user-updated.json"), ada, 4102444800000);
  CHECK(f.db.apply(make_delivery("msg_4", much_later)) == apply_outcome::stale);
  CHECK(f.count("users") == 0);
}

TEST_CASE("deleting an unknown user is fine and blocks a late create") {
  fixture_db f;
  CHECK(f.db.apply(make_delivery("msg_3", fixture("clerk-user-deleted.json"))) == apply_outcome::applied);
  CHECK(f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::stale);
  CHECK(f.count("users") == 0);
  CHECK(f.count("deleted_users") == 1);
}

TEST_CASE("a second deletion of the same user is stale") {
  fixture_db f;
  f.db.apply(make_delivery("msg_3", fixture("clerk-user-deleted.json")));
  CHECK(f.db.apply(make_delivery("msg_3b", fixture("clerk-user-deleted.json"))) == apply_outcome::stale);
  CHECK(f.text("SELECT svix_id FROM deleted_users") == "msg_3");
}

TEST_CASE("other event types are recorded as ignored and change no user") {
  fixture_db f;
  json::object session = {{"type", "session.created"},
                          {"object", "event"},
                          {"data", json::object{{"id", "sess_123"}, {"user_id", ada}}}};
  CHECK(f.db.apply(make_delivery("msg_s", session)) == apply_outcome::ignored);
  CHECK(f.count("users") == 0);
  CHECK(f.text("SELECT event_type || ' ' || clerk_id || ' ' || outcome FROM webhook_deliveries") ==
        "session.created sess_123 ignored");
}

TEST_CASE("every accepted delivery is recorded with its outcome") {
  fixture_db f;
  f.db.apply(make_delivery("msg_2", fixture("clerk-user-updated.json")));
  f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  CHECK(f.text("SELECT group_concat(svix_id || ':' || outcome, ',') FROM "
               "(SELECT * FROM webhook_deliveries ORDER BY svix_id)") == "msg_1:stale,msg_2:applied");
  CHECK(f.text("SELECT received_at FROM webhook_deliveries LIMIT 1") == "2026-01-01T00:00:00.000Z");
}

TEST_CASE("a rejected delivery is recorded for admins and changes no user") {
  fixture_db f;
  f.db.record_rejected({"msg_bad", "missing or non-string \"type\"", "{\"data\":{}}", t0});
  CHECK(f.text("SELECT svix_id || ' ' || error || ' ' || body FROM rejected_deliveries") ==
        "msg_bad missing or non-string \"type\" {\"data\":{}}");
  CHECK(f.count("users") == 0);
  CHECK(f.count("webhook_deliveries") == 0);
}

TEST_CASE("pruning forgets deliveries older than the cutoff and keeps the rest") {
  fixture_db f;
  f.db.apply(make_delivery("msg_old", fixture("clerk-user-created.json"), t0));
  f.db.apply(make_delivery("msg_new", fixture("clerk-user-updated.json"), t0 + 48h));
  f.db.record_rejected({"msg_bad", "x", "y", t0});
  CHECK(f.db.prune_deliveries(t0 + 24h) == 2);
  CHECK(f.text("SELECT group_concat(svix_id) FROM webhook_deliveries") == "msg_new");
  CHECK(f.count("rejected_deliveries") == 0);
  CHECK(f.count("users") == 1);  // users are never pruned
}

TEST_CASE("a write while another process holds the write lock fails as busy and changes nothing") {
  fixture_db f;
  SQLite::Database other(f.file, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  try {
    f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
    FAIL("expected storage_error");
  } catch (const storage_error& e) {
    CHECK(e.kind() == storage_failure::busy);
  }
  other.exec("ROLLBACK");
  CHECK(f.count("users") == 0);
  CHECK(f.count("webhook_deliveries") == 0);
  // And the same delivery goes through once the lock is released.
  CHECK(f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::applied);
}

}  // namespace usersync

namespace usersync {
namespace {

// A delivery the schema refuses: status must be active, banned or locked (a CHECK constraint).
delivery violating_delivery(const std::string& svix_id) {
  delivery d = make_delivery(svix_id, with_user(fixture("clerk-user-created.json"), "user_bad", 1));
  d.event.user->clerk_id = "user_bad";
  d.event.user->status = "not-a-status";
  return d;
}

}  // namespace

TEST_CASE("group commit: a delivery that fails rolls back alone and the others commit") {
  fixture_db f;
  write_batch batch(f.db);
  CHECK(batch.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::applied);
  try {
    batch.apply(violating_delivery("msg_bad"));
    FAIL("expected a constraint failure");
  } catch (const storage_error& e) {
    CHECK(e.kind() == storage_failure::other);
  }
  auto other = with_user(fixture("clerk-user-created.json"), "user_other", 1735689600140);
  CHECK(batch.apply(make_delivery("msg_3", other)) == apply_outcome::applied);
  batch.commit();
  CHECK(f.text("SELECT group_concat(clerk_id) FROM (SELECT clerk_id FROM users ORDER BY clerk_id)") ==
        std::string(ada) + ",user_other");
  CHECK(f.text("SELECT group_concat(svix_id) FROM (SELECT svix_id FROM webhook_deliveries ORDER BY 1)") ==
        "msg_1,msg_3");
  // The failed delivery took no change_seq that a consumer could see as a gap-filler later.
  CHECK(f.text("SELECT group_concat(change_seq) FROM (SELECT change_seq FROM users ORDER BY 1)") == "1,2");
}

TEST_CASE("group commit: two events for one user in a batch apply in arrival order") {
  fixture_db f;
  {
    write_batch batch(f.db);
    CHECK(batch.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::applied);
    CHECK(batch.apply(make_delivery("msg_2", fixture("clerk-user-updated.json"))) == apply_outcome::applied);
    batch.commit();
  }
  CHECK(f.text("SELECT email || ' ' || role FROM users") == "ada@analytical-engine.example admin");
  CHECK(f.text("SELECT json_array_length(value) FROM user_data WHERE key = 'name_history'") == "2");
}

TEST_CASE("group commit: an older event after a newer one in the same batch is stale") {
  fixture_db f;
  write_batch batch(f.db);
  CHECK(batch.apply(make_delivery("msg_2", fixture("clerk-user-updated.json"))) == apply_outcome::applied);
  CHECK(batch.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::stale);
  CHECK(batch.apply(make_delivery("msg_2", fixture("clerk-user-updated.json"))) == apply_outcome::duplicate);
  batch.commit();
  CHECK(f.text("SELECT email FROM users") == "ada@analytical-engine.example");
}

TEST_CASE("a batch that is never committed leaves nothing behind") {
  fixture_db f;
  {
    write_batch batch(f.db);
    batch.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
  }
  CHECK(f.count("users") == 0);
  CHECK(f.count("webhook_deliveries") == 0);
  CHECK(f.db.apply(make_delivery("msg_1", fixture("clerk-user-created.json"))) == apply_outcome::applied);
}

TEST_CASE("a crash between apply and commit loses the batch and nothing else") {
  fixture_db f;
  f.db.apply(make_delivery("msg_0", with_user(fixture("clerk-user-created.json"), "user_before", 1)));
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child applies and dies before COMMIT, as a SIGKILL would leave it.
    store db(f.file, store_options{});
    db.migrate();
    write_batch batch(db);
    batch.apply(make_delivery("msg_1", fixture("clerk-user-created.json")));
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(f.text("SELECT group_concat(clerk_id) FROM users") == "user_before");
  CHECK(f.text("PRAGMA integrity_check") == "ok");
}

}  // namespace usersync
