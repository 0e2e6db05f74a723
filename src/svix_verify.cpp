#include "svix_verify.hpp"

#include "base64.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <optional>
#include <stdexcept>

namespace usersync {
namespace {

constexpr std::string_view secret_prefix = "whsec_";
constexpr std::string_view signature_version = "v1";
// 19 digits covers every non-negative int64; from_chars still catches 9223372036854775808+.
constexpr std::size_t max_timestamp_digits = 19;

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

// Plain decimal seconds only: no sign, spaces, fraction or exponent, and no overflow.
std::optional<std::int64_t> parse_timestamp(std::string_view text) {
  if (text.empty() || text.size() > max_timestamp_digits) return std::nullopt;
  if (!std::all_of(text.begin(), text.end(), is_ascii_digit)) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// True when later - earlier > tolerance, for later > earlier. The difference is taken in
// unsigned arithmetic, where it cannot overflow whatever the clock or header says.
bool exceeds(std::int64_t later, std::int64_t earlier, std::chrono::seconds tolerance) {
  const auto gap = static_cast<std::uint64_t>(later) - static_cast<std::uint64_t>(earlier);
  return tolerance.count() < 0 || gap > static_cast<std::uint64_t>(tolerance.count());
}

verify_result check_timestamp(std::int64_t timestamp, std::chrono::system_clock::time_point now,
                              std::chrono::seconds tolerance) {
  const std::int64_t now_s =
      std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  if (now_s > timestamp && exceeds(now_s, timestamp, tolerance))
    return verify_result::timestamp_too_old;
  if (timestamp > now_s && exceeds(timestamp, now_s, tolerance))
    return verify_result::timestamp_too_new;
  return verify_result::ok;
}

// The bytes Svix signs: "<id>.<timestamp>.<body>", the body exactly as received.
std::string signed_content(std::string_view id, std::string_view timestamp,
                           std::string_view body) {
  std::string content;
  content.reserve(id.size() + timestamp.size() + body.size() + 2);
  content.append(id).append(".").append(timestamp).append(".").append(body);
  return content;
}

// base64(HMAC-SHA256(key, content)); a failure here is OpenSSL breaking, so it throws.
std::string hmac_base64(const std::string& key, std::string_view content) {
  if (key.size() > static_cast<std::size_t>(INT_MAX))
    throw std::length_error("webhook secret is too long for HMAC");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac,
           &mac_len) == nullptr)
    throw std::runtime_error("OpenSSL HMAC-SHA256 failed");
  return base64_encode({reinterpret_cast<const char*>(mac), mac_len});
}

// Equal lengths are compared in constant time; a length mismatch reveals only the length
// of the attacker's own candidate, since every genuine v1 signature has the same length.
bool same_signature(std::string_view expected, std::string_view candidate) {
  return expected.size() == candidate.size() &&
         CRYPTO_memcmp(expected.data(), candidate.data(), expected.size()) == 0;
}

// Looks through the space-separated "version,signature" entries for a v1 match. Entries
// without a comma or with another version (e.g. "v1a") are skipped, not errors, so
// senders can add new schemes alongside v1.
bool header_contains(std::string_view header, std::string_view expected) {
  while (!header.empty()) {
    const auto space = header.find(' ');
    const auto entry = header.substr(0, space);
    header = space == std::string_view::npos ? std::string_view{} : header.substr(space + 1);
    const auto comma = entry.find(',');
    if (comma == std::string_view::npos || entry.substr(0, comma) != signature_version)
      continue;
    if (same_signature(expected, entry.substr(comma + 1))) return true;
  }
  return false;
}

}  // namespace

webhook_secret webhook_secret::parse(std::string_view text) {
  if (text.starts_with(secret_prefix)) text.remove_prefix(secret_prefix.size());
  if (text.empty())
    throw std::invalid_argument("webhook secret is empty: no base64 key after the whsec_ prefix");
  auto key = base64_decode(text);
  // The message must not quote `text`: it is the secret, and this may end up in a log.
  if (!key)
    throw std::invalid_argument("webhook secret is not valid base64 after the whsec_ prefix");
  return webhook_secret(std::move(*key));
}

verify_result verify_webhook(const std::vector<webhook_secret>& secrets,
                             const webhook_headers& headers, std::string_view body,
                             std::chrono::system_clock::time_point now,
                             std::chrono::seconds tolerance) {
  if (headers.id.empty() || headers.timestamp.empty() || headers.signature.empty())
    return verify_result::missing_headers;
  const auto timestamp = parse_timestamp(headers.timestamp);
  if (!timestamp) return verify_result::invalid_timestamp;
  if (const auto age = check_timestamp(*timestamp, now, tolerance); age != verify_result::ok)
    return age;
  // The header text, not a reformatted number, is what the sender signed.
  const auto content = signed_content(headers.id, headers.timestamp, body);
  for (const auto& secret : secrets)
    if (header_contains(headers.signature, hmac_base64(secret.key(), content)))
      return verify_result::ok;
  return verify_result::no_matching_signature;
}

std::string_view to_string(verify_result result) {
  switch (result) {
    case verify_result::ok: return "ok";
    case verify_result::missing_headers: return "missing_headers";
    case verify_result::invalid_timestamp: return "invalid_timestamp";
    case verify_result::timestamp_too_old: return "timestamp_too_old";
    case verify_result::timestamp_too_new: return "timestamp_too_new";
    case verify_result::no_matching_signature: return "no_matching_signature";
  }
  return "unknown";  // unreachable for valid enumerators; keeps -Wreturn-type quiet
}

std::string sign_webhook(const webhook_secret& secret, std::string_view id,
                         std::int64_t timestamp, std::string_view body) {
  const auto content = signed_content(id, std::to_string(timestamp), body);
  return std::string(signature_version) + "," + hmac_base64(secret.key(), content);
}

}  // namespace usersync
