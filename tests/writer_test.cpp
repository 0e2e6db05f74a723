#include "writer.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <future>
#include <latch>

#include "temp_dir.hpp"

namespace usersync {
namespace {

delivery other_event(const std::string& svix_id) {
  clerk_event e;
  e.kind = event_kind::other;
  e.type = "session.created";
  e.subject_id = "sess_" + svix_id;
  return {svix_id, e, std::chrono::system_clock::now()};
}

struct writer_fixture {
  test::temp_dir dir;
  std::filesystem::path file = dir.path() / "usersync.db";
  store db{file, store_options{}};
  writer_fixture() { db.migrate(); }
  long long deliveries() const {
    SQLite::Database r(file, SQLite::OPEN_READONLY);
    return r.execAndGet("SELECT count(*) FROM webhook_deliveries").getInt64();
  }
};

}  // namespace

TEST_CASE("deliveries that queue up behind a commit share the next transaction") {
  writer_fixture f;
  writer w(f.db, writer_options{});
  // The first completion runs on the writer thread: holding it lets the others queue up.
  std::latch queued(1);
  std::promise<write_result> first;
  w.apply(other_event("msg_0"), [&](write_result r) {
    queued.wait();
    first.set_value(r);
  });
  constexpr int more = 50;
  std::vector<std::promise<write_result>> results(more);
  for (int i = 0; i < more; ++i) {
    w.apply(other_event("msg_" + std::to_string(i + 1)),
            [&results, i](write_result r) { results[static_cast<std::size_t>(i)].set_value(r); });
  }
  queued.count_down();
  CHECK(first.get_future().get().outcome == apply_outcome::ignored);
  for (auto& r : results) CHECK(r.get_future().get().outcome == apply_outcome::ignored);
  w.stop();
  // msg_0 alone or with the rest (the writer may wake before or after they queue); the 50
  // queued behind it never take more than one more transaction.
  CHECK(w.commits() <= 2);
  CHECK(w.committed_deliveries() == more + 1);
  CHECK(f.deliveries() == more + 1);
}

TEST_CASE("with max_batch 1 every delivery has its own transaction") {
  writer_fixture f;
  writer w(f.db, writer_options{10000, 1});
  std::vector<std::future<write_result>> done;
  for (int i = 0; i < 10; ++i) {
    auto p = std::make_shared<std::promise<write_result>>();
    done.push_back(p->get_future());
    w.apply(other_event("msg_" + std::to_string(i)), [p](write_result r) { p->set_value(r); });
  }
  for (auto& d : done) CHECK(d.get().outcome == apply_outcome::ignored);
  w.stop();
  CHECK(w.commits() == 10);
}

TEST_CASE("a completion runs only after its commit is visible to another connection") {
  writer_fixture f;
  writer w(f.db, writer_options{});
  std::promise<long long> seen;
  w.apply(other_event("msg_1"), [&](write_result) { seen.set_value(f.deliveries()); });
  CHECK(seen.get_future().get() == 1);
}

TEST_CASE("a busy database fails every delivery of the batch with busy and writes nothing") {
  writer_fixture f;
  store busy_store(f.file, store_options{std::chrono::milliseconds(50)});
  busy_store.migrate();
  SQLite::Database other(f.file, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  writer w(busy_store, writer_options{});
  std::promise<write_result> result;
  w.apply(other_event("msg_1"), [&](write_result r) { result.set_value(r); });
  const write_result r = result.get_future().get();
  REQUIRE(r.failure);
  CHECK(*r.failure == storage_failure::busy);
  other.exec("ROLLBACK");
  w.stop();
  CHECK(f.deliveries() == 0);
}

TEST_CASE("a readiness probe commits a real page write and is not counted as a delivery") {
  writer_fixture f;
  writer w(f.db, writer_options{});
  const auto wal = std::filesystem::path(f.file.string() + "-wal");
  const auto wal_before = std::filesystem::file_size(wal);
  std::promise<write_result> result;
  w.probe([&](write_result r) { result.set_value(r); });
  CHECK_FALSE(result.get_future().get().failure);
  w.stop();
  // A probe that leaves every row as it was commits without writing a frame, and so cannot
  // notice a read-only filesystem or a failing device: the WAL must have grown.
  CHECK(std::filesystem::file_size(wal) > wal_before);
  SQLite::Database r(f.file, SQLite::OPEN_READONLY);
  CHECK(r.execAndGet("SELECT probes FROM readiness_probe").getInt64() == 1);
  CHECK(w.commits() == 0);
  CHECK(f.deliveries() == 0);
}

TEST_CASE("after stop, new deliveries are refused as busy at once") {
  writer_fixture f;
  writer w(f.db, writer_options{});
  w.stop();
  std::optional<write_result> result;
  w.apply(other_event("msg_1"), [&](write_result r) { result = r; });
  REQUIRE(result);
  CHECK(result->failure == storage_failure::busy);
}

}  // namespace usersync
