#pragma once
// Decodes a verified Clerk webhook body into a value. Pure: no I/O, no clock.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace usersync {

enum class event_kind { user_created, user_updated, user_deleted, other };

// The fields of a Clerk user object that have columns, plus the object itself.
struct user_profile {
  std::string clerk_id;
  std::optional<std::string> primary_email;  // the entry whose id is primary_email_address_id
  std::optional<std::string> first_name;
  std::optional<std::string> last_name;
  std::string role;    // public_metadata.role when it is a string, else "user"
  std::string status;  // "banned" if banned, else "locked" if locked, else "active"
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;  // the provider's ordering key
  std::string data_json;           // the whole `data` object, serialized
};

struct clerk_event {
  event_kind kind = event_kind::other;
  std::string type;                       // e.g. "user.created", "session.created"
  std::optional<std::string> subject_id;  // data.id when it is a string
  std::optional<user_profile> user;       // set for user.created and user.updated
};

// Either an event or a message saying what is wrong (for a 400 body and the admin record).
struct decode_result {
  std::optional<clerk_event> event;
  std::string error;
};

decode_result decode_clerk_event(std::string_view body);

std::string_view to_string(event_kind kind);

}  // namespace usersync
