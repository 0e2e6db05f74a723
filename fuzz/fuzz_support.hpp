#pragma once
// Fixed inputs shared by the fuzz targets, so an input takes the same path on every run:
// two signing keys, the clock, and an HMAC computed without the code under test. The seeds
// under fuzz/corpus/ are signed with these keys by fuzz/make_seeds.sh (openssl CLI).
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "svix_verify.hpp"

namespace usersync::fuzz {

// Key A is the example secret from Svix's documentation; key B was made with `openssl rand`.
inline constexpr std::string_view secret_a_text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
inline constexpr std::string_view secret_b_text =
    "whsec_JKJTAXr4q4OQSD2xlBj7VVrCT4i0ZmxPDeJ1RXAtEoY=";

// 2025-01-01T00:00:00Z, the era of the fixtures; seeds carry timestamps near it.
inline constexpr std::int64_t now_seconds = 1735689600;

inline std::chrono::system_clock::time_point fixed_now() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(now_seconds));
}

// Both keys, parsed once. Aborts (a harness bug, not a finding) if either is refused.
const std::vector<webhook_secret>& fixed_secrets();

// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" straight from OpenSSL's HMAC and
// EVP_EncodeBlock: an oracle that shares no code with svix_verify.cpp or base64.cpp.
std::string independent_signature(std::string_view key, std::string_view id,
                                  std::string_view timestamp, std::string_view body);

// A broken property: prints `what` (and the start of `detail`) to stderr and aborts, which
// libFuzzer reports as a crash and saves the input.
[[noreturn]] void property_failed(const char* what, std::string_view detail = {});

}  // namespace usersync::fuzz
