#pragma once
// Operator logs on stderr: text lines, or JSON lines (--log-format json) for log shippers.
// One line per request with method, path, status, latency and, for webhooks, the svix-id,
// event type and outcome; never a secret, signature, token or payload.
#include <string>
#include <string_view>

namespace usersync {

enum class log_format { text, json };

// Sets the level ("info", ...) and format of the default logger; call once at start-up.
void configure_logging(log_format format, const std::string& level);

struct request_record {
  std::string_view remote;
  std::string_view method;
  std::string_view path;
  unsigned status = 0;
  double milliseconds = 0;
  std::string_view svix_id;
  std::string_view event_type;
  std::string_view outcome;
};

void log_request(const request_record& r);

}  // namespace usersync
