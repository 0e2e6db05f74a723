#pragma once
// Independent oracles for tests: run the `openssl` command-line tool, so expected values
// never come from the code under test. Inputs travel through a temporary file, not the
// shell, so every byte (NUL, newline, non-UTF-8) reaches openssl unchanged.
#include <string>
#include <string_view>

namespace usersync::test {

// base64(HMAC-SHA256(key_bytes, message)) as printed by
// `openssl dgst -sha256 -mac HMAC -macopt hexkey:<hex> -binary | openssl base64 -A`.
// Throws std::runtime_error if the tool cannot be run or exits non-zero.
std::string openssl_hmac_sha256_base64(std::string_view key_bytes, std::string_view message);

// `openssl base64 -A` of `bytes`: padded standard base64 on one line, no newline.
// Throws std::runtime_error if the tool cannot be run or exits non-zero.
std::string openssl_base64(std::string_view bytes);

// Lower-case hex of `bytes`, as openssl's `hexkey:` option expects.
std::string to_hex(std::string_view bytes);

}  // namespace usersync::test
