#pragma once
// Maps (verb, path) to handlers. Handlers hold no socket: they get a request and answer
// through a responder, from any thread, exactly once.
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
  std::string log_note;
};

using responder = std::function<void(reply)>;
using handler = std::function<void(const request&, responder)>;

// A JSON response; `json` is already serialized.
reply json_reply(http::status status, std::string json);
// {"error": code, "message": message}
reply json_error(http::status status, std::string_view code, std::string_view message);

class router {
 public:
  void add(http::verb verb, std::string path, handler h);

  // Routes by the path without its query string: 404 for an unknown path, 405 (with Allow)
  // for a known path and another verb. An exception escaping a handler becomes a JSON 500
  // here, the one place that catches them.
  void handle(const request& req, const responder& respond) const;

 private:
  struct route {
    http::verb verb;
    std::string path;
    handler h;
  };
  std::vector<route> routes_;
};

}  // namespace usersync
