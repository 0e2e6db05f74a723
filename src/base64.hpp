#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace usersync {

// Standard (RFC 4648, padded) base64, as Svix uses for keys and signatures.
std::string base64_encode(std::string_view bytes);

// Returns nullopt for anything that is not canonical padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);

// `count` bytes from OpenSSL's CSPRNG; throws std::runtime_error if it fails.
std::string random_bytes(std::size_t count);

}  // namespace usersync
