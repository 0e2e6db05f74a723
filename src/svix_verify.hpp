#pragma once
// Svix / Standard Webhooks signature verification. Pure: every input, the clock included,
// is a parameter, so tests call it directly.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace usersync {

// A signing key decoded once from its "whsec_<base64>" form (the prefix is optional).
class webhook_secret {
 public:
  // Throws std::invalid_argument naming the problem (never the secret's text) when `text`
  // is not an optional "whsec_" followed by non-empty standard base64.
  static webhook_secret parse(std::string_view text);
  const std::string& key() const { return key_; }

 private:
  explicit webhook_secret(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// The three header values, from svix-* or webhook-* names; empty when absent.
struct webhook_headers {
  std::string_view id;
  std::string_view timestamp;
  std::string_view signature;
};

enum class verify_result {
  ok,
  missing_headers,      // id, timestamp or signature absent or empty
  invalid_timestamp,    // not plain decimal seconds
  timestamp_too_old,    // more than `tolerance` before now
  timestamp_too_new,    // more than `tolerance` after now
  no_matching_signature // no v1 entry matched any secret
};

inline constexpr std::chrono::seconds default_tolerance{300};

// Checks headers and HMAC-SHA256("id.timestamp.body") against every secret, comparing in
// constant time. Unknown signature versions (e.g. "v1a") are skipped.
verify_result verify_webhook(const std::vector<webhook_secret>& secrets,
                             const webhook_headers& headers, std::string_view body,
                             std::chrono::system_clock::time_point now,
                             std::chrono::seconds tolerance = default_tolerance);

// A stable snake_case code for logs and JSON errors, e.g. "timestamp_too_old".
std::string_view to_string(verify_result result);

// "v1,<base64 HMAC>" for a message; used by `usersync sign` and the load generator.
std::string sign_webhook(const webhook_secret& secret, std::string_view id,
                         std::int64_t timestamp, std::string_view body);

}  // namespace usersync
