#include "event_plan.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace loadgen {
namespace {

// 2025-01-01T00:00:00Z: users are created from here on, one every 37 ms.
constexpr std::int64_t epoch_ms = 1735689600000;

// How many events each user gets: an even share, the remainder to the first users.
class lifecycle {
 public:
  explicit lifecycle(const plan_settings& s)
      : base_(s.events / s.users), extra_(s.events % s.users), delete_fraction_(s.delete_fraction) {}

  std::uint32_t length(std::uint64_t user) const {
    return static_cast<std::uint32_t>(base_ + (user < extra_ ? 1 : 0));
  }
  // Users past this one get no events.
  std::uint64_t users_with_events(std::uint64_t users) const { return base_ > 0 ? users : extra_; }

  // A fixed, well-spread subset of the users with at least two events ends in a deletion.
  bool deleted(std::uint64_t user) const {
    if (length(user) < 2) return false;
    const std::uint64_t h = (user + 1) * 0x9E3779B97F4A7C15ULL;
    return static_cast<double>(h >> 11) / static_cast<double>(1ULL << 53) < delete_fraction_;
  }

  event_type type(std::uint64_t user, std::uint32_t version) const {
    if (version == 0) return event_type::created;
    if (version + 1 == length(user) && deleted(user)) return event_type::deleted;
    return event_type::updated;
  }

 private:
  std::uint64_t base_;
  std::uint64_t extra_;
  double delete_fraction_;
};

struct active_user {
  std::uint32_t user;
  std::uint32_t next_version;
};

}  // namespace

std::uint64_t event_plan::count(event_type type) const {
  return static_cast<std::uint64_t>(
      std::count_if(events.begin(), events.end(), [type](const planned_event& e) { return e.type == type; }));
}

std::int64_t created_at_ms(std::uint32_t user) { return epoch_ms + static_cast<std::int64_t>(user) * 37; }

std::int64_t updated_at_ms(std::uint32_t user, std::uint32_t version) {
  // Each later version is a minute and a bit later: strictly increasing per user.
  return created_at_ms(user) + 17 + static_cast<std::int64_t>(version) * 60'013;
}

event_plan make_plan(const plan_settings& s) {
  constexpr auto max32 = std::numeric_limits<std::uint32_t>::max();
  if (s.users == 0 || s.connections == 0 || s.window == 0) throw std::invalid_argument("empty plan");
  if (s.events >= max32 || s.users >= max32) throw std::invalid_argument("plan too large for 32-bit indices");
  const lifecycle life(s);
  const std::uint64_t admissible = life.users_with_events(s.users);
  event_plan plan;
  plan.events.reserve(s.events);
  plan.by_connection.resize(s.connections);
  std::vector<active_user> active;
  std::uint64_t next_user = 0;
  auto admit = [&]() -> bool {
    if (next_user >= admissible) return false;
    active.push_back({static_cast<std::uint32_t>(next_user++), 0});
    return true;
  };
  while (active.size() < s.window && admit()) {
  }
  // Round-robin over the users in progress; a finished user's slot goes to the next user.
  for (std::size_t r = 0; !active.empty();) {
    if (r >= active.size()) r = 0;
    active_user& a = active[r];
    const auto connection = static_cast<std::uint32_t>(a.user % s.connections);
    plan.by_connection[connection].push_back(static_cast<std::uint32_t>(plan.events.size()));
    plan.events.push_back({a.user, a.next_version, life.type(a.user, a.next_version), connection});
    if (++a.next_version < life.length(a.user)) {
      ++r;
    } else if (next_user < admissible) {
      a = {static_cast<std::uint32_t>(next_user++), 0};
      ++r;
    } else {
      active.erase(active.begin() + static_cast<std::ptrdiff_t>(r));
    }
  }
  plan.users_touched = admissible;
  return plan;
}

}  // namespace loadgen
