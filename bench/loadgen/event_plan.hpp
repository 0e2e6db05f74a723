#pragma once
// Which events a run sends, in which order, on which connection. Pure: the same settings give
// the same plan, so the database can be checked against it afterwards.
//
// Each user lives a Clerk-like life: user.created, then user.updated with an increasing
// updated_at, and for some users a final user.deleted. A window of users is in progress at
// once, so creations, updates and deletions are mixed throughout the run rather than in
// phases. Every event of a user goes to the same connection, which sends one at a time: a
// user's events reach the server in order, and every one of them should be applied.
#include <cstdint>
#include <vector>

namespace loadgen {

enum class event_type : std::uint8_t { created, updated, deleted };

struct planned_event {
  std::uint32_t user = 0;        // 0 .. users-1
  std::uint32_t version = 0;     // position in the user's life: 0 is user.created
  event_type type = event_type::created;
  std::uint32_t connection = 0;
};

struct plan_settings {
  std::uint64_t events = 0;
  std::uint64_t users = 0;
  double delete_fraction = 0;
  std::uint32_t window = 1024;
  unsigned connections = 1;
};

struct event_plan {
  std::vector<planned_event> events;  // global order: the schedule of fixed-rate mode
  std::vector<std::vector<std::uint32_t>> by_connection;  // indices into events, in order
  std::uint64_t users_touched = 0;
  std::uint64_t count(event_type type) const;
};

// Throws std::invalid_argument when the plan would not fit 32-bit indices.
event_plan make_plan(const plan_settings& settings);

// The provider's updated_at (ms) of a user at a version; increases with the version.
std::int64_t updated_at_ms(std::uint32_t user, std::uint32_t version);
std::int64_t created_at_ms(std::uint32_t user);

}  // namespace loadgen
