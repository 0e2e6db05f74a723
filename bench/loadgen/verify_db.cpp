#include "verify_db.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <optional>
#include <unordered_map>

#include "clerk_payload.hpp"

namespace loadgen {
namespace {

constexpr const char* find_delivery = "SELECT 1 FROM webhook_deliveries WHERE svix_id = ?1";
constexpr const char* find_user = "SELECT provider_updated_ms FROM users WHERE clerk_id = ?1";
constexpr const char* find_tombstone = "SELECT 1 FROM deleted_users WHERE clerk_id = ?1";
constexpr std::size_t max_examples = 5;

// What the acknowledged events of one user require.
struct expectation {
  std::optional<std::int64_t> newest_update_ms;  // newest acknowledged created/updated, applied
  bool deleted = false;                          // an acknowledged deletion was applied
};

std::unordered_map<std::uint32_t, expectation> expectations(const event_plan& plan,
                                                            const std::vector<result>& results) {
  std::unordered_map<std::uint32_t, expectation> out;
  for (std::size_t i = 0; i < plan.events.size(); ++i) {
    if (results[i] != result::applied) continue;
    const planned_event& e = plan.events[i];
    expectation& x = out[e.user];
    if (e.type == event_type::deleted) {
      x.deleted = true;
    } else {
      const std::int64_t at = updated_at_ms(e.user, e.version);
      if (!x.newest_update_ms || at > *x.newest_update_ms) x.newest_update_ms = at;
    }
  }
  return out;
}

bool exists(SQLite::Statement& q, const std::string& key) {
  q.reset();
  q.bind(1, key);
  return q.executeStep();
}

class checker {
 public:
  explicit checker(const std::filesystem::path& file)
      : db_(file.string(), SQLite::OPEN_READONLY),
        delivery_(db_, find_delivery), user_(db_, find_user), tombstone_(db_, find_tombstone) {
    db_.setBusyTimeout(5000);
  }

  void delivery(const std::string& svix_id, verify_report& r) {
    ++r.deliveries_checked;
    if (!exists(delivery_, svix_id)) fail(r.missing_deliveries, svix_id + " not in webhook_deliveries", r);
  }

  void user(const std::string& clerk_id, const expectation& x, verify_report& r) {
    ++r.users_checked;
    user_.reset();
    user_.bind(1, clerk_id);
    const bool has_row = user_.executeStep();
    if (x.deleted) {
      if (!exists(tombstone_, clerk_id)) fail(r.missing_tombstones, clerk_id + " has no tombstone", r);
      if (has_row) fail(r.resurrected_users, clerk_id + " was deleted but has a user row", r);
    } else if (!has_row) {
      // A later, unacknowledged deletion may have been applied after all.
      if (!exists(tombstone_, clerk_id)) fail(r.missing_users, clerk_id + " missing from users", r);
    } else if (user_.getColumn(0).getInt64() < *x.newest_update_ms) {
      fail(r.stale_users, clerk_id + " older than its newest acknowledged update", r);
    }
  }

 private:
  static void fail(std::uint64_t& counter, std::string example, verify_report& r) {
    ++counter;
    if (r.examples.size() < max_examples) r.examples.push_back(std::move(example));
  }

  SQLite::Database db_;
  SQLite::Statement delivery_, user_, tombstone_;
};

}  // namespace

verify_report verify_database(const std::filesystem::path& db_file, const std::string& run_id,
                              const event_plan& plan, const std::vector<result>& results) {
  if (!std::filesystem::exists(db_file)) {
    throw std::runtime_error("--verify-db " + db_file.string() + " does not exist");
  }
  verify_report report;
  checker check(db_file);
  for (std::size_t i = 0; i < plan.events.size(); ++i) {
    if (acknowledged(results[i])) check.delivery(svix_id(run_id, i), report);
  }
  for (const auto& [user, x] : expectations(plan, results)) check.user(clerk_id(run_id, user), x, report);
  return report;
}

}  // namespace loadgen
