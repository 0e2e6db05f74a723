// Fuzzes the Svix verifier, the secret parser and base64 with one input, three ways:
//  1. Split at the first three '\n' into svix-id, svix-timestamp, svix-signature and body
//     (parts past the end of the input are empty) and verified against the two fixed keys
//     at the fixed clock. Then a signature made by OpenSSL directly is appended to the
//     header: a message whose headers were fine must now verify, and one refused for its
//     headers must be refused the same way (the signature cannot rescue a bad timestamp).
//  2. The whole input as a "whsec_..." secret: parse() either throws std::invalid_argument
//     or yields a key that signs messages verify_webhook() accepts.
//  3. The whole input as base64: a decoded input re-encodes to itself (only canonical text
//     is accepted), and encoding any bytes decodes back to them.
#include "svix_verify.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "base64.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace usersync;

struct split_message {
  webhook_headers headers;
  std::string_view body;
};

split_message split(std::string_view in) {
  std::string_view parts[3];
  for (auto& part : parts) {
    const auto newline = in.find('\n');
    part = in.substr(0, newline);
    in = newline == std::string_view::npos ? std::string_view{} : in.substr(newline + 1);
  }
  return {{parts[0], parts[1], parts[2]}, in};
}

verify_result verify(const std::vector<webhook_secret>& secrets, const webhook_headers& h,
                     std::string_view body) {
  return verify_webhook(secrets, h, body, fuzz::fixed_now());
}

void check_message(std::string_view input) {
  const auto [headers, body] = split(input);
  const auto& secrets = fuzz::fixed_secrets();
  const verify_result result = verify(secrets, headers, body);
  if (to_string(result) == "unknown") fuzz::property_failed("verify returned no enumerator");
  if (headers.signature.empty()) return;

  // Key B signs what the sender would have signed: the header texts and the body as given.
  const std::string genuine = std::string(headers.signature) + " " +
                              fuzz::independent_signature(secrets[1].key(), headers.id,
                                                          headers.timestamp, body);
  const webhook_headers with_genuine{headers.id, headers.timestamp, genuine};
  const bool headers_fine =
      result == verify_result::ok || result == verify_result::no_matching_signature;
  const verify_result expected = headers_fine ? verify_result::ok : result;
  if (verify(secrets, with_genuine, body) != expected)
    fuzz::property_failed("a genuine v1 signature did not change the result as expected");

  // Key A alone must not accept what key B signed (the fuzzed entries may still match A).
  const std::vector<webhook_secret> only_a{secrets[0]};
  if (verify(only_a, with_genuine, body) != verify(only_a, headers, body))
    fuzz::property_failed("key A accepted a signature made with key B");
}

void check_secret(std::string_view input) {
  try {
    const webhook_secret secret = webhook_secret::parse(input);
    if (secret.key().empty()) fuzz::property_failed("parse() accepted an empty key");
    const std::string ts = std::to_string(fuzz::now_seconds);
    const std::string sig = sign_webhook(secret, "msg_fuzz", fuzz::now_seconds, input);
    if (sig != fuzz::independent_signature(secret.key(), "msg_fuzz", ts, input))
      fuzz::property_failed("sign_webhook() disagrees with OpenSSL");
    if (verify({secret}, {"msg_fuzz", ts, sig}, input) != verify_result::ok)
      fuzz::property_failed("a message signed with a parsed secret did not verify");
  } catch (const std::invalid_argument&) {
    // Refused text is an expected outcome; any other exception escapes and is a finding.
  }
}

void check_base64(std::string_view input) {
  if (const auto decoded = base64_decode(input); decoded && base64_encode(*decoded) != input)
    fuzz::property_failed("base64_decode() accepted non-canonical text");
  const std::string encoded = base64_encode(input);
  if (encoded.size() != (input.size() + 2) / 3 * 4)
    fuzz::property_failed("base64_encode() output has the wrong length");
  const auto back = base64_decode(encoded);
  if (!back || *back != input) fuzz::property_failed("base64 round trip lost bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_message(input);
  check_secret(input);
  check_base64(input);
  return 0;
}
