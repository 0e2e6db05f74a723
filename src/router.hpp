#pragma once
// Maps (verb, path pattern) to handlers. Handlers hold no socket: they get a request and
// answer through a responder, from any thread, exactly once.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net.hpp"

namespace usersync {

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// A response plus what the request's log line should add (svix-id, event type, outcome).
struct reply {
  response res;
  std::string svix_id;
  std::string event_type;
  std::string outcome;
};

using responder = std::function<void(reply)>;
// The percent-decoded values of a pattern's {name} segments, in order.
using path_params = std::vector<std::string>;
using handler = std::function<void(const request&, const path_params&, responder)>;

// A JSON response; `json` is already serialized.
reply json_reply(http::status status, std::string json);
// {"error": code, "message": message}
reply json_error(http::status status, std::string_view code, std::string_view message);

class router {
 public:
  // `pattern` is a path whose segments are literal or {name}, e.g. "/v1/users/{id}/data".
  void add(http::verb verb, std::string_view pattern, handler h);

  // Routes by the path without its query string: 404 for an unknown path, 405 (with Allow)
  // for a known path and another verb, 400 for a malformed escape. An exception escaping a
  // handler becomes a JSON 500 here, the one place that catches them.
  void handle(const request& req, const responder& respond) const;

 private:
  struct route {
    http::verb verb;
    std::vector<std::string> segments;  // "{}" for a parameter
    handler h;
  };
  std::vector<route> routes_;
};

}  // namespace usersync
