#include "query_api.hpp"

#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <charconv>

#include "bearer_auth.hpp"
#include "store.hpp"
#include "store_reader.hpp"
#include "url.hpp"

namespace usersync {
namespace json = boost::json;
namespace {

json::value optional_json(const std::optional<std::string>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object user_json(const user_view& u) {
  return {{"clerk_id", u.clerk_id},     {"email", optional_json(u.email)},
          {"first_name", optional_json(u.first_name)},
          {"last_name", optional_json(u.last_name)},
          {"role", u.role},             {"status", u.status},
          {"created_at", u.created_at}, {"updated_at", u.updated_at},
          {"synced_at", u.synced_at},   {"change_seq", u.change_seq},
          {"data", json::parse(u.data_json)}};
}

json::object change_json(const change_view& c) {
  if (c.user) return {{"change_seq", c.change_seq}, {"clerk_id", c.user->clerk_id},
                      {"deleted", false}, {"user", user_json(*c.user)}};
  return {{"change_seq", c.change_seq}, {"clerk_id", c.deleted->clerk_id}, {"deleted", true},
          {"deleted_at", c.deleted->deleted_at}};
}

reply ok(const json::value& body) { return json_reply(http::status::ok, json::serialize(body)); }

reply bad_parameter(std::string_view message) {
  return json_error(http::status::bad_request, "bad_parameter", message);
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "2026-01-01", "2026-01-01T10:00:00Z" or with milliseconds.
bool is_iso8601_utc(std::string_view t) {
  static constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  const bool date_only = t.size() == 10;
  const bool seconds = t.size() == 20 && t.back() == 'Z';
  const bool millis = t.size() == 24 && t.back() == 'Z';
  if (!date_only && !seconds && !millis) return false;
  for (std::size_t i = 0; i + (date_only ? 0 : 1) < t.size(); ++i) {
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != shape[i]) return false;
  }
  return true;
}

reply storage_failure_reply(const storage_error& e) {
  reply r = json_error(http::status::service_unavailable, "storage_unavailable",
                       "the database could not be read; retry later");
  r.res.set(http::field::retry_after, "1");
  r.outcome = "storage_error";
  spdlog::warn("query failed: {}", e.what());
  return r;
}

class query_api {
 public:
  query_api(const swappable<const bearer_auth>& auth, reader_pool& readers, const query_limits& limits)
      : auth_(auth), readers_(readers), limits_(limits) {}

  reply user(const path_params& p) {
    auto reader = readers_.acquire();
    if (auto u = reader->user(p[0])) return ok(user_json(*u));
    return missing_user(reader, p[0]);
  }

  reply user_data(const path_params& p) {
    auto reader = readers_.acquire();
    auto u = reader->user(p[0]);
    if (!u) return missing_user(reader, p[0]);
    return ok(json::parse(u->data_json));
  }

  reply user_data_item(const path_params& p) {
    auto reader = readers_.acquire();
    if (auto item = reader->data(p[0], p[1])) {
      return ok(json::object{{"key", item->key}, {"value", json::parse(item->value_json)},
                             {"updated_at", item->updated_at}});
    }
    if (!reader->user(p[0])) return missing_user(reader, p[0]);
    return json_error(http::status::not_found, "key_not_found", "the user has no data under this key");
  }

  reply users(const request& req) {
    auto query = parse_query(req.target());
    if (!query) return bad_parameter("malformed %-escape in the query string");
    if (auto email = query->find("email"); email != query->end()) {
      if (query->size() > 1) return bad_parameter("email cannot be combined with other parameters");
      json::array data;
      for (const auto& u : readers_.acquire()->users_by_email(email->second)) data.push_back(user_json(u));
      return ok(json::object{{"data", std::move(data)}});
    }
    return changes(*query);
  }

 private:
  // 410 with the deletion time for a deleted user, else 404.
  static reply missing_user(reader_pool::lease& reader, const std::string& clerk_id) {
    if (auto t = reader->tombstone(clerk_id)) {
      json::object body{{"error", "user_deleted"},
                        {"message", "the user was deleted at the provider"},
                        {"deleted_at", t->deleted_at}};
      return json_reply(http::status::gone, json::serialize(body));
    }
    return json_error(http::status::not_found, "user_not_found", "no user with this clerk_id");
  }

  reply changes(const std::map<std::string, std::string>& query) {
    for (const auto& [key, value] : query) {
      if (key != "updated_since" && key != "limit" && key != "cursor") {
        return bad_parameter("unknown parameter '" + key + "'; use email, or updated_since, limit and cursor");
      }
    }
    std::string since;
    if (auto it = query.find("updated_since"); it != query.end()) {
      if (!is_iso8601_utc(it->second)) {
        return bad_parameter("updated_since must be ISO-8601 UTC: 2026-01-31, 2026-01-31T12:00:00Z or 2026-01-31T12:00:00.000Z");
      }
      since = it->second;
      // Stored times carry milliseconds; as text, "...:10Z" would sort after "...:10.717Z".
      if (since.size() == 20) since.insert(19, ".000");
    }
    std::int64_t limit = limits_.default_page;
    if (auto it = query.find("limit"); it != query.end()) {
      auto parsed = parse_integer(it->second);
      if (!parsed || *parsed < 1 || *parsed > limits_.max_page) {
        return bad_parameter("limit must be an integer from 1 to " + std::to_string(limits_.max_page));
      }
      limit = *parsed;
    }
    std::int64_t cursor = 0;
    if (auto it = query.find("cursor"); it != query.end()) {
      auto parsed = parse_integer(it->second);
      if (!parsed || *parsed < 0) return bad_parameter("cursor must be a next_cursor from an earlier page");
      cursor = *parsed;
    }
    return page(since, cursor, static_cast<int>(limit));
  }

  reply page(const std::string& since, std::int64_t cursor, int limit) {
    // One row more than asked tells whether another page exists.
    auto rows = readers_.acquire()->changes(since, cursor, limit + 1);
    const bool has_more = rows.size() > static_cast<std::size_t>(limit);
    if (has_more) rows.pop_back();
    json::array data;
    for (const auto& c : rows) data.push_back(change_json(c));
    const std::int64_t next = rows.empty() ? cursor : rows.back().change_seq;
    return ok(json::object{{"data", std::move(data)},
                           {"next_cursor", std::to_string(next)},
                           {"has_more", has_more}});
  }

 public:
  bool authorized(const request& req) const { return auth_.get()->allows(req[http::field::authorization]); }

 private:
  const swappable<const bearer_auth>& auth_;
  reader_pool& readers_;
  query_limits limits_;
};

// Wraps a query in the checks every /v1 route shares: the token, and storage failures.
template <class Query>
handler guarded(std::shared_ptr<query_api> api, Query query) {
  return [api, query](const request& req, const path_params& params, const responder& respond) {
    if (!api->authorized(req)) {
      reply r = json_error(http::status::unauthorized, "unauthorized",
                           "send Authorization: Bearer <query token>");
      r.res.set(http::field::www_authenticate, "Bearer");
      respond(std::move(r));
      return;
    }
    try {
      respond(query(*api, req, params));
    } catch (const storage_error& e) {
      respond(storage_failure_reply(e));
    }
  };
}

}  // namespace

void add_query_routes(router& routes, const swappable<const bearer_auth>& auth, reader_pool& readers,
                      const query_limits& limits) {
  auto api = std::make_shared<query_api>(auth, readers, limits);
  routes.add(http::verb::get, "/v1/users",
             guarded(api, [](query_api& a, const request& req, const path_params&) { return a.users(req); }));
  routes.add(http::verb::get, "/v1/users/{clerk_id}",
             guarded(api, [](query_api& a, const request&, const path_params& p) { return a.user(p); }));
  routes.add(http::verb::get, "/v1/users/{clerk_id}/data",
             guarded(api, [](query_api& a, const request&, const path_params& p) { return a.user_data(p); }));
  routes.add(http::verb::get, "/v1/users/{clerk_id}/data/{key}",
             guarded(api, [](query_api& a, const request&, const path_params& p) { return a.user_data_item(p); }));
}

}  // namespace usersync
