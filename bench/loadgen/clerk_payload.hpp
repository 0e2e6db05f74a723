#pragma once
// Clerk-shaped webhook bodies for planned events, modelled on tests/fixtures/*.json: the same
// fields, nesting and sizes, compact as Svix sends them. Pure.
#include <cstdint>
#include <string>
#include <string_view>

#include "event_plan.hpp"

namespace loadgen {

// "user_" + run_id + the user index, zero-padded to Clerk's 27 characters after the prefix.
std::string clerk_id(std::string_view run_id, std::uint32_t user);

// "msg_" + run_id + the event index, zero-padded to 27 characters: unique per run.
std::string svix_id(std::string_view run_id, std::uint64_t index);

// The JSON body of one event; the envelope's timestamp is a little after the user's updated_at.
std::string clerk_body(std::string_view run_id, const planned_event& e);

}  // namespace loadgen
