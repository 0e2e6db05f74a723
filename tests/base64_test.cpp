#include "base64.hpp"

#include <doctest/doctest.h>

#include "openssl_cli.hpp"

#include <string>
#include <utility>
#include <vector>

// Expected encodings come from RFC 4648 section 10 or from `openssl base64 -A`.

namespace {

using namespace std::string_literals;
using usersync::base64_decode;
using usersync::base64_encode;
using usersync::test::openssl_base64;

// RFC 4648 section 10, "Test Vectors".
const std::vector<std::pair<std::string, std::string>> rfc4648_vectors{
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

// Every byte value, in an order that is not simply ascending.
std::string all_byte_values() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>((i * 167 + 13) % 256));
  return bytes;
}

// A deterministic, patternless-enough byte string of `size` bytes (a small LCG).
std::string pseudo_random_bytes(std::size_t size) {
  std::string bytes(size, '\0');
  std::uint32_t state = 0x2545F491;
  for (auto& b : bytes) {
    state = state * 1664525U + 1013904223U;
    b = static_cast<char>(state >> 24);
  }
  return bytes;
}

}  // namespace

TEST_CASE("RFC 4648 test vectors encode") {
  for (const auto& [bytes, text] : rfc4648_vectors) {
    CAPTURE(bytes);
    CHECK(base64_encode(bytes) == text);
  }
}

TEST_CASE("RFC 4648 test vectors decode") {
  for (const auto& [bytes, text] : rfc4648_vectors) {
    CAPTURE(text);
    CHECK(base64_decode(text) == bytes);
  }
}

TEST_CASE("the empty string decodes to the empty string") {
  const auto decoded = base64_decode("");
  REQUIRE(decoded.has_value());
  CHECK(decoded->empty());
}

TEST_CASE("encoding matches openssl base64 -A for every byte value and length") {
  const auto bytes = all_byte_values();
  CHECK(base64_encode(bytes) == openssl_base64(bytes));
  for (std::size_t length = 1; length <= 8; ++length) {
    CAPTURE(length);
    const auto suffix = bytes.substr(256 - length);
    CHECK(base64_encode(suffix) == openssl_base64(suffix));
  }
}

TEST_CASE("decoding inverts openssl's encoding") {
  const auto bytes = all_byte_values();
  for (std::size_t length = 0; length <= 8; ++length) {
    CAPTURE(length);
    const auto prefix = bytes.substr(0, length);
    CHECK(base64_decode(openssl_base64(prefix)) == prefix);
  }
  CHECK(base64_decode(openssl_base64(bytes)) == bytes);
  CHECK(base64_decode(openssl_base64("\x00\x00\x00\x00"s)) == "\x00\x00\x00\x00"s);
}

TEST_CASE("inputs larger than one OpenSSL block round-trip against openssl") {
  // Several hundred KiB crosses the internal chunk boundaries at odd offsets.
  for (const std::size_t size : {std::size_t{200'001}, std::size_t{196'608}}) {
    CAPTURE(size);
    const auto bytes = pseudo_random_bytes(size);
    const auto expected = openssl_base64(bytes);
    CHECK(base64_encode(bytes) == expected);
    CHECK(base64_decode(expected) == bytes);
  }
}

TEST_CASE("a length that is not a multiple of 4 is refused") {
  for (const std::string text : {"Z", "Zg", "Zg=", "Zm9vY", "Zm9vYmF", "Zm9vYmFy="}) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
}

TEST_CASE("characters outside the standard alphabet are refused") {
  for (const auto& text : {"Zm9-"s, "Zm9_"s, "Zm9!"s, "Zm9."s, "Zm\x00v"s, "Zm\xc3\xa9"s,
                          "Zm9v\x7f" "Zg="s}) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
}

TEST_CASE("whitespace is refused") {
  for (const std::string text :
       {" Zm9v", "Zm9v ", "Zm 9v", "Zm9v\n", "Zm9v\r\n", "\tZm9v", "Zm9v\nZm9v", "    "}) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
}

TEST_CASE("padding is allowed only at the end, at most two characters") {
  for (const std::string text : {"Zg=a", "Z===", "====", "=Zg=", "Zg==Zg==", "Zm=v"}) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
}

TEST_CASE("non-zero bits under padding are refused (RFC 4648 section 3.5)") {
  // "Zg==" and "Zm8=" are canonical; these differ only in the bits padding discards.
  for (const std::string text : {"Zh==", "Zv==", "Zm9=", "Zm8/Zm9=", "Zm9vYh=="}) {
    CAPTURE(text);
    CHECK_FALSE(base64_decode(text).has_value());
  }
}

TEST_CASE("random_bytes returns the requested number of fresh bytes") {
  CHECK(usersync::random_bytes(0).empty());
  CHECK(usersync::random_bytes(1).size() == 1);
  const auto a = usersync::random_bytes(32);
  const auto b = usersync::random_bytes(32);
  CHECK(a.size() == 32);
  CHECK(a != b);  // equal only with probability 2^-256
  CHECK(usersync::random_bytes(3'000'000).size() == 3'000'000);
}
