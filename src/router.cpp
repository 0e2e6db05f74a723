#include "router.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

#include "url.hpp"

namespace usersync {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    if (path.front() == '/') path.remove_prefix(1);
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return segments;
}

enum class match_result { no, yes, bad_escape };

match_result match(const std::vector<std::string>& pattern,
                   const std::vector<std::string_view>& segments, path_params& params) {
  if (pattern.size() != segments.size()) return match_result::no;
  params.clear();
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != "{}") {
      if (pattern[i] != segments[i]) return match_result::no;
      continue;
    }
    auto decoded = percent_decode(segments[i]);
    if (!decoded) return match_result::bad_escape;
    if (decoded->empty()) return match_result::no;
    params.push_back(std::move(*decoded));
  }
  return match_result::yes;
}

}  // namespace

reply json_reply(http::status status, std::string json) {
  reply r;
  r.res.result(status);
  r.res.set(http::field::content_type, "application/json");
  r.res.set(http::field::cache_control, "no-store");
  r.res.body() = std::move(json);
  r.res.body() += '\n';
  return r;
}

reply json_error(http::status status, std::string_view code, std::string_view message) {
  boost::json::object body;
  body["error"] = code;
  body["message"] = message;
  return json_reply(status, boost::json::serialize(body));
}

void router::add(http::verb verb, std::string_view pattern, handler h) {
  std::vector<std::string> segments;
  for (std::string_view s : split_path(pattern)) {
    segments.emplace_back(s.size() > 1 && s.front() == '{' && s.back() == '}' ? "{}" : s);
  }
  routes_.push_back({verb, std::move(segments), std::move(h)});
}

void router::handle(const request& req, const responder& respond) const {
  const std::string_view target = req.target();
  const auto segments = split_path(target.substr(0, target.find('?')));
  std::string allow;
  path_params params;
  for (const route& r : routes_) {
    const match_result m = match(r.segments, segments, params);
    if (m == match_result::bad_escape) {
      respond(json_error(http::status::bad_request, "bad_path", "malformed %-escape in the path"));
      return;
    }
    if (m == match_result::no) continue;
    if (r.verb != req.method()) {
      allow += (allow.empty() ? "" : ", ") + std::string(http::to_string(r.verb));
      continue;
    }
    try {
      r.h(req, params, respond);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: unexpected error: {}", req.method_string(), target.substr(0, target.find('?')),
                    e.what());
      respond(json_error(http::status::internal_server_error, "internal_error",
                         "unexpected server error; nothing was changed"));
    }
    return;
  }
  if (allow.empty()) {
    respond(json_error(http::status::not_found, "not_found", "no such endpoint"));
    return;
  }
  reply r = json_error(http::status::method_not_allowed, "method_not_allowed",
                       "use " + allow + " for this endpoint");
  r.res.set(http::field::allow, allow);
  respond(std::move(r));
}

}  // namespace usersync
