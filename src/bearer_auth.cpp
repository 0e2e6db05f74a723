#include "bearer_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

namespace usersync {
namespace {

std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

}  // namespace

bearer_auth::bearer_auth(const std::vector<std::string>& tokens) {
  for (const auto& token : tokens) digests_.push_back(sha256(token));
}

bool bearer_auth::allows(std::string_view authorization) const {
  // The scheme name is case-insensitive (RFC 9110 section 11.1); the token is not.
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() <= scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return false;
  }
  const auto presented = sha256(authorization.substr(scheme.size()));
  bool match = false;
  for (const auto& digest : digests_) {  // no early exit: every token costs the same
    match |= CRYPTO_memcmp(digest.data(), presented.data(), digest.size()) == 0;
  }
  return match;
}

}  // namespace usersync
