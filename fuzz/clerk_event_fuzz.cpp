// Fuzzes decode_clerk_event() with the input as a webhook body. Refusals are expected; an
// accepted event is checked against the rules in clerk_event.hpp, read here from an
// independent Boost.JSON parse of the same body:
//  - the kind follows the type, and user.created/updated carry a user, other kinds none;
//  - user fields equal the payload's: clerk_id, names, timestamps, the primary email (the
//    first entry whose id is primary_email_address_id);
//  - role is public_metadata.role when that is a string (so "" only when the payload says
//    ""), else "user"; status is one of active/banned/locked, and follows the flags;
//  - data_json parses as JSON and equals the payload's `data` object.
#include "clerk_event.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"

namespace {

namespace json = boost::json;
using namespace usersync;
using fuzz::property_failed;

const json::value* member(const json::object& obj, std::string_view key) {
  return obj.if_contains(key);
}

std::optional<std::string> string_member(const json::object& obj, std::string_view key) {
  const json::value* v = member(obj, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

bool flag(const json::object& data, std::string_view key) {
  const json::value* v = member(data, key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

std::int64_t millis(const json::object& data, std::string_view key) {
  const json::value* v = member(data, key);
  if (v == nullptr) property_failed("a user was accepted without its timestamps");
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= std::numeric_limits<std::int64_t>::max())
    return static_cast<std::int64_t>(v->get_uint64());
  property_failed("a user was accepted with a timestamp that is not an int64");
}

std::string expected_role(const json::object& data) {
  const json::value* metadata = member(data, "public_metadata");
  if (metadata == nullptr || !metadata->is_object()) return "user";
  return string_member(metadata->get_object(), "role").value_or("user");
}

std::string expected_status(const json::object& data) {
  return flag(data, "banned") ? "banned" : flag(data, "locked") ? "locked" : "active";
}

std::optional<std::string> expected_email(const json::object& data) {
  const auto primary = string_member(data, "primary_email_address_id");
  const json::value* list = member(data, "email_addresses");
  if (!primary || list == nullptr || !list->is_array()) return std::nullopt;
  for (const json::value& entry : list->get_array()) {
    if (string_member(entry.get_object(), "id") == primary)
      return string_member(entry.get_object(), "email_address");
  }
  return std::nullopt;
}

// Equal JSON, except that numbers too big for an int64 may differ in the last bits of their
// double: Boost.JSON 1.81 parses long decimals without correct rounding, so serializing and
// re-parsing one can move it by an ulp. That is Boost's imprecision, not a changed payload.
bool same_json(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double(), y = b.get_double();
    return x == y || std::fabs(x - y) <= 1e-15 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &xs = a.get_array(), &ys = b.get_array();
    if (xs.size() != ys.size()) return false;
    for (std::size_t i = 0; i < xs.size(); ++i)
      if (!same_json(xs[i], ys[i])) return false;
    return true;
  }
  if (!a.is_object()) return a == b;
  const auto &xs = a.get_object(), &ys = b.get_object();
  if (xs.size() != ys.size()) return false;
  for (const auto& [key, value] : xs) {
    const json::value* other = ys.if_contains(key);
    if (other == nullptr || !same_json(value, *other)) return false;
  }
  return true;
}

void check_user(const user_profile& user, const json::object& data) {
  if (user.clerk_id.empty() || string_member(data, "id") != user.clerk_id)
    property_failed("clerk_id is not data.id");
  if (user.first_name != string_member(data, "first_name") ||
      user.last_name != string_member(data, "last_name"))
    property_failed("a name differs from the payload");
  if (user.created_at_ms != millis(data, "created_at") ||
      user.updated_at_ms != millis(data, "updated_at"))
    property_failed("a timestamp differs from the payload");
  if (user.primary_email != expected_email(data))
    property_failed("primary_email is not the primary entry's address");
  if (user.role != expected_role(data)) property_failed("role is not public_metadata.role or user");
  if (user.status != "active" && user.status != "banned" && user.status != "locked")
    property_failed("status is not active, banned or locked");
  if (user.status != expected_status(data)) property_failed("status does not follow the flags");
  json::error_code ec;
  const json::value stored = json::parse(user.data_json, ec);
  if (ec) property_failed("data_json does not parse as JSON", user.data_json);
  if (!same_json(stored, json::value(data)))
    property_failed("data_json is not the payload's data object", user.data_json);
}

event_kind kind_of_type(std::string_view type) {
  for (event_kind kind : {event_kind::user_created, event_kind::user_updated, event_kind::user_deleted})
    if (type == to_string(kind)) return kind;
  return event_kind::other;
}

bool is_user_kind(event_kind kind) {
  return kind == event_kind::user_created || kind == event_kind::user_updated;
}

void check_event(const clerk_event& event, std::string_view body) {
  if (event.type.empty()) property_failed("an event was accepted without a type");
  const bool known = event.kind != event_kind::other;
  if (event.kind != kind_of_type(event.type)) property_failed("the kind does not follow the type");
  if (known && (!event.subject_id || event.subject_id->empty()))
    property_failed("a user event was accepted without data.id");
  if (is_user_kind(event.kind) != event.user.has_value())
    property_failed("a user is present exactly for user.created and user.updated");
  if (!event.user) return;
  json::error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) property_failed("an event was accepted from a non-object body");
  const json::value* data = member(doc.get_object(), "data");
  if (data == nullptr || !data->is_object()) property_failed("a user without a data object");
  check_user(*event.user, data->get_object());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const decode_result result = decode_clerk_event(body);
  if (!result.event) {
    if (result.error.empty()) property_failed("a refusal without a message");
    return 0;
  }
  if (!result.error.empty()) property_failed("an accepted event with an error message");
  check_event(*result.event, body);
  return 0;
}
