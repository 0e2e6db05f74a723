#include "fuzz_support.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace usersync::fuzz {

const std::vector<webhook_secret>& fixed_secrets() {
  static const std::vector<webhook_secret> secrets = [] {
    try {
      return std::vector<webhook_secret>{webhook_secret::parse(secret_a_text),
                                         webhook_secret::parse(secret_b_text)};
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "fuzz harness: a fixed secret was refused: %s\n", e.what());
      std::abort();
    }
  }();
  return secrets;
}

std::string independent_signature(std::string_view key, std::string_view id,
                                  std::string_view timestamp, std::string_view body) {
  std::string content;
  content.append(id).append(".").append(timestamp).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (key.size() > static_cast<std::size_t>(INT_MAX) ||
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac,
           &mac_len) == nullptr)
    property_failed("OpenSSL HMAC failed in the harness");
  // 32 bytes of MAC make 44 characters of base64, plus the NUL EVP_EncodeBlock writes.
  unsigned char text[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  const int written = EVP_EncodeBlock(text, mac, static_cast<int>(mac_len));
  return "v1," + std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(written));
}

void property_failed(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz property failed: %s\n", what);
  if (!detail.empty()) {
    const int shown = static_cast<int>(std::min<std::size_t>(detail.size(), 2000));
    std::fprintf(stderr, "%.*s%s\n", shown, detail.data(), detail.size() > 2000 ? " [...]" : "");
  }
  std::abort();
}

}  // namespace usersync::fuzz
