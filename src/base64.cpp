#include "base64.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>

namespace usersync {
namespace {

// OpenSSL's block functions take an `int` length, so larger inputs go through in chunks.
// Each chunk is a whole number of base64 quanta (3 bytes in, 4 characters out).
constexpr std::size_t encode_chunk = 3 * 16 * 1024;
constexpr std::size_t decode_chunk = 4 * 16 * 1024;

const unsigned char* as_bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* as_bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

bool in_alphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

// The 6-bit value of an alphabet character; only called after in_alphabet().
unsigned sextet(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<unsigned>(c - 'A');
  if (c >= 'a' && c <= 'z') return static_cast<unsigned>(c - 'a') + 26;
  if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0') + 52;
  return c == '+' ? 62U : 63U;
}

// Number of trailing '=' (0..2), or nullopt when padding is misplaced or too long.
std::optional<std::size_t> padding_of(std::string_view text) {
  const auto last_data = text.find_last_not_of('=');
  const std::size_t pad = last_data == std::string_view::npos ? text.size()
                                                              : text.size() - last_data - 1;
  if (pad > 2) return std::nullopt;
  return pad;
}

// Canonical means: whole quanta, alphabet characters only, '=' only as final padding, and
// the bits that padding leaves over are zero (RFC 4648 section 3.5), so each byte string
// has exactly one accepted encoding.
bool is_canonical(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  const auto pad = padding_of(text);
  if (!pad) return false;
  const auto data = text.substr(0, text.size() - *pad);
  if (!std::all_of(data.begin(), data.end(), in_alphabet)) return false;
  if (*pad == 0) return true;
  const unsigned unused_bits_mask = *pad == 1 ? 0x03U : 0x0FU;
  return (sextet(data.back()) & unused_bits_mask) == 0;
}

}  // namespace

// Straight into the result: it runs for every webhook (a 32-byte MAC), where a chunk-sized
// scratch buffer cost more than the encoding.
std::string base64_encode(std::string_view bytes) {
  const std::size_t length = (bytes.size() + 2) / 3 * 4;
  std::string out(length + 1, '\0');  // EVP_EncodeBlock writes a trailing NUL
  std::size_t at = 0;
  for (std::size_t pos = 0; pos < bytes.size(); pos += encode_chunk) {
    const auto chunk = bytes.substr(pos, encode_chunk);
    at += static_cast<std::size_t>(
        EVP_EncodeBlock(as_bytes(out) + at, as_bytes(chunk), static_cast<int>(chunk.size())));
  }
  out.resize(length);
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (!is_canonical(text)) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  std::size_t at = 0;
  for (std::size_t pos = 0; pos < text.size(); pos += decode_chunk) {
    const auto chunk = text.substr(pos, decode_chunk);
    const int written =
        EVP_DecodeBlock(as_bytes(out) + at, as_bytes(chunk), static_cast<int>(chunk.size()));
    if (written < 0) return std::nullopt;
    at += static_cast<std::size_t>(written);
  }
  // EVP_DecodeBlock counts the zero bytes that stand in for '=' padding; drop them.
  out.resize(at - *padding_of(text));
  return out;
}

std::string random_bytes(std::size_t count) {
  std::string out(count, '\0');
  constexpr std::size_t max_chunk = 1024 * 1024;
  for (std::size_t pos = 0; pos < count; pos += max_chunk) {
    const std::size_t n = std::min(max_chunk, count - pos);
    if (RAND_bytes(as_bytes(out) + pos, static_cast<int>(n)) != 1)
      throw std::runtime_error("OpenSSL RAND_bytes failed: the system CSPRNG is unavailable");
  }
  return out;
}

}  // namespace usersync
