#pragma once
// After a run: is every acknowledged effect in the database? The service answers 2xx only
// after a durable commit, so each acknowledged svix-id must be in webhook_deliveries, each
// user must be at least as new as its newest acknowledged update, and each acknowledged
// deletion must have left a tombstone and no user row. Events that were not acknowledged may
// or may not have been applied; they are not checked.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "event_plan.hpp"
#include "load_run.hpp"

namespace loadgen {

struct verify_report {
  std::uint64_t deliveries_checked = 0;
  std::uint64_t users_checked = 0;
  std::uint64_t missing_deliveries = 0;  // acknowledged svix-id not recorded
  std::uint64_t missing_users = 0;       // acknowledged create/update, no row and no tombstone
  std::uint64_t stale_users = 0;         // row older than the newest acknowledged update
  std::uint64_t missing_tombstones = 0;  // acknowledged deletion without a tombstone
  std::uint64_t resurrected_users = 0;   // acknowledged deletion, yet a user row
  std::vector<std::string> examples;     // a few ids that failed, for the operator
  bool ok() const {
    return missing_deliveries + missing_users + stale_users + missing_tombstones + resurrected_users == 0;
  }
};

// Opens `db_file` read-only (the service may still be running: WAL readers do not block it).
// Throws std::runtime_error when the file cannot be read.
verify_report verify_database(const std::filesystem::path& db_file, const std::string& run_id,
                              const event_plan& plan, const std::vector<result>& results);

}  // namespace loadgen
