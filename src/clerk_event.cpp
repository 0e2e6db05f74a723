#include "clerk_event.hpp"

#include <cmath>

#include <boost/json.hpp>

#include <cstddef>
#include <limits>
#include <utility>

namespace usersync {
namespace {

namespace json = boost::json;

// What a reader found wrong, empty when the field is fine. Malformed input is an expected
// outcome here, so it travels as a value and the first problem stops decoding.
using problem = std::string;

std::string to_std(const json::string& s) { return std::string(s.data(), s.size()); }

std::string field_name(std::string_view field) {
  return "\"data." + std::string(field) + "\"";
}

const json::string* string_at(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(key);
  return v == nullptr ? nullptr : v->if_string();
}

const json::object* object_at(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(key);
  return v == nullptr ? nullptr : v->if_object();
}

decode_result refuse(problem message) { return decode_result{std::nullopt, std::move(message)}; }

// Boost.JSON's defaults are the limits we want: depth 32 bounds the recursion an attacker
// can cause, and invalid UTF-8 is refused before it reaches SQLite text columns.
// Boost.JSON 1.81 reads a number beyond double's range (1e400) as infinity without an error,
// and would write it back as `Infinity`, which is not JSON: the stored object would be
// refused by the database on every retry. Such a body is malformed.
bool has_non_finite_number(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: return !std::isfinite(v.get_double());
    case json::kind::array:
      for (const auto& item : v.get_array()) {
        if (has_non_finite_number(item)) return true;
      }
      return false;
    case json::kind::object:
      for (const auto& member : v.get_object()) {
        if (has_non_finite_number(member.value())) return true;
      }
      return false;
    default: return false;
  }
}

problem parse_object(std::string_view body, json::value& doc) {
  json::error_code ec;
  const json::parse_options options{};
  doc = json::parse(body, ec, json::storage_ptr{}, options);
  if (ec) return "body is not valid JSON: " + ec.message();
  if (!doc.is_object()) return "body is not a JSON object";
  if (has_non_finite_number(doc)) return "body holds a number too large to represent (e.g. 1e400)";
  return {};
}

event_kind kind_of(std::string_view type) {
  if (type == "user.created") return event_kind::user_created;
  if (type == "user.updated") return event_kind::user_updated;
  if (type == "user.deleted") return event_kind::user_deleted;
  return event_kind::other;
}

// The part every event shares. Other event types are valid but not applied, so their
// data.id is only recorded when present; the user kinds cannot be applied without it.
problem read_envelope(const json::object& root, clerk_event& event, const json::object*& data) {
  const json::string* type = string_at(root, "type");
  if (type == nullptr || type->empty()) return R"(missing or non-string "type")";
  event.type = to_std(*type);
  event.kind = kind_of(event.type);
  data = object_at(root, "data");
  if (data == nullptr) return R"(missing or non-object "data")";
  const json::string* id = string_at(*data, "id");
  if (id != nullptr) event.subject_id = to_std(*id);
  if (event.kind != event_kind::other && (id == nullptr || id->empty()))
    return R"(missing or non-string "data.id")";
  return {};
}

// Clerk sends milliseconds as JSON integers. Boost.JSON yields uint64 only above INT64_MAX,
// but a value built another way may hold a small uint64, so both kinds are accepted.
problem read_millis(const json::object& data, std::string_view field, std::int64_t& out) {
  const json::value* v = data.if_contains(field);
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (v != nullptr && v->is_int64()) {
    out = v->get_int64();
    return {};
  }
  if (v != nullptr && v->is_uint64() && v->get_uint64() <= max) {
    out = static_cast<std::int64_t>(v->get_uint64());
    return {};
  }
  return field_name(field) + " must be an integer (milliseconds)";
}

problem read_timestamps(const json::object& data, user_profile& user) {
  if (auto p = read_millis(data, "created_at", user.created_at_ms); !p.empty()) return p;
  return read_millis(data, "updated_at", user.updated_at_ms);
}

problem read_optional_string(const json::object& data, std::string_view field,
                             std::optional<std::string>& out) {
  const json::value* v = data.if_contains(field);
  out.reset();
  if (v == nullptr || v->is_null()) return {};
  const json::string* s = v->if_string();
  if (s == nullptr) return field_name(field) + " must be a string or null";
  out = to_std(*s);
  return {};
}

problem read_names(const json::object& data, user_profile& user) {
  if (auto p = read_optional_string(data, "first_name", user.first_name); !p.empty()) return p;
  return read_optional_string(data, "last_name", user.last_name);
}

// Clerk lists addresses in the order they were added, so the primary one is found by id,
// not by position. An id missing from the list happens transiently while an address is
// being replaced; that is no email rather than an error. Every entry's shape is checked
// so a malformed list is refused whichever id is primary.
problem read_primary_email(const json::object& data, user_profile& user) {
  std::optional<std::string> primary_id;
  if (auto p = read_optional_string(data, "primary_email_address_id", primary_id); !p.empty())
    return p;
  const json::value* list = data.if_contains("email_addresses");
  if (list == nullptr || list->is_null()) return {};
  const json::array* entries = list->if_array();
  if (entries == nullptr) return field_name("email_addresses") + " must be an array or null";
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const std::string name = "email_addresses[" + std::to_string(i) + "]";
    const json::object* entry = (*entries)[i].if_object();
    if (entry == nullptr) return field_name(name) + " must be an object";
    const json::string* id = string_at(*entry, "id");
    if (user.primary_email || !primary_id || id == nullptr || *id != *primary_id) continue;
    const json::string* address = string_at(*entry, "email_address");
    if (address == nullptr) return field_name(name + ".email_address") + " must be a string";
    user.primary_email = to_std(*address);
  }
  return {};
}

