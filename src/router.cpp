#include "router.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

namespace usersync {

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

void router::add(http::verb verb, std::string path, handler h) {
  routes_.push_back({verb, std::move(path), std::move(h)});
}

void router::handle(const request& req, const responder& respond) const {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  std::string allow;
  for (const route& r : routes_) {
    if (r.path != path) continue;
    if (r.verb != req.method()) {
      allow += (allow.empty() ? "" : ", ") + std::string(http::to_string(r.verb));
      continue;
    }
    try {
      r.h(req, respond);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: unexpected error: {}", req.method_string(), path, e.what());
      respond(json_error(http::status::internal_server_error, "internal_error",
                         "unexpected server error; the request was not applied"));
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
