#include "clerk_event.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#ifndef USERSYNC_FIXTURES_DIR
#error "USERSYNC_FIXTURES_DIR must name the tests/fixtures directory as a string literal"
#endif

// Expected values are read off the fixture files by eye (they are realistic Clerk payloads),
// and error cases mutate a fixture through Boost.JSON, so each refusal differs from a valid
// payload in exactly one field.

namespace {

namespace json = boost::json;
using usersync::decode_clerk_event;
using usersync::event_kind;

constexpr const char* created_fixture = "clerk-user-created.json";
constexpr const char* updated_fixture = "clerk-user-updated.json";
constexpr const char* deleted_fixture = "clerk-user-deleted.json";

std::string read_fixture(const char* name) {
  const std::string path = std::string(USERSYNC_FIXTURES_DIR) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open fixture " << path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fixture with `edit` applied to the whole body.
template <typename Edit>
std::string with_body(const char* fixture, Edit edit) {
  json::value doc = json::parse(read_fixture(fixture));
  edit(doc.as_object());
  return json::serialize(doc);
}

// The fixture with `edit` applied to its `data` object.
template <typename Edit>
std::string with_data(const char* fixture, Edit edit) {
  return with_body(fixture, [&](json::object& body) { edit(body["data"].as_object()); });
}

usersync::clerk_event accepted(std::string_view body) {
  usersync::decode_result result = decode_clerk_event(body);
  REQUIRE_MESSAGE(result.error.empty(), result.error);
  REQUIRE(result.event.has_value());
  return *result.event;
}

usersync::user_profile accepted_user(std::string_view body) {
  usersync::clerk_event event = accepted(body);
  REQUIRE(event.user.has_value());
  return *event.user;
}

// A refusal carries a message and never a partial event.
std::string refusal(std::string_view body) {
  usersync::decode_result result = decode_clerk_event(body);
  CHECK_FALSE(result.event.has_value());
  CHECK_FALSE(result.error.empty());
  return result.error;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

TEST_CASE("user.created decodes every profile field from the fixture") {
  const usersync::clerk_event event = accepted(read_fixture(created_fixture));
  CHECK(event.kind == event_kind::user_created);
  CHECK(event.type == "user.created");
  CHECK(event.subject_id == "user_2qYl8v0Hn3mK1pQx6RtZ9wB5cJe");
  REQUIRE(event.user.has_value());
  const usersync::user_profile& user = *event.user;
  CHECK(user.clerk_id == "user_2qYl8v0Hn3mK1pQx6RtZ9wB5cJe");
  CHECK(user.primary_email == "ada.lovelace@example.com");
  CHECK(user.first_name == "Ada");
  CHECK(user.last_name == "Lovelace");
  CHECK(user.role == "user");
  CHECK(user.status == "active");
  CHECK(user.created_at_ms == 1735689600123);
  CHECK(user.updated_at_ms == 1735689600140);
}

TEST_CASE("user.updated decodes every profile field from the fixture") {
  const usersync::clerk_event event = accepted(read_fixture(updated_fixture));
  CHECK(event.kind == event_kind::user_updated);
  CHECK(event.type == "user.updated");
  CHECK(event.subject_id == "user_2qYl8v0Hn3mK1pQx6RtZ9wB5cJe");
  REQUIRE(event.user.has_value());
  const usersync::user_profile& user = *event.user;
  CHECK(user.clerk_id == "user_2qYl8v0Hn3mK1pQx6RtZ9wB5cJe");
  CHECK(user.first_name == "Ada");
  CHECK(user.last_name == "King, Countess of Lovelace");
  CHECK(user.role == "admin");
  CHECK(user.status == "active");
  CHECK(user.created_at_ms == 1735689600123);
  CHECK(user.updated_at_ms == 1735776000456);
}

TEST_CASE("the primary email is the entry named by primary_email_address_id, not the first") {
  const usersync::user_profile user = accepted_user(read_fixture(updated_fixture));
  CHECK(user.primary_email == "ada@analytical-engine.example");
}

TEST_CASE("data_json is the whole data object") {
  for (const char* fixture : {created_fixture, updated_fixture}) {
    CAPTURE(fixture);
    const usersync::user_profile user = accepted_user(read_fixture(fixture));
    const json::value expected = json::parse(read_fixture(fixture)).at("data");
    CHECK(json::parse(user.data_json) == expected);
  }
}

TEST_CASE("user.deleted carries only the id") {
  const usersync::clerk_event event = accepted(read_fixture(deleted_fixture));
  CHECK(event.kind == event_kind::user_deleted);
  CHECK(event.type == "user.deleted");
  CHECK(event.subject_id == "user_2qYl8v0Hn3mK1pQx6RtZ9wB5cJe");
  CHECK_FALSE(event.user.has_value());
}

TEST_CASE("unknown event types decode as other and keep data.id") {
  const usersync::clerk_event event =
      accepted(R"({"type":"session.created","data":{"id":"sess_2qYl9","user_id":"user_1"}})");
  CHECK(event.kind == event_kind::other);
  CHECK(event.type == "session.created");
  CHECK(event.subject_id == "sess_2qYl9");
  CHECK_FALSE(event.user.has_value());
}

TEST_CASE("unknown event types need no data.id") {
  CHECK_FALSE(accepted(R"({"type":"email.created","data":{}})").subject_id.has_value());
  CHECK_FALSE(accepted(R"({"type":"email.created","data":{"id":7}})").subject_id.has_value());
}

TEST_CASE("to_string names each kind as Clerk spells its type") {
  CHECK(usersync::to_string(event_kind::user_created) == "user.created");
  CHECK(usersync::to_string(event_kind::user_updated) == "user.updated");
  CHECK(usersync::to_string(event_kind::user_deleted) == "user.deleted");
  CHECK(usersync::to_string(event_kind::other) == "other");
}

TEST_CASE("a body that is not JSON is refused") {
  CHECK(starts_with(refusal("not json"), "body is not valid JSON: "));
  CHECK(starts_with(refusal(""), "body is not valid JSON: "));
  // A truncated delivery.
  const std::string body = read_fixture(created_fixture);
  CHECK(starts_with(refusal(std::string_view(body).substr(0, body.size() / 2)),
                    "body is not valid JSON: "));
}

TEST_CASE("a body that is JSON but not an object is refused") {
  for (const char* body : {"[]", "null", "42", R"("user.created")"}) {
    CAPTURE(body);
    CHECK(refusal(body) == "body is not a JSON object");
  }
}

TEST_CASE("missing type is refused") {
  const std::string expected = R"(missing or non-string "type")";
  CHECK(refusal(with_body(created_fixture, [](json::object& b) { b.erase("type"); })) ==
        expected);
  CHECK(refusal(with_body(created_fixture, [](json::object& b) { b["type"] = 1; })) == expected);
  CHECK(refusal(with_body(created_fixture, [](json::object& b) { b["type"] = nullptr; })) ==
        expected);
}

TEST_CASE("an empty type is refused") {
  CHECK(refusal(with_body(created_fixture, [](json::object& b) { b["type"] = ""; })) ==
        R"(missing or non-string "type")");
}

TEST_CASE("data must be an object for every event type") {
  const std::string expected = R"(missing or non-object "data")";
  for (const char* fixture : {created_fixture, updated_fixture, deleted_fixture}) {
    CAPTURE(fixture);
    CHECK(refusal(with_body(fixture, [](json::object& b) { b.erase("data"); })) == expected);
    CHECK(refusal(with_body(fixture, [](json::object& b) { b["data"] = nullptr; })) == expected);
    CHECK(refusal(with_body(fixture, [](json::object& b) { b["data"] = json::array{}; })) ==
          expected);
  }
  CHECK(refusal(R"({"type":"session.created"})") == expected);
  CHECK(refusal(R"({"type":"session.created","data":"sess_1"})") == expected);
}

TEST_CASE("the user kinds need a non-empty string data.id") {
  const std::string expected = R"(missing or non-string "data.id")";
  for (const char* fixture : {created_fixture, updated_fixture, deleted_fixture}) {
    CAPTURE(fixture);
    CHECK(refusal(with_data(fixture, [](json::object& d) { d.erase("id"); })) == expected);
    CHECK(refusal(with_data(fixture, [](json::object& d) { d["id"] = 42; })) == expected);
    CHECK(refusal(with_data(fixture, [](json::object& d) { d["id"] = nullptr; })) == expected);
    CHECK(refusal(with_data(fixture, [](json::object& d) { d["id"] = ""; })) == expected);
  }
}

TEST_CASE("invalid UTF-8 is refused") {
  // A lone 0xFF byte can never appear in UTF-8; put it inside an otherwise valid name.
  const std::string body =
      with_data(created_fixture, [](json::object& d) { d["first_name"] = "Ada MARKER"; });
  std::string broken = body;
  broken.replace(broken.find("MARKER"), 6, "\xff");
  CHECK(starts_with(refusal(broken), "body is not valid JSON: "));
  // An overlong encoding of '/' (0xC0 0xAF) is refused too.
  broken = body;
  broken.replace(broken.find("MARKER"), 6, "\xc0\xaf");
  CHECK(starts_with(refusal(broken), "body is not valid JSON: "));
}

TEST_CASE("JSON nested deeper than the limit is refused") {
  // The body object and `data` are two levels; the limit is 32 in all.
  auto nested = [](std::size_t arrays) {
    return R"({"type":"session.created","data":{"id":"sess_1","deep":)" +
           std::string(arrays, '[') + std::string(arrays, ']') + "}}";
  };
  CHECK(accepted(nested(30)).subject_id == "sess_1");
  CHECK(starts_with(refusal(nested(31)), "body is not valid JSON: "));
  CHECK(starts_with(refusal(nested(10000)), "body is not valid JSON: "));
}

TEST_CASE("a string updated_at is refused") {
  CHECK(refusal(with_data(updated_fixture, [](json::object& d) {
          d["updated_at"] = "1735776000456";
        })) == R"("data.updated_at" must be an integer (milliseconds))");
}

TEST_CASE("a fractional or exponent created_at is refused") {
  const std::string expected = R"("data.created_at" must be an integer (milliseconds))";
  CHECK(refusal(with_data(created_fixture, [](json::object& d) {
          d["created_at"] = 1735689600123.5;
        })) == expected);
  // Boost.JSON reads any number with an exponent as a double, even a whole one.
  std::string body = with_data(created_fixture, [](json::object& d) { d["created_at"] = 7; });
  body.replace(body.find("\"created_at\":7"), 14, "\"created_at\":1.735689600123e12");
  CHECK(refusal(body) == expected);
}

TEST_CASE("a missing or null timestamp is refused") {
  for (const char* field : {"created_at", "updated_at"}) {
    CAPTURE(field);
    const std::string expected =
        "\"data." + std::string(field) + "\" must be an integer (milliseconds)";
    CHECK(refusal(with_data(created_fixture, [&](json::object& d) { d.erase(field); })) ==
          expected);
    CHECK(refusal(with_data(created_fixture, [&](json::object& d) { d[field] = nullptr; })) ==
          expected);
  }
}

TEST_CASE("a timestamp beyond int64 is refused") {
  // 2^63 parses as uint64 and 2^64 as a double; neither fits the column.
  CHECK(refusal(with_data(created_fixture, [](json::object& d) {
          d["updated_at"] = std::uint64_t{9223372036854775808u};
        })) == R"("data.updated_at" must be an integer (milliseconds))");
  std::string body = with_data(created_fixture, [](json::object& d) { d["updated_at"] = 7; });
  body.replace(body.find("\"updated_at\":7"), 14, "\"updated_at\":18446744073709551616");
  CHECK(refusal(body) == R"("data.updated_at" must be an integer (milliseconds))");
}

TEST_CASE("timestamps anywhere in the int64 range are accepted") {
  const usersync::user_profile user = accepted_user(with_data(created_fixture, [](json::object& d) {
    d["created_at"] = -1;
    d["updated_at"] = std::int64_t{9223372036854775807};
  }));
  CHECK(user.created_at_ms == -1);
  CHECK(user.updated_at_ms == 9223372036854775807);
}

TEST_CASE("first_name and last_name may be null or absent") {
  const usersync::user_profile user = accepted_user(with_data(created_fixture, [](json::object& d) {
    d["first_name"] = nullptr;
    d.erase("last_name");
  }));
  CHECK_FALSE(user.first_name.has_value());
  CHECK_FALSE(user.last_name.has_value());
}

TEST_CASE("a first_name or last_name that is not a string is refused") {
  CHECK(refusal(with_data(created_fixture, [](json::object& d) { d["first_name"] = 1; })) ==
        R"("data.first_name" must be a string or null)");
  CHECK(refusal(with_data(created_fixture, [](json::object& d) {
          d["last_name"] = json::array{"Lovelace"};
        })) == R"("data.last_name" must be a string or null)");
}

TEST_CASE("a null or absent primary_email_address_id gives no email") {
  CHECK_FALSE(accepted_user(with_data(updated_fixture, [](json::object& d) {
                d["primary_email_address_id"] = nullptr;
              })).primary_email.has_value());
  CHECK_FALSE(accepted_user(with_data(updated_fixture, [](json::object& d) {
                d.erase("primary_email_address_id");
              })).primary_email.has_value());
}

TEST_CASE("a primary id missing from email_addresses gives no email, not an error") {
  CHECK_FALSE(accepted_user(with_data(updated_fixture, [](json::object& d) {
                d["primary_email_address_id"] = "idn_not_in_the_list";
              })).primary_email.has_value());
}

TEST_CASE("absent or null email_addresses means no emails") {
  CHECK_FALSE(accepted_user(with_data(updated_fixture, [](json::object& d) {
                d.erase("email_addresses");
              })).primary_email.has_value());
  CHECK_FALSE(accepted_user(with_data(updated_fixture, [](json::object& d) {
                d["email_addresses"] = nullptr;
              })).primary_email.has_value());
  CHECK_FALSE(accepted_user(with_data(updated_fixture, [](json::object& d) {
                d["email_addresses"] = json::array{};
              })).primary_email.has_value());
}

TEST_CASE("email fields of the wrong type are refused") {
  CHECK(refusal(with_data(updated_fixture, [](json::object& d) {
          d["email_addresses"] = json::object{};
        })) == R"("data.email_addresses" must be an array or null)");
  CHECK(refusal(with_data(updated_fixture, [](json::object& d) {
          d["email_addresses"].as_array().emplace_back("ada@example.com");
        })) == R"("data.email_addresses[2]" must be an object)");
  CHECK(refusal(with_data(updated_fixture, [](json::object& d) {
          d["primary_email_address_id"] = 1;
        })) == R"("data.primary_email_address_id" must be a string or null)");
  CHECK(refusal(with_data(updated_fixture, [](json::object& d) {
          d["email_addresses"].as_array()[1].as_object()["email_address"] = nullptr;
        })) == R"("data.email_addresses[1].email_address" must be a string)");
}

TEST_CASE("role comes from public_metadata.role only when it is a string") {
  auto role_with = [](auto edit) { return accepted_user(with_data(updated_fixture, edit)).role; };
  CHECK(role_with([](json::object&) {}) == "admin");
  CHECK(role_with([](json::object& d) { d["public_metadata"].as_object()["role"] = 1; }) ==
        "user");
  CHECK(role_with([](json::object& d) { d["public_metadata"].as_object()["role"] = nullptr; }) ==
        "user");
  CHECK(role_with([](json::object& d) { d["public_metadata"].as_object().erase("role"); }) ==
        "user");
  CHECK(role_with([](json::object& d) { d.erase("public_metadata"); }) == "user");
  CHECK(role_with([](json::object& d) { d["public_metadata"] = "admin"; }) == "user");
  CHECK(role_with([](json::object& d) { d["public_metadata"] = nullptr; }) == "user");
  // A role in private_metadata or unsafe_metadata is not the user's role.
  CHECK(role_with([](json::object& d) {
          d["public_metadata"].as_object().erase("role");
          d["private_metadata"].as_object()["role"] = "admin";
          d["unsafe_metadata"].as_object()["role"] = "admin";
        }) == "user");
}

TEST_CASE("banned wins over locked") {
  const usersync::user_profile user = accepted_user(with_data(created_fixture, [](json::object& d) {
    d["banned"] = true;
    d["locked"] = true;
  }));
  CHECK(user.status == "banned");
}

TEST_CASE("a locked user who is not banned is locked") {
  CHECK(accepted_user(with_data(created_fixture, [](json::object& d) {
          d["locked"] = true;
        })).status == "locked");
  CHECK(accepted_user(with_data(created_fixture, [](json::object& d) {
          d["banned"] = nullptr;
          d["locked"] = true;
        })).status == "locked");
}

TEST_CASE("banned and locked that are null or absent mean active") {
  CHECK(accepted_user(with_data(created_fixture, [](json::object& d) {
          d["banned"] = nullptr;
          d.erase("locked");
        })).status == "active");
}

TEST_CASE("banned or locked that is not a boolean is refused") {
  CHECK(refusal(with_data(created_fixture, [](json::object& d) { d["banned"] = "yes"; })) ==
        R"("data.banned" must be a boolean or null)");
  CHECK(refusal(with_data(created_fixture, [](json::object& d) { d["locked"] = 1; })) ==
        R"("data.locked" must be a boolean or null)");
}

TEST_CASE("a number beyond double's range is refused, since it cannot be stored as JSON") {
  // Found by fuzz/clerk_event_fuzz: Boost.JSON reads 1e400 as infinity without an error.
  for (const char* number : {"1e400", "-1e400"}) {
    auto body = std::string(R"({"type":"user.created","data":{"id":"user_1","created_at":1,)"
                            R"("updated_at":2,"public_metadata":{"score":)") + number + "}}}";
    const usersync::decode_result r = usersync::decode_clerk_event(body);
    CHECK_FALSE(r.event);
    CHECK(r.error.find("too large") != std::string::npos);
  }
}