// Only a string role is trusted; anything else falls back to the least privileged role
// rather than refusing the whole user, since public_metadata is free-form.
problem read_role(const json::object& data, user_profile& user) {
  const json::object* metadata = object_at(data, "public_metadata");
  const json::string* role = metadata == nullptr ? nullptr : string_at(*metadata, "role");
  user.role = role == nullptr ? "user" : to_std(*role);
  return {};
}

problem read_flag(const json::object& data, std::string_view field, bool& out) {
  const json::value* v = data.if_contains(field);
  out = false;
  if (v == nullptr || v->is_null()) return {};
  const bool* flag = v->if_bool();
  if (flag == nullptr) return field_name(field) + " must be a boolean or null";
  out = *flag;
  return {};
}

// A ban is the stronger state (a banned user may also be locked out), so it wins.
problem read_status(const json::object& data, user_profile& user) {
  bool banned = false;
  bool locked = false;
  if (auto p = read_flag(data, "banned", banned); !p.empty()) return p;
  if (auto p = read_flag(data, "locked", locked); !p.empty()) return p;
  user.status = banned ? "banned" : locked ? "locked" : "active";
  return {};
}

problem read_user(const json::object& data, user_profile& user) {
  using reader = problem (*)(const json::object&, user_profile&);
  for (reader read : {read_timestamps, read_names, read_primary_email, read_role, read_status})
    if (auto p = read(data, user); !p.empty()) return p;
  user.data_json = json::serialize(data);
  return {};
}

}  // namespace

decode_result decode_clerk_event(std::string_view body) {
  json::value doc;
  if (auto p = parse_object(body, doc); !p.empty()) return refuse(std::move(p));
  clerk_event event;
  const json::object* data = nullptr;
  if (auto p = read_envelope(doc.get_object(), event, data); !p.empty())
    return refuse(std::move(p));
  if (event.kind == event_kind::user_created || event.kind == event_kind::user_updated) {
    user_profile user;
    user.clerk_id = event.subject_id.value_or("");
    if (auto p = read_user(*data, user); !p.empty()) return refuse(std::move(p));
    event.user = std::move(user);
  }
  return decode_result{std::move(event), {}};
}

std::string_view to_string(event_kind kind) {
  switch (kind) {
    case event_kind::user_created: return "user.created";
    case event_kind::user_updated: return "user.updated";
    case event_kind::user_deleted: return "user.deleted";
    case event_kind::other: return "other";
  }
  return "other";
}

}  // namespace usersync
